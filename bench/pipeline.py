"""The full pipeline at state scale: per job wall time, rows/s, peak memory, shuffle and spill, Delta sizes, floors.

Runs synth → ingest → build (resolve, silver, features) → train → score
(with publish) on a synthetic state of ``--voters`` voters under ``--root``,
``--reps`` times (each repetition on a fresh folder, one SparkSession), and
for each job records:

- wall time, voters/s and output rows/s;
- peak resident memory of this Python driver and of the JVM it started (the
  local driver, which also runs the executors), sampled from ``/proc``; and,
  from Spark's event log, each executor's peak JVM heap and process-tree RSS
  (the only executor figures on a standalone cluster);
- Spark's totals: tasks, task time, input, output, shuffle read/write and
  spill bytes (:mod:`bench.sparkmetrics`);
- the Delta tables the job committed: files, bytes and rows it added.

Floors, measured in the same run after each repetition's jobs:

- I/O jobs (synth, ingest, build, score): a plain Spark scan of the job's
  inputs (landing text files or Delta tables, every column, to a ``noop``
  sink) plus a plain Parquet write of the bytes the job wrote (the files it
  added, read back and written again, minus the time to only read them).
- train: the optimizer's passes (Spark jobs of L-BFGS steps and tree levels,
  counted in the event log over the train job's window), each costing one
  pass over the cached feature rows scaled by the rows the pass read.

Peers (``--peers pandas,duckdb``): ``bench.peers`` on the same landing files,
in a child process with the same cores and memory, ``--reps`` times.

A state too large to run in one sitting runs in parts: ``--jobs
synth,ingest,build --keep``, then ``--jobs train,score --resume`` on the same
root adds the later jobs to the same results (each job still measured alone).
A run stopped part-way keeps its figures in ``<root>/progress.jsonl``:
``--measure-floors`` measures the floors it did not reach on the state it left,
and ``--from-progress WHY`` writes its results.

Refresh (``--refresh``): after the full run, the state's next delivery
(:mod:`votelake.synth.next_delivery`: a snapshot a week later with 1% of the
registrations on the rolls moved, added, removed or renamed, and one more day
of contacts and digital events) is written into the same landing folder, and
ingest, build and score run again on it (train does not), each measured as
the full run's jobs are. The results add the refresh's figures and, per job,
its seconds against the full run's (the last repetition's, whose state it
refreshes), with the sum of ingest, build and score and its ratio beside the
target of :data:`REFRESH_TARGET`.

Writes ``bench/results/pipeline_<voters/1000>k.{json,md}`` (with ``--refresh``,
``pipeline_refresh_<voters/1000>k``); ``python -m bench summary`` collects
every size into the scaling curve and the ratios.

Run: ``python -m bench pipeline --voters 1000000 --root /data/bench1m --reps 3 --peers pandas,duckdb``;
against a standalone cluster add ``--set spark.master=spark://127.0.0.1:7077``
(``make cluster-up`` first).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import votelake
from votelake.config import Settings
from votelake.jobs.common import session_for
from votelake.lakehouse import Lakehouse, load_catalog
from votelake.landing import list_files
from votelake.models import propensity as prop
from votelake.synth.next_delivery import write_next_delivery
from votelake.transforms.training_sets import election_electorate

from bench import sparkmetrics
from bench.model_quality import JOBS, RESULTS, settings_for, write_results
from bench.score_scale import PeakMemory, score_inputs
from bench.storage_bench import machine

IO_JOBS = ("synth", "ingest", "build", "score")
# A refresh re-runs these on the next delivery (the models are not retrained).
REFRESH_JOBS = ("ingest", "build", "score")
# The share of the full run's ingest + build + score time a refresh should take.
REFRESH_TARGET = 0.15
CALL_SITES_SHOWN = 4  # per job, in the Markdown summary (the JSON keeps more)


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (the event log's clock)."""
    return time.time_ns() // 1_000_000


