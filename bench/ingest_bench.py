"""Benchmark of the ingest job (landing files → bronze + quarantine) on a synthetic state.

Measures, in one run and as medians over ``--reps``, each into a fresh lakehouse:

(a) the ingest job on the landing folder of a synthetic state (layout checks,
    parse, line numbers, per-row defect checks, quarantine, Delta commit,
    reconciliation), as rows/s per source and in total;
(b) the floor: a plain Spark read of the same files (all-string schema) written
    straight to Parquet, with no checks and no Delta.

Run: ``.venv/bin/python -m bench.ingest_bench --landing data/synth5m/landing --reps 1``
(make the state first: ``votelake synth --voters 5000000 --out data/synth5m``).
Results go to ``bench/results/ingest.json`` and ``bench/results/ingest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pyspark
from pyspark.sql import types as T

from bench.storage_bench import machine
from votelake.config import load_settings
from votelake.jobs import ingest
from votelake.jobs.common import session_for
from votelake.landing import list_files
from votelake.layouts import load_layout

RESULTS = Path(__file__).resolve().parent / "results"


def floor_seconds(spark, settings, out: Path) -> float:
    """Read every source's files with an all-string schema and write them as Parquet."""
    started = time.perf_counter()
    for src in settings.sources:
        layout = load_layout(settings.layouts, src.layout)
        files = [f.uri for f in list_files(str(settings.source_path(src)), src.files)]
        if not files:
            continue
        schema = T.StructType([T.StructField(c, T.StringType()) for c in layout.columns])
        if layout.format == "jsonl":
            df = spark.read.schema(schema).json(files)
        else:
            df = spark.read.schema(schema).option("sep", layout.delimiter).option("header", layout.header).csv(files)
        df.write.mode("overwrite").parquet(str(out / src.name))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the benchmark and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing", required=True, help="landing folder of a synthetic state")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--conf", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    settings = load_settings(args.conf, [f"landing={Path(args.landing).resolve()}",
                                         f"storage.lakehouse={scratch / 'lake'}",
                                         f"quality.results_dir={scratch / 'quality'}", *args.overrides])
    host = machine()
    spark = session_for(settings)
    runs, floors = [], []
    try:
        for rep in range(args.reps):
            shutil.rmtree(scratch / "lake", ignore_errors=True)
            started = time.perf_counter()
            report = ingest.run(spark, settings)
            seconds = time.perf_counter() - started
            runs.append({"seconds": seconds, "report": report})
            floors.append(floor_seconds(spark, settings, scratch / f"floor{rep}"))
            print(f"rep {rep}: ingest {seconds:.1f}s, floor {floors[-1]:.1f}s", flush=True)
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    last = runs[-1]["report"]
    rows = {name: r["read"] for name, r in last.items() if isinstance(r, dict) and "read" in r}
    total = sum(rows.values())
    ingest_s = statistics.median(r["seconds"] for r in runs)
    floor_s = statistics.median(floors)
    result = {
        "benchmark": "ingest",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, "-m", "bench.ingest_bench", *(argv or sys.argv[1:])]),
        "versions": {"pyspark": pyspark.__version__, "python": sys.version.split()[0]},
        "machine": {**host, "load_average_at_end": list(os.getloadavg())},
        "reps": args.reps,
        "rows_read": rows,
        "rows_total": total,
        "quarantined": {name: last[name]["quarantined"] for name in rows},
        "ingest_seconds_median": round(ingest_s, 1),
        "ingest_rows_per_second": round(total / ingest_s),
        "floor_seconds_median": round(floor_s, 1),
        "floor_rows_per_second": round(total / floor_s),
        "ratio_ingest_to_floor": round(ingest_s / floor_s, 2),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Ingest benchmark",
        "",
        f"`{result['command']}` on {result['machine']['nproc']} cores, {result['machine']['memory_gb']} GB "
        f"({result['when']}; load average at start {result['machine']['load_average_at_start']}, "
        f"at end {result['machine']['load_average_at_end']}).",
        "",
        "| source | rows read | quarantined |",
        "|---|---|---|",
        *[f"| {n} | {rows[n]:,} | {result['quarantined'][n]:,} |" for n in rows],
        "",
        f"- ingest job (median of {args.reps}): **{ingest_s:.1f} s**, **{total / ingest_s:,.0f} rows/s**",
        f"- floor (plain Spark read → Parquet of the same files): {floor_s:.1f} s, {total / floor_s:,.0f} rows/s",
        f"- ratio ingest / floor: **{ingest_s / floor_s:.2f}**",
        "",
    ]
    (RESULTS / "ingest.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
