"""Scoring and publishing at state scale: wall time and peak memory of the score job.

Scores a built and trained synthetic state (``--source``, e.g. the root of a
``bench.model_quality`` run) as it is (``--copies 1``), or ``--copies k``
disjoint copies of its voters (k × N voters: new person and voter ids, the
same counties and precincts, the precinct results' votes multiplied by k)
under ``--root``. The copies measure the score job at 25 million voters
without building a 25-million-voter state first; the rows it scores have the
shape and the per-precinct mix of the source state.

The score job runs twice (once with ``--runs 1``), each time with
``calibration.max_shift`` moved by 0.1 so that it is a new scoring run: the
first is gated against the published run when there is one (none for the
copies), the second against the first. Both publish ``gold.voter_scores`` and
``gold.precinct_calibration`` under their contracts.

Peak memory is the highest resident set size of this process and of its JVM
(the local driver, which runs the executors too), sampled every half second
from ``/proc``. Writes ``bench/results/score_<voters × copies / 1000>k.{json,md}``.

Run: ``python -m bench.score_scale --voters 5000000 --source /data/bench5m``
or ``python -m bench.score_scale --voters 5000000 --source /data/bench5m
--copies 5 --root /data/score25m --set spark.driver_memory=12g``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import threading
import time
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from votelake.jobs import score
from votelake.jobs.common import session_for
from votelake.lakehouse import Lakehouse
from votelake.models.scoring import calibration_election
from votelake.models.totals import read_results
from votelake.transforms.training_sets import feature_dates

from bench.model_quality import settings_for, write_results
from bench.storage_bench import machine

COPY_SEPARATOR = "~"  # copy k of id X is "X~k"; copy 0 keeps the source's ids


class PeakMemory:
    """The highest resident set size of this process, and of its child processes, while running.

    Samples ``/proc`` every ``interval`` seconds in a thread; ``python`` and
    ``jvm`` are the peaks in GiB (the JVM: the largest child process).
    """

    def __init__(self, interval: float = 0.5):
        self.interval, self.python, self.jvm = interval, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.python = max(self.python, _rss_gib(me))
            self.jvm = max([self.jvm, *(_rss_gib(pid) for pid in _children(me))])
            self._stop.wait(self.interval)


def _rss_gib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def copies_of(df: DataFrame, copies: int) -> DataFrame:
    """``copies`` disjoint copies of voter rows: ``person_id`` and ``state_voter_id`` suffixed with the copy."""
    copy = F.col("_copy")
    def suffixed(name: str):
        return F.when(copy == 0, F.col(name)).otherwise(F.concat_ws(COPY_SEPARATOR, F.col(name), copy.cast("string")))
    rows = df.crossJoin(df.sparkSession.range(copies).select(F.col("id").alias("_copy")))
    return rows.select(*[suffixed(c).alias(c) if c in ("person_id", "state_voter_id") else F.col(c)
                         for c in df.columns])


def score_inputs(settings, lake: Lakehouse) -> tuple[DataFrame, dt.date]:
    """The feature rows the score job reads (the scoring date's and the calibration election's), and that election."""
    features = lake.read("gold.voter_features")
    dates = feature_dates(features)
    election = calibration_election(settings, lake, dates[-1])
    return features.where(F.col("as_of_date").isin(sorted({dates[-1], election}))), election


def prepare_copies(source_settings, source: Lakehouse, target: Lakehouse, results: Path | None, copies: int,
                   out: Path) -> dict:
    """Write the copied state's inputs of the score job under the target lakehouse.

    Args:
        source_settings: the source state's settings.
        source: the built and trained state.
        target: the copied state's lakehouse (opened for a job).
        results: the source's precinct results (``calibration.results``; None: not calibrated).
        copies: how many copies of every voter.
        out: where the copied results are written.

    Returns:
        Rows written and seconds.
    """
    started = time.perf_counter()
    needed, election = score_inputs(source_settings, source)
    written = target.write(copies_of(needed, copies), "gold.voter_features", "overwrite", gate=False)
    # County names only: persons need not be copied.
    target.write(source.read("silver.persons"), "silver.persons", "overwrite", gate=False)
    if results is not None:
        raw = read_results(target.spark, results)
        scaled = raw.select(*[(F.col("votes").cast("double") * copies).cast("long").cast("string").alias("votes")
                              if c == "votes" else F.col(c) for c in raw.columns])
        scaled.coalesce(1).write.mode("overwrite").option("header", True).csv(str(out))
    return {"feature_rows": written.rows, "election_date": election.isoformat(),
            "seconds": round(time.perf_counter() - started, 1)}


def timed_score(spark, settings) -> dict:
    """Run the score job under the memory sampler; its summary, seconds and peak memory."""
    with PeakMemory() as peak:
        started = time.perf_counter()
        summary = score.run(spark, settings)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 1), "peak_python_gib": round(peak.python, 2),
            "peak_jvm_gib": round(peak.jvm, 2), "published": summary.get("published"),
            "rows": summary.get("rows"), "gate": (summary.get("gate") or {}).get("verdict"),
            "scoring_run": summary.get("scoring_run")}


def markdown(result: dict) -> str:
    """The results as a Markdown summary."""
    lines = [f"# Scoring and publishing {result['voters_scored']:,} voters", "",
             f"Command: `{result['command']}`", "",
             f"Source state: {result['source_voters']:,} voters, {result['copies']} cop"
             f"{'y' if result['copies'] == 1 else 'ies'}. Spark: `{result['spark']}`.", ""]
    if result.get("prepare"):
        p = result["prepare"]
        lines += [f"Preparing the copies (features of the scoring date and of the {p['election_date']} "
                  f"election): {p['feature_rows']:,} rows in {p['seconds']:,.0f} s.", ""]
    lines += ["| scoring run | seconds | voters/s | peak JVM RSS (GiB) | peak Python RSS (GiB) | gate |",
              "|---|---:|---:|---:|---:|---|"]
    for name, run in result["runs"].items():
        rate = f"{run['rows'] / run['seconds']:,.0f}" if run.get("rows") else "—"
        lines.append(f"| {name} | {run['seconds']:,.0f} | {rate} | {run['peak_jvm_gib']} | "
                     f"{run['peak_python_gib']} | {run['gate'] or '—'} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Prepare the copies when asked, run the score job, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, required=True, help="voters of the source state")
    parser.add_argument("--source", type=Path, required=True, help="root of the built and trained state")
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--root", type=Path, default=None, help="root of the copied state (with --copies > 1)")
    parser.add_argument("--runs", type=int, choices=(1, 2), default=2, help="scoring runs (the second is gated)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default=None, help="results file stem (default score_<voters × copies / 1000>k)")
    args = parser.parse_args(argv)
    source_settings = settings_for(args.voters, args.source.resolve(), args.overrides)
    spark = session_for(source_settings)
    settings, prepared = source_settings, None
    if args.copies > 1:
        if args.root is None:
            parser.error("--copies > 1 needs --root")
        root = args.root.resolve()
        results = root / "results"
        # The copied state reads the source's champion models.
        settings = settings_for(args.voters * args.copies, root, [
            *args.overrides, f"mlflow.tracking_uri={source_settings.mlflow.tracking_uri}",
            f"mlflow.artifact_root={source_settings.mlflow.artifact_root}", f"calibration.results={results}"])
        prepared = prepare_copies(source_settings, Lakehouse.open(spark, source_settings),
                                  Lakehouse.open(spark, settings, job="bench"), source_settings.calibration.results,
                                  args.copies, results)
        # The copies carry no vote history: name the election the results are for.
        settings = settings.model_copy(update={"calibration": settings.calibration.model_copy(
            update={"election_date": dt.date.fromisoformat(prepared["election_date"])})})
    # Each run moves calibration.max_shift a little, so it is a new scoring run
    # even where the state's own settings were published already.
    shift = settings.calibration.max_shift or 3.0
    runs = {}
    for step, name in enumerate(("first", "second")[:args.runs], start=1):
        moved = settings.calibration.model_copy(update={"max_shift": round(shift - 0.1 * step, 2)})
        runs[name] = timed_score(spark, settings.model_copy(update={"calibration": moved}))
    result = {
        "source_voters": args.voters, "copies": args.copies, "voters_scored": runs["first"]["rows"] or 0,
        "machine": machine(), "command": "python -m bench.score_scale " + " ".join(argv or sys.argv[1:]),
        "spark": settings.spark.model_dump(mode="json", exclude={"conf"}), "prepare": prepared, "runs": runs,
    }
    write_results(args.name or f"score_{(args.voters * args.copies) // 1000}k", result, markdown(result))
    return result


if __name__ == "__main__":
    main()