def timed(action) -> float:
    """Seconds ``action()`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def scan(df: DataFrame) -> None:
    """Read every column of every row and write nothing (Spark's ``noop`` sink)."""
    df.write.format("noop").mode("overwrite").save()


# -- Delta tables ------------------------------------------------------------------


def table_files(uri: str, written: tuple[int, int] | None = None) -> dict[str, tuple[int, int]]:
    """The data files of a Delta table's current version: path → (bytes, rows); empty when absent.

    Args:
        uri: the table's location.
        written: (start, end) epoch milliseconds: only the files written in that window.
    """
    try:
        table = DeltaTable(uri)
    except TableNotFoundError:
        return {}
    actions = pa.table(table.get_add_actions(flatten=True))
    root = table.table_uri.removeprefix("file://").rstrip("/")
    return {f"{root}/{p}": (s, r or 0) for p, s, r, t in zip(actions["path"].to_pylist(),
                                                              actions["size_bytes"].to_pylist(),
                                                              actions["num_records"].to_pylist(),
                                                              actions["modification_time"].to_pylist())
            if written is None or written[0] <= t <= written[1]}


def lake_files(settings: Settings) -> dict[str, dict[str, tuple[int, int]]]:
    """Every catalog table's current data files."""
    return {spec.name: table_files(spec.uri) for spec in load_catalog(settings)}


def added(before: dict, after: dict) -> dict[str, dict]:
    """Per table, the files a job added: paths, bytes, rows."""
    out = {}
    for name, files in after.items():
        new = {p: v for p, v in files.items() if p not in before.get(name, {})}
        if new:
            out[name] = {"files": sorted(new), "bytes": sum(s for s, _ in new.values()),
                         "rows": sum(r for _, r in new.values())}
    return out


def kept_outputs(settings: Settings, job: dict) -> dict[str, dict]:
    """The files a job added, rebuilt from the state it left: the current files written within its window.

    Args:
        settings: the state's settings.
        job: the job's recorded figures (its ``window_ms`` and the ``tables`` it added).

    Raises:
        RuntimeError: when they are not the bytes and rows the job recorded (a later job rewrote its tables).
    """
    window = tuple(job["window_ms"])
    outputs = added({}, {spec.name: table_files(spec.uri, window) for spec in load_catalog(settings)})
    found = {name: (o["bytes"], o["rows"]) for name, o in outputs.items()}
    recorded = {name: (t["bytes"], t["rows"]) for name, t in job["tables"].items()}
    if found != recorded:
        raise RuntimeError(f"the files written in the job's window {window} are not the ones it recorded: "
                           f"found {found}, recorded {recorded}")
    return outputs


def table_sizes(settings: Settings) -> dict[str, dict]:
    """Files, bytes and rows of every catalog table's current version."""
    return {name: {"files": len(files), "bytes": sum(s for s, _ in files.values()),
                   "rows": sum(r for _, r in files.values())}
            for name, files in lake_files(settings).items() if files}


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- floors ------------------------------------------------------------------------


def landing_text(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """Every configured landing source's files as lines of text (what ingest reads)."""
    files = [f.uri for s in settings.sources for f in list_files(str(settings.source_path(s)), s.files)]
    return spark.read.text(files) if files else None


def job_inputs(name: str, spark: SparkSession, settings: Settings) -> list[DataFrame]:
    """What a job reads, as plain Spark reads: landing text, or the Delta tables it reads."""
    lake = Lakehouse.open(spark, settings)
    if name == "ingest":
        text = landing_text(spark, settings)
        return [text] if text is not None else []
    if name == "build":
        return [lake.read(f"bronze.{s.name}") for s in settings.sources if lake.version(f"bronze.{s.name}") is not None]
    if name == "score":
        return [score_inputs(settings, lake)[0]]
    return []  # synth reads nothing


def write_floor(spark: SparkSession, outputs: dict[str, dict], landing: Path | None, tmp: Path) -> float:
    """Seconds to write the bytes a job wrote: copy them with plain Spark, minus only reading them.

    Args:
        spark: the session.
        outputs: per Delta table, the files the job added.
        landing: the landing folder, when the job wrote text files there (synth).
        tmp: a scratch folder for the copies (removed).
    """
    copies = [(spark.read.parquet(*o["files"]), "parquet") for o in outputs.values()]
    if landing is not None:
        # Every file under the landing folder, in its per-source subfolders.
        copies.append((spark.read.option("recursiveFileLookup", "true").text(str(landing)), "text"))
    seconds = 0.0
    for i, (df, fmt) in enumerate(copies):
        copy = timed(lambda: df.write.mode("overwrite").format(fmt).save(str(tmp / f"copy{i}")))
        seconds += max(copy - timed(lambda: scan(df)), 0.0)
    shutil.rmtree(tmp, ignore_errors=True)
    return seconds


def io_floor(name: str, spark: SparkSession, settings: Settings, outputs: dict[str, dict], tmp: Path) -> dict:
    """The plain-Spark floor of an I/O job: scan its inputs, write its output bytes."""
    read = sum(timed(lambda d=df: scan(d)) for df in job_inputs(name, spark, settings))
    write = write_floor(spark, outputs, settings.landing if name == "synth" else None, tmp)
    return {"read_seconds": round(read, 1), "write_seconds": round(write, 1), "seconds": round(read + write, 1)}


def pass_seconds(spark: SparkSession, settings: Settings, reps: int = 3) -> dict:
    """One pass over the cached feature rows the turnout model trains on: median seconds and rows.

    The pass sums every numeric model input, reading each cached row once,
    which is what one optimizer step does at the least.
    """
    features, election = score_inputs(settings, Lakehouse.open(spark, settings))
    rows = election_electorate(features, election).select(
        *[F.col(c).cast("double").alias(c) for c in prop.TURNOUT.numeric]).cache()
    count = rows.count()
    aggregate = [F.sum(c) for c in prop.TURNOUT.numeric]
    times = [timed(lambda: rows.agg(*aggregate).collect()) for _ in range(reps)]
    rows.unpersist()
    return {"rows": count, "seconds": round(statistics.median(times), 3)}


def training_floor(totals: dict, reference: dict) -> dict:
    """Optimizer passes × one pass over the cached rows, each pass scaled by the rows its tasks read.

    Args:
        totals: :func:`sparkmetrics.summarize` over the train job's window.
        reference: one pass's median ``seconds`` over ``rows`` cached rows (:func:`pass_seconds`).
    """
    seconds = totals["optimizer_records"] * reference["seconds"] / max(reference["rows"], 1)
    return {"pass": reference, "passes": totals["optimizer_passes"], "rows_read": totals["optimizer_records"],
            "seconds": round(seconds, 1)}


def recount_train_floor(result: dict, events: Path) -> dict:
    """A finished run's results with its train floor counted again from its event log and its reference pass."""
    for run in result["runs"]:
        train = run["jobs"]["train"]
        totals = sparkmetrics.summarize(sparkmetrics.read_events(events), *train["window_ms"])
        train["spark"].update({k: totals[k] for k in ("optimizer_passes", "optimizer_records")})
        train["floor"] = training_floor(totals, train["floor"]["pass"])
        set_floor_ratio(train)
    return {**result, "medians": medians(result["runs"])}


# -- peers -------------------------------------------------------------------------


def run_peer(engine: str, landing: Path, out: Path) -> dict:
    """``bench.peers`` in a child process: its JSON line, or how it failed (e.g. killed for memory)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.peers", "--engine", engine, "--landing", str(landing),
                           "--out", str(out)], capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        return {"engine": engine, "failed": f"exit code {done.returncode}", "stderr": done.stderr[-2000:],
                "seconds": round(time.perf_counter() - started, 1)}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- one repetition ----------------------------------------------------------------


def drained_log(spark: SparkSession, events_dir: Path, app_id: str, timeout: float = 120.0) -> Path:
    """The application's event log once every event up to now is in it.

    Spark writes the log from an asynchronous listener queue, so a job's last
    stages can reach the file after the job returns. A marker query run now is
    logged after them: once its end is in the file, so are they. (A session tag
    would be simpler, but a tagged session's later MLlib tasks fail to serialise.)
    """
    marker = f"votelake_bench_drain_{time.time_ns()}"
    spark.range(1).select(F.lit(marker).alias("marker")).collect()
    log = sparkmetrics.event_log(events_dir, app_id)
    deadline = time.monotonic() + timeout
    while not sparkmetrics.query_logged(log, marker):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Spark's event log {log} did not catch up within {timeout:.0f} s")
        time.sleep(0.5)
    return log


def run_job(name: str, spark: SparkSession, settings: Settings, events_dir: Path, app_id: str) -> dict:
    """Run one job under the memory sampler; its figures from the clock, ``/proc``, the event log and Delta."""
    before = lake_files(settings)
    start = now_ms()
    with PeakMemory() as peak:
        summary = JOBS[name](spark, settings)
    end = now_ms()
    outputs = added(before, lake_files(settings))
    spark_totals = sparkmetrics.summarize(sparkmetrics.read_events(drained_log(spark, events_dir, app_id)),
                                          start, end)
    seconds = (end - start) / 1000
    print(f"[bench] {name}: {seconds:,.1f} s", flush=True)
    rows_out = sum(o["rows"] for o in outputs.values())
    return {
        "seconds": round(seconds, 1), "window_ms": [start, end],
        "voters_per_second": round(settings.synth.voters / seconds, 1),
        "rows_out": rows_out, "rows_out_per_second": round(rows_out / seconds, 1),
        "bytes_out": sum(o["bytes"] for o in outputs.values()) if name != "synth" else folder_bytes(settings.landing),
        "peak_python_gib": round(peak.python, 2), "peak_driver_jvm_gib": round(peak.jvm, 2),
        "peak_executor_heap_gib": sparkmetrics.peak_gib(spark_totals, "JVMHeapMemory"),
        "peak_executor_rss_gib": sparkmetrics.peak_gib(spark_totals, "ProcessTreeJVMRSSMemory"),
        "peak_python_workers_gib": sparkmetrics.peak_gib(spark_totals, "ProcessTreePythonRSSMemory"),
        "spark": spark_totals, "tables": {t: {k: v for k, v in o.items() if k != "files"} for t, o in outputs.items()},
        "_outputs": outputs, "summary": summary,
    }


def turnout_auc(train_summary: dict) -> dict:
    """The turnout champion's held-out AUC and its learners' training seconds, from the train job's summary."""
    turnout = train_summary.get("turnout") or {}
    learners = {k: v for k, v in turnout.items() if isinstance(v, dict) and "test_auc" in v}
    best = max(learners.values(), key=lambda v: v["test_auc"], default={})
    return {"auc": best.get("test_auc"), "learners": {k: v["test_auc"] for k, v in learners.items()},
            "train_seconds": round(sum(v.get("train_seconds", 0) for v in learners.values()), 1)}


def repetition(spark: SparkSession, settings: Settings, events_dir: Path, app_id: str, jobs: list[str],
               floors: bool, progress: Path | None = None) -> dict:
    """Run the jobs once on a fresh state; their figures, the floors, the table sizes.

    Each job's figures are also appended to ``progress`` (JSON lines) as the
    job ends, so a run stopped part-way keeps what it measured (``--from-progress``).
    """
    figures = {}
    for name in jobs:
        figures[name] = run_job(name, spark, settings, events_dir, app_id)
        log_progress(progress, {"job": name, **without_outputs(figures[name])})
    if floors:
        add_floors(spark, settings, figures, progress)
    return run_record({name: without_outputs(job) for name, job in figures.items()}, table_sizes(settings))


def refresh(spark: SparkSession, settings: Settings, events_dir: Path, app_id: str,
            progress: Path | None = None, days: int = 7, rate: float = 0.01) -> dict:
    """Write the state's next delivery into its landing folder, then run ingest, build and score on it.

    Args:
        spark: the session.
        settings: the state a full run left (its landing folder gets the delivery).
        events_dir: Spark's event-log folder.
        app_id: the session's application id.
        progress: the progress file (each refresh job's figures are appended as it ends).
        days: days from the state's snapshot to the next one.
        rate: the share of registrations on the rolls that change.

    Returns:
        ``delivery`` (its dates, changes per kind, rows written, and the seconds it took to write)
        and ``jobs``: per job its figures, as :func:`run_job` records them.
    """
    started = time.perf_counter()
    delivery = write_next_delivery(spark, settings.landing, settings.layouts, settings.synth.seed,
                                   settings.synth.partitions, truth=settings.synth.out / "truth", days=days, rate=rate)
    written = {"seconds": round(time.perf_counter() - started, 1), "previous_snapshot": str(delivery.previous_snapshot),
               "snapshot": str(delivery.snapshot), "event_day": str(delivery.event_day),
               "on_rolls": delivery.on_rolls, "changes": delivery.changes, "rows": delivery.rows}
    print(f"[bench] next delivery: {written['seconds']:,.1f} s, changes {delivery.changes}", flush=True)
    log_progress(progress, {"refresh_delivery": written})
    jobs = {}
    for name in REFRESH_JOBS:
        jobs[name] = without_outputs(run_job(name, spark, settings, events_dir, app_id))
        log_progress(progress, {"refresh_job": name, **jobs[name]})
    return {"delivery": written, "jobs": jobs}


def refresh_comparison(full: dict[str, dict], refreshed: dict[str, dict]) -> dict:
    """Each refreshed job's seconds against the full run's, and the sum of ingest, build and score.

    Args:
        full: the full run's figures per job (a repetition's ``jobs``).
        refreshed: the refresh's figures per job.

    Returns:
        ``jobs``: per refreshed job ``full_seconds``, ``refresh_seconds`` and ``ratio`` (refresh / full;
        None without a full-run figure); ``ingest_build_score``: the same for their sum (None unless every
        one of them ran in both); ``target_ratio``: :data:`REFRESH_TARGET`.
    """
    def row(full_s: float | None, refresh_s: float | None) -> dict:
        ratio = round(refresh_s / full_s, 3) if full_s and refresh_s is not None else None
        return {"full_seconds": full_s, "refresh_seconds": refresh_s, "ratio": ratio}

    jobs = {name: row(full.get(name, {}).get("seconds"), job["seconds"]) for name, job in refreshed.items()}
    both = all(jobs.get(n, {}).get("full_seconds") is not None for n in REFRESH_JOBS)
    total = (row(round(sum(jobs[n]["full_seconds"] for n in REFRESH_JOBS), 1),
                 round(sum(jobs[n]["refresh_seconds"] for n in REFRESH_JOBS), 1)) if both
             else row(None, None))
    return {"jobs": jobs, "ingest_build_score": total, "target_ratio": REFRESH_TARGET}


def with_comparison(refreshed: dict, result: dict) -> dict:
    """The refresh with its comparison against the repetition whose state it refreshed (the last; after
    ``--resume``, the merged one)."""
    return {**refreshed, "comparison": refresh_comparison(result["runs"][-1]["jobs"], refreshed["jobs"])}


def refresh_markdown(refreshed: dict) -> list[str]:
    """The refresh's lines of the summary: the delivery, and each job's seconds against the full run's."""
    d, c = refreshed["delivery"], refreshed["comparison"]
    changes = ", ".join(f"{k} {v:,}" for k, v in d["changes"].items())
    lines = ["", f"## Refresh: the next delivery ({d['snapshot']}, a snapshot after {d['previous_snapshot']})", "",
             f"Changed registrations ({sum(d['changes'].values()):,} of {d['on_rolls']:,} on the rolls): {changes}; "
             f"one more day of events ({d['event_day']}): {d['rows'].get('contacts', 0):,} contacts, "
             f"{d['rows'].get('digital', 0):,} digital. Written in {d['seconds']:,.1f} s (not counted below). "
             "Train is not re-run.", "",
             "| job | full run s | refresh s | refresh / full |", "|---|---:|---:|---:|"]

    def cell(v, fmt):
        return "—" if v is None else fmt.format(v)

    for name, r in c["jobs"].items():
        lines.append(f"| {name} | {cell(r['full_seconds'], '{:,.1f}')} | {cell(r['refresh_seconds'], '{:,.1f}')} | "
                     f"{cell(r['ratio'], '{:.2f}')} |")
    t = c["ingest_build_score"]
    lines += [f"| **ingest + build + score** | **{cell(t['full_seconds'], '{:,.1f}')}** | "
              f"**{cell(t['refresh_seconds'], '{:,.1f}')}** | **{cell(t['ratio'], '{:.2f}')}** |", "",
              f"Target: a refresh's ingest + build + score within {c['target_ratio']:.0%} of the full run's."]
    resolution = ((refreshed["jobs"].get("build") or {}).get("summary") or {}).get("resolution") or {}
    if resolution.get("resolved") == "changed":
        lines += ["", f"Identity resolution resolved again {resolution['registrations_resolved_again']:,} of "
                      f"{resolution['registrations']:,} registrations (the persons that "
                      f"{resolution['changed_registrations']:,} changed and "
                      f"{resolution['removed_registrations']:,} removed registrations reach)."]
    elif resolution:
        lines += ["", f"Identity resolution resolved every registration ({resolution.get('method')})."]
    for kind in ("contacts", "digital"):
        linked = resolution.get(kind) or {}
        if isinstance(linked.get("linked_again"), int):
            lines.append(f"Linking {kind}: {linked['linked_again']:,} of {linked['profiles']:,} profiles linked "
                         "again (new, or reached by a changed person row).")
        elif linked:
            lines.append(f"Linking {kind}: every one of {linked['profiles']:,} profiles linked again.")
    return lines


def add_floors(spark: SparkSession, settings: Settings, figures: dict[str, dict], progress: Path | None) -> None:
    """Measure the floor of each job in ``figures`` that has none yet, and log it to ``progress``.

    Args:
        spark: the session.
        settings: the state the jobs left.
        figures: per job its figures; a job without ``_outputs`` (a stopped run's) has them rebuilt from the state.
            The train floor uses the optimizer passes already counted in the train job's Spark totals.
        progress: the progress file.
    """
    tmp = settings.storage.lakehouse.parent / "floor"
    for name in IO_JOBS:
        if name in figures and "floor" not in figures[name]:
            job = figures[name]
            outputs = job["_outputs"] if "_outputs" in job else kept_outputs(settings, job)
            job["floor"] = io_floor(name, spark, settings, outputs, tmp)
            log_progress(progress, {"floor_of": name, **job["floor"]})
    if "train" in figures and "floor" not in figures["train"]:
        figures["train"]["floor"] = training_floor(figures["train"]["spark"], pass_seconds(spark, settings))
        log_progress(progress, {"floor_of": "train", **figures["train"]["floor"]})


def kept_event_log(events_dir: Path, start: dict) -> Path:
    """The event log of the run a progress file records (its only log, for a file without the run's app id)."""
    if start.get("app_id"):
        return sparkmetrics.event_log(events_dir, start["app_id"])
    logs = sorted(p for p in events_dir.iterdir() if p.is_file())
    if len(logs) != 1:
        raise FileNotFoundError(f"{events_dir} holds {len(logs)} event logs and the progress file names none")
    return logs[0]


def log_progress(progress: Path | None, record: dict) -> None:
    """Append one record (a run's start, a job's figures, a floor, a peer run) to the progress file."""
    if progress is not None:
        with progress.open("a") as out:
            out.write(json.dumps(record, default=str) + "\n")


def read_progress(progress: Path, settings: Settings) -> tuple[dict, list[dict], dict[str, list[dict]], dict]:
    """What a run stopped part-way had measured, from its progress file.

    Returns:
        The run's start record (command, master), its repetitions (a job seen
        again starts the next one), the peer runs, and the refresh (``delivery``
        and the ``jobs`` it finished; empty when the run never reached it).
    """
    start, runs, peers, refreshed = {}, [{}], {}, {}
    for line in progress.read_text().splitlines():
        record = json.loads(line)
        if "run" in record:
            start = record["run"]
        elif "job" in record:
            name = record.pop("job")
            if name in runs[-1]:
                runs.append({})
            runs[-1][name] = record
        elif "floor_of" in record:
            runs[-1][record.pop("floor_of")]["floor"] = record
        elif "peer" in record:
            peers.setdefault(record.pop("peer"), []).append(record)
        elif "refresh_delivery" in record:
            refreshed = {"delivery": record["refresh_delivery"], "jobs": {}}
        elif "refresh_job" in record:
            refreshed["jobs"][record.pop("refresh_job")] = record
    sizes = table_sizes(settings)  # the state as the run left it
    return start, [run_record(figures, sizes) for figures in runs if figures], peers, refreshed


def without_outputs(job: dict) -> dict:
    """A job's figures without the list of files it added (needed only by the floors)."""
    return {k: v for k, v in job.items() if k != "_outputs"}


def set_floor_ratio(job: dict) -> None:
    """Set a job's ``floor_ratio`` (job seconds / floor seconds) from its floor; none for a floor that rounds to 0 s."""
    job.pop("floor_ratio", None)
    if job.get("floor", {}).get("seconds"):
        job["floor_ratio"] = round(job["seconds"] / job["floor"]["seconds"], 1)


def run_record(figures: dict[str, dict], sizes: dict[str, dict]) -> dict:
    """One repetition's record: its jobs' figures with floor ratios, the table sizes, the turnout AUC."""
    for job in figures.values():
        set_floor_ratio(job)
    result = {"jobs": figures, "table_sizes": sizes,
              "total_seconds": round(sum(j["seconds"] for j in figures.values()), 1)}
    if "train" in figures:
        result["turnout"] = turnout_auc(figures["train"]["summary"])
    return result


# -- results -----------------------------------------------------------------------


def medians(reps: list[dict]) -> dict:
    """Per job the median of each repetition's headline figures."""
    out = {}
    for name in reps[0]["jobs"]:
        runs = [r["jobs"][name] for r in reps]
        def med(get):
            values = [v for v in (get(j) for j in runs) if v is not None]
            return round(statistics.median(values), 2) if values else None
        out[name] = {
            "seconds": med(lambda j: j["seconds"]),
            "voters_per_second": med(lambda j: j["voters_per_second"]),
            "rows_out_per_second": med(lambda j: j["rows_out_per_second"]),
            "peak_driver_jvm_gib": med(lambda j: j["peak_driver_jvm_gib"]),
            "peak_python_gib": med(lambda j: j["peak_python_gib"]),
            "peak_executor_rss_gib": med(lambda j: j["peak_executor_rss_gib"]),
            "peak_executor_heap_gib": med(lambda j: j["peak_executor_heap_gib"]),
            "shuffle_bytes": med(lambda j: j["spark"]["shuffle_write_bytes"]),
            "spill_bytes": med(lambda j: j["spark"]["spill_disk_bytes"]),
            "floor_seconds": med(lambda j: j.get("floor", {}).get("seconds")),
            "floor_ratio": med(lambda j: j.get("floor_ratio")),
        }
    out["total"] = {"seconds": round(statistics.median(r["total_seconds"] for r in reps), 1)}
    return out


def peer_medians(runs: list[dict]) -> dict:
    """The median time and memory of a peer's repetitions (or its failure)."""
    ok = [r for r in runs if "failed" not in r]
    if not ok:
        return {"failed": runs[0]["failed"], "stderr": runs[0].get("stderr", "")[-500:]}
    return {"seconds": statistics.median(r["total_seconds"] for r in ok),
            "peak_rss_gib": statistics.median(r["peak_rss_gib"] for r in ok),
            "auc": max(r["models"][r["models"]["best"]]["auc"] for r in ok),
            "aucs": {m: ok[0]["models"][m]["auc"] for m in ("lr", "gbt")}, "voters": ok[0]["voters"],
            "reps": len(ok)}


def versions() -> dict:
    """Versions of everything the figures depend on."""
    import deltalake, duckdb, pandas, pyspark, sklearn  # noqa: E401 (only their versions)

    return {"votelake": votelake.__version__, "python": platform.python_version(), "pyspark": pyspark.__version__,
            "deltalake": deltalake.__version__, "mlflow": mlflow.__version__, "pandas": pandas.__version__,
            "duckdb": duckdb.__version__, "scikit-learn": sklearn.__version__}


def gib(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**30:,.2f}"


def markdown(result: dict) -> str:
    """The summary of one size: per job medians, floors, memory, Spark totals, tables, peers."""
    m = result["medians"]
    mach = result["machine"]
    lines = [f"# The pipeline at {result['voters']:,} voters", "",
             f"Command: `{result['command']}`  ", f"Spark master: `{result['master']}`; {result['reps']} "
             f"repetition(s), medians shown; {mach['nproc']} cores, {mach['memory_gb']} GB; versions: "
             + ", ".join(f"{k} {v}" for k, v in result["versions"].items()), "",
             *([f"**Stopped part-way:** {result['stopped']}", ""] if result.get("stopped") else []),
             "Peak memory: the driver JVM's resident set, sampled from /proc (in local mode it runs the "
             "executors too; a JVM keeps the heap it grew), and from Spark's event log the largest executor's "
             "resident set and JVM heap in use (on a cluster, the executors' own).", "",
             "| job | seconds | voters/s | rows out/s | floor s | job / floor | driver RSS peak GiB | executor RSS "
             "peak GiB | heap peak GiB | Python peak GiB | shuffle written GiB | spilled to disk GiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(value, fmt="{}") -> str:
        return "—" if value is None or value == 0 else fmt.format(value)

    for name in result["jobs"]:
        j = m[name]
        lines.append(f"| {name} | {j['seconds']:,.1f} | {j['voters_per_second']:,.0f} | "
                     f"{cell(j['rows_out_per_second'], '{:,.0f}')} | {cell(j['floor_seconds'])} | "
                     f"{cell(j['floor_ratio'])} | {j['peak_driver_jvm_gib']} | {j['peak_executor_rss_gib']} | "
                     f"{j['peak_executor_heap_gib']} | "
                     f"{j['peak_python_gib']} | {gib(j['shuffle_bytes'])} | {gib(j['spill_bytes'])} |")
    lines += [f"| **total** | **{m['total']['seconds']:,.1f}** |" + " |" * 11, ""]
    last = result["runs"][-1]
    if "turnout" in last:
        t = last["turnout"]
        lines += [f"Turnout model (champion, held-out voters): AUC {t['auc']}; learners "
                  + ", ".join(f"{k} {v}" for k, v in t["learners"].items()) + f"; trained in {t['train_seconds']} s.", ""]
    if "rows_read" in last["jobs"].get("train", {}).get("floor", {}):  # (floors counted per MLflow run lack it)
        f = last["jobs"]["train"]["floor"]
        lines += [f"Training floor: {f['passes']:,} optimizer passes reading {f['rows_read']:,} rows; one pass over "
                  f"{f['pass']['rows']:,} cached rows takes {f['pass']['seconds']} s (scaled to each pass's rows).", ""]
    lines += ["Where each job's time goes (last repetition): the lines that started its costliest Spark jobs, "
              "with those jobs' wall seconds and their tasks' run seconds (from the event log).", "",
              "| job | call site | wall s | task s |", "|---|---|---:|---:|"]
    for name, job in last["jobs"].items():
        for site in job["spark"].get("call_sites", [])[:CALL_SITES_SHOWN]:
            lines.append(f"| {name} | `{site['site']}` | {site['wall_seconds']:,.1f} | {site['task_seconds']:,.1f} |")
    lines += ["", "Delta tables after the last repetition:", "", "| table | files | MiB | rows |", "|---|---:|---:|---:|"]
    for name, t in sorted(last["table_sizes"].items()):
        lines.append(f"| {name} | {t['files']:,} | {t['bytes'] / 2**20:,.1f} | {t['rows']:,} |")
    if result.get("refresh"):
        lines += refresh_markdown(result["refresh"])
    if result.get("peers"):
        lines += ["", "| peer | seconds | peak RSS GiB | AUC (best) | LR AUC | GBT AUC | voters |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for engine, p in result["peers"].items():
            lines.append(f"| {engine} | failed: {p['failed']} | | | | | |" if "failed" in p else
                         f"| {engine} | {p['seconds']:,.1f} | {p['peak_rss_gib']} | {p['auc']} | {p['aucs']['lr']} | "
                         f"{p['aucs']['gbt']} | {p['voters']:,} |")
    return "\n".join(lines) + "\n"


def merged(previous: dict, result: dict) -> dict:
    """A resumed run's jobs added to the previous run of the same state (one repetition each)."""
    run, new = previous["runs"][0], result["runs"][0]
    run["jobs"].update(new["jobs"])
    run["jobs"] = {name: run["jobs"][name] for name in JOBS if name in run["jobs"]}
    run["table_sizes"] = new["table_sizes"]
    run["total_seconds"] = round(sum(j["seconds"] for j in run["jobs"].values()), 1)
    if "turnout" in new:
        run["turnout"] = new["turnout"]
    peer_runs = {**previous.get("peer_runs", {}), **result["peer_runs"]}
    return {**result, "command": f"{previous['command']} && {result['command']}", "jobs": list(run["jobs"]),
            "medians": medians([run]), "runs": [run],
            "peers": {engine: peer_medians(runs) for engine, runs in peer_runs.items()}, "peer_runs": peer_runs}


def main(argv: list[str] | None = None) -> dict:
    """Run the pipeline ``--reps`` times (and the peers), write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True, help="scratch folder (wiped per repetition)")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--peers", default="", help="comma-separated: pandas, duckdb")
    parser.add_argument("--no-floors", dest="floors", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the state the run leaves (one repetition)")
    parser.add_argument("--resume", action="store_true",
                        help="run --jobs on the state a --keep run left, and add them to its results")
    parser.add_argument("--refresh", action="store_true",
                        help="after the run, write the next delivery and re-run ingest, build and score on it")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default=None, help="results file stem (default pipeline_<voters/1000>k, "
                                                     "pipeline_refresh_<voters/1000>k with --refresh)")
    parser.add_argument("--from-progress", metavar="WHY",
                        help="write the results of a run under --root that stopped part-way, saying why it stopped")
    parser.add_argument("--recount-train-floor", action="store_true",
                        help="count the train floor of the results of the run under --root again from its event log")
    parser.add_argument("--measure-floors", action="store_true",
                        help="measure the floors a run under --root stopped before, on the state it kept, "
                             "adding them to its progress file (then --from-progress)")
    args = parser.parse_args(argv)
    if (args.resume or args.keep) and args.reps != 1:
        parser.error("--keep and --resume run one repetition")
    stem = args.name or f"pipeline_{'refresh_' if args.refresh else ''}{args.voters // 1000}k"
    root = args.root.resolve()
    progress = root / "progress.jsonl"
    command = "python -m bench pipeline " + " ".join(argv or sys.argv[1:])
    if args.from_progress:
        start, reps, peers, refreshed = read_progress(progress, settings_for(args.voters, root / "state",
                                                                             args.overrides))
        result = result_of(args.voters, start.get("command", command), start.get("master"), reps, peers)
        result["stopped"] = args.from_progress
        if refreshed:
            result["refresh"] = with_comparison(refreshed, result)
        write_results(stem, result, markdown(result))
        return result
    events_dir = root / "eventlog"
    if args.recount_train_floor:
        start = json.loads(progress.read_text().splitlines()[0])["run"]
        result = recount_train_floor(json.loads((RESULTS / f"{stem}.json").read_text()),
                                     kept_event_log(events_dir, start))
        write_results(stem, result, markdown(result))
        return result
    if args.measure_floors:
        settings = settings_for(args.voters, root / "state", args.overrides)
        _, reps, _, _ = read_progress(progress, settings)
        add_floors(session_for(settings), settings, reps[-1]["jobs"], progress)
        return {name: job.get("floor") for name, job in reps[-1]["jobs"].items()}
    events_dir.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        progress.unlink(missing_ok=True)
    jobs = [n for n in args.jobs.split(",") if n]
    reps, peers = [], {}
    spark = app_id = None
    for rep in range(args.reps):
        state = root / "state"
        if not args.resume:
            shutil.rmtree(state, ignore_errors=True)
        event_log = {**sparkmetrics.EVENT_LOG_CONF, "spark.eventLog.dir": events_dir.as_uri()}
        # MLflow keeps one database engine per tracking URI for the life of the process: after the
        # wipe it would write to the unlinked SQLite file ("readonly database"), so each repetition
        # of several has its own.
        store = [f"mlflow.tracking_uri=sqlite:///{state / f'mlflow-{rep + 1}.db'}"] if args.reps > 1 else []
        settings = settings_for(args.voters, state, [*args.overrides, *store,
                                                     *(f"spark.conf.{k}={v}" for k, v in event_log.items())])
        if spark is None:
            spark = session_for(settings)
            app_id = spark.conf.get("spark.app.id")
            log_progress(progress, {"run": {"command": command, "master": spark.conf.get("spark.master"),
                                            "app_id": app_id}})
        reps.append(repetition(spark, settings, events_dir, app_id, jobs, args.floors, progress))
        print(f"[bench] repetition {rep + 1}: {reps[-1]['total_seconds']} s", flush=True)
        for engine in filter(None, args.peers.split(",")):
            peers.setdefault(engine, []).append(run_peer(engine, settings.landing, root / "peer"))
            log_progress(progress, {"peer": engine, **peers[engine][-1]})
    # After the peers, which read the full run's landing files only.
    refreshed = refresh(spark, settings, events_dir, app_id, progress) if args.refresh else None
    result = result_of(args.voters, command, spark.conf.get("spark.master"), reps, peers)
    if args.resume and (RESULTS / f"{stem}.json").exists():
        result = merged(json.loads((RESULTS / f"{stem}.json").read_text()), result)
    if refreshed is not None:
        result["refresh"] = with_comparison(refreshed, result)
    write_results(stem, result, markdown(result))
    if not (args.keep or args.resume):
        shutil.rmtree(root / "state", ignore_errors=True)
    return result


def result_of(voters: int, command: str, master: str | None, reps: list[dict], peers: dict[str, list[dict]]) -> dict:
    """The results of one size: the command, machine and versions, per-job medians, every repetition, the peers."""
    return {
        "voters": voters, "reps": len(reps), "command": command, "master": master, "machine": machine(),
        "versions": versions(), "jobs": list(reps[0]["jobs"]), "medians": medians(reps), "runs": reps,
        "peers": {engine: peer_medians(runs) for engine, runs in peers.items()}, "peer_runs": peers,
    }


if __name__ == "__main__":
    main()
