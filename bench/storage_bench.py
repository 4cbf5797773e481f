"""Benchmark of the Delta store (delta-spark) against plain Spark Parquet.

Measures, in one run and as medians over ``--reps``:

(a) ``df.write.parquet`` of N generated rows vs ``DeltaStore.write`` (append)
    of the same DataFrame into a new table: the cost of the schema check, the
    catalog registration, the statistics and the Delta commit;
(b) a merge of a 1% change set (updates concentrated in 3 of 50 partitions,
    plus a few inserts) vs a full overwrite of the table producing the same
    result: time, and files rewritten vs total files.

Run: ``.venv/bin/python -m bench.storage_bench --rows 10000000 --reps 3``.
Results go to ``bench/results/storage.json`` and ``bench/results/storage.md``.
Other processes may share the machine, so compare the ratios, not only the
absolute times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import deltalake
import pyspark
from deltalake import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from votelake.catalog import TableSpec
from votelake.config import SparkSettings
from votelake.session import build_spark
from votelake.storage import DeltaStore

RESULTS = Path(__file__).resolve().parent / "results"
PARTITIONS = 50  # distinct values of the partition column
TOUCHED = (0, 1, 2)  # partitions the merge's change set falls into

SCHEMA = T.StructType([
    T.StructField("id", T.LongType(), False),
    T.StructField("region", T.StringType(), True),
    T.StructField("name", T.StringType(), True),
    T.StructField("email", T.StringType(), True),
    T.StructField("city", T.StringType(), True),
    T.StructField("age", T.IntegerType(), True),
    T.StructField("score", T.DoubleType(), True),
    T.StructField("active", T.BooleanType(), True),
    T.StructField("joined", T.DateType(), True),
    T.StructField("visits", T.LongType(), True),
])


def generate(spark: SparkSession, start: int, end: int, slices: int, version: int = 0) -> DataFrame:
    """Rows for ids in [start, end): strings, numbers, a date and a 50-value partition column.

    Args:
        spark: the session.
        start: first id.
        end: one past the last id.
        slices: Spark partitions (write tasks).
        version: changes the data columns, so that a change set differs from the base.

    Returns:
        The rows, in SCHEMA's column order and types.
    """
    r = spark.range(start, end, numPartitions=slices)
    return r.select(
        F.col("id"),
        F.concat(F.lit("r"), F.lpad((F.col("id") % PARTITIONS).cast("string"), 2, "0")).alias("region"),
        F.concat(F.lit("voter-"), F.col("id").cast("string"), F.lit(f"-v{version}")).alias("name"),
        F.concat(F.lit("v"), F.col("id").cast("string"), F.lit("@example.org")).alias("email"),
        F.concat(F.lit("city-"), (F.col("id") % 997).cast("string")).alias("city"),
        (F.lit(18) + F.col("id") % 80).cast("int").alias("age"),
        (((F.col("id") * 7919 + version) % 100_000) / 1000.0).alias("score"),
        ((F.col("id") + version) % 3 == 0).alias("active"),
        F.date_add(F.lit("2000-01-01").cast("date"), (F.col("id") % 9000).cast("int")).alias("joined"),
        (F.col("id") % 1000 + version).cast("long").alias("visits"),
    ).to(SCHEMA)


def change_set(spark: SparkSession, rows: int, slices: int) -> DataFrame:
    """About 1% of ``rows``: updates in the TOUCHED partitions and some new ids.

    Updates: ids of the touched partitions whose ``id // 50`` is a multiple of 7
    (3/50 * 1/7 = 0.86% of the table); inserts: 0.14% of ``rows`` new ids, which
    land in the same partitions.
    """
    in_touched = (F.col("id") % PARTITIONS).isin(*TOUCHED)
    updates = generate(spark, 0, rows, slices, version=1).where(
        in_touched & ((F.col("id") / PARTITIONS).cast("long") % 7 == 0)
    )
    # New ids past the end, spanning enough ids that 0.14% of ``rows`` fall in TOUCHED.
    span = rows * 14 // 10_000 * PARTITIONS // len(TOUCHED)
    inserts = generate(spark, rows, rows + span, slices, version=1)
    return updates.unionByName(inserts.where(in_touched))


def timed(fn) -> float:
    """Seconds taken by ``fn()``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def table_spec(path: Path) -> TableSpec:
    """The benchmark table at ``path``."""
    return TableSpec(
        name="bench.voters",
        layer="silver",
        path=path,
        schema=SCHEMA,
        partition_by=("region",),
        primary_key=("region", "id"),
    )


def machine() -> dict:
    """CPU count and memory of this machine."""
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gb": mem_gb,
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run(rows: int, reps: int, slices: int, workdir: Path) -> dict:
    """Run both measurements and return the results document."""
    spark = build_spark(
        SparkSettings(
            master="local[*]",
            app_name="votelake-storage-bench",
            shuffle_partitions=8,
            driver_memory="8g",
            conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
        ),
        workdir / "metastore",
    )
    spark.sparkContext.setLogLevel("ERROR")  # bench only: keep the console readable
    store = DeltaStore(spark)
    source = generate(spark, 0, rows, slices)

    # Untimed warm-up: the first jobs of a JVM pay for class loading and JIT.
    warm = generate(spark, 0, max(rows // 20, 1000), slices)
    warm.write.partitionBy("region").parquet(str(workdir / "warm_parquet"))
    store.write(warm, table_spec(workdir / "warm_table"), "append")
    store.merge(change_set(spark, max(rows // 20, 1000), slices), table_spec(workdir / "warm_table"))

    # (a) Parquet vs Delta append of the same DataFrame, alternating per rep.
    parquet_s, delta_s = [], []
    for rep in range(reps):
        target = workdir / f"parquet_{rep}"
        parquet_s.append(timed(lambda: source.write.mode("error").partitionBy("region").parquet(str(target))))
        shutil.rmtree(target)
        table = table_spec(workdir / f"append_{rep}")
        delta_s.append(timed(lambda: store.write(source, table, "append")))
        if rep < reps - 1:
            shutil.rmtree(table.path)
    base = table_spec(workdir / f"append_{reps - 1}")
    total_files = len(DeltaTable(str(base.path)).file_uris())

    # (b) merge of the change set vs a full overwrite giving the same rows; each rep
    # starts from a copy of the base table.
    changes = change_set(spark, rows, slices)
    change_rows = changes.count()
    merge_s, overwrite_s, rewritten, merge_metrics = [], [], [], {}
    for rep in range(reps):
        copy = table_spec(workdir / f"merge_{rep}")
        shutil.copytree(base.path, copy.path)
        result = None

        def do_merge():
            nonlocal result
            result = store.merge(changes, copy)

        merge_s.append(timed(do_merge))
        rewritten.append(result.files_removed)
        merge_metrics = result.metrics
        expected_rows = store.read(copy).count()
        shutil.rmtree(copy.path)

        full = table_spec(workdir / f"overwrite_{rep}")
        shutil.copytree(base.path, full.path)

        def do_overwrite():
            current = store.read(full)
            keys = changes.select("region", "id")
            merged = current.join(F.broadcast(keys), ["region", "id"], how="left_anti").unionByName(changes)
            store.write(merged, full, "overwrite", operation="FULL_REWRITE")

        overwrite_s.append(timed(do_overwrite))
        assert store.read(full).count() == expected_rows, "merge and full rewrite disagree"
        shutil.rmtree(full.path)

    med = statistics.median
    return {
        "command": " ".join([Path(sys.executable).name, "-m", "bench.storage_bench", *sys.argv[1:]]),
        "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "python": platform.python_version(),
            "pyspark": pyspark.__version__,
            "deltalake": deltalake.__version__,
        },
        "machine": machine(),
        "spark": {"master": spark.conf.get("spark.master"), "write_tasks": slices},
        "rows": rows,
        "reps": reps,
        "append": {
            "parquet_seconds": parquet_s,
            "delta_seconds": delta_s,
            "parquet_median_s": round(med(parquet_s), 2),
            "delta_median_s": round(med(delta_s), 2),
            "ratio_delta_over_parquet": round(med(delta_s) / med(parquet_s), 3),
            "files": total_files,
        },
        "merge": {
            "change_rows": change_rows,
            "change_fraction": round(change_rows / rows, 4),
            "touched_partitions": len(TOUCHED),
            "merge_seconds": merge_s,
            "overwrite_seconds": overwrite_s,
            "merge_median_s": round(med(merge_s), 2),
            "overwrite_median_s": round(med(overwrite_s), 2),
            "ratio_merge_over_overwrite": round(med(merge_s) / med(overwrite_s), 3),
            "files_total": total_files,
            "files_rewritten_median": med(rewritten),
            "files_rewritten_fraction": round(med(rewritten) / total_files, 4),
            "metrics_last_rep": merge_metrics,
        },
    }


def markdown(doc: dict) -> str:
    """The results as a short Markdown summary."""
    a, m = doc["append"], doc["merge"]
    mach, v = doc["machine"], doc["versions"]
    return "\n".join([
        "# Storage benchmark (delta-spark)",
        "",
        f"Command: `{doc['command']}` — run {doc['run_at']}",
        "",
        f"Versions: Python {v['python']}, PySpark {v['pyspark']}, deltalake {v['deltalake']}.",
        f"Machine: {mach['nproc']} CPUs, {mach['memory_gb']} GB RAM, {mach['platform']}; "
        f"1-minute load average at start {mach['load_average_at_start'][0]:.2f} "
        "(above the core count means other processes shared the CPUs: read the ratios, "
        "measured in the same run, rather than the absolute times).",
        f"Spark: {doc['spark']['master']}, {doc['spark']['write_tasks']} write tasks. "
        f"Rows: {doc['rows']:,}; medians of {doc['reps']} reps.",
        "",
        "## (a) Append: plain Parquet vs the Delta store",
        "",
        "| | median s | all reps s |",
        "|---|---:|---|",
        f"| `df.write.parquet` | {a['parquet_median_s']} | {', '.join(f'{x:.2f}' for x in a['parquet_seconds'])} |",
        f"| `DeltaStore.write` append | {a['delta_median_s']} | {', '.join(f'{x:.2f}' for x in a['delta_seconds'])} |",
        "",
        f"Ratio Delta / Parquet: **{a['ratio_delta_over_parquet']}x** (target ≤ 1.5x); {a['files']} files.",
        "",
        "## (b) Merge of a 1% change set vs full overwrite",
        "",
        f"Change set: {m['change_rows']:,} rows ({m['change_fraction']:.2%} of the table), "
        f"in {m['touched_partitions']} of {PARTITIONS} partitions.",
        "",
        "| | median s | all reps s |",
        "|---|---:|---|",
        f"| `merge` | {m['merge_median_s']} | {', '.join(f'{x:.2f}' for x in m['merge_seconds'])} |",
        f"| full overwrite (read, anti-join, union, overwrite) | {m['overwrite_median_s']} | "
        f"{', '.join(f'{x:.2f}' for x in m['overwrite_seconds'])} |",
        "",
        f"Ratio merge / overwrite: **{m['ratio_merge_over_overwrite']}x**. Files rewritten by the merge: "
        f"**{m['files_rewritten_median']} of {m['files_total']}** ({m['files_rewritten_fraction']:.1%}).",
        f"Merge metrics (last rep): `{json.dumps(m['metrics_last_rep'])}`",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the benchmark and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--slices", type=int, default=8, help="Spark partitions of the generated data")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="storage-bench-", dir=args.workdir))
    try:
        doc = run(args.rows, args.reps, args.slices, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "storage.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "storage.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
