"""What Spark's event log says about a stretch of work: tasks, shuffle, spill, I/O, peak memory, optimizer passes.

A benchmark turns the event log on (:data:`EVENT_LOG_CONF`), runs its jobs one
after the other on one session, and asks :func:`summarize` about each job's
time window. The event log works the same under ``local[*]`` and a standalone
cluster (executor memory included), and needs neither the UI nor a handle on
the JVM. Spark flushes it at every stage and job end, so the file of a running
application (``<app id>.inprogress``) can be read between jobs, once the
events queued before the read are written (:func:`query_logged`).

Event format: one JSON object per line, as written by Spark's
``EventLoggingListener`` (``SparkListenerTaskEnd``, ``SparkListenerJobStart``,
``SparkListenerJobEnd``, ``SparkListenerStageCompleted``,
``SparkListenerStageExecutorMetrics``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

EVENT_LOG_CONF = {
    "spark.eventLog.enabled": "true",
    # Plain JSON lines in one file, so a running application's log can be read.
    "spark.eventLog.compress": "false",
    "spark.eventLog.rolling.enabled": "false",
    # Each executor's peak memory per stage (heap, off-heap, execution memory).
    "spark.eventLog.logStageExecutorMetrics": "true",
    # ... and the resident memory of its process tree: the JVM and its Python workers.
    "spark.executor.processTreeMetrics.enabled": "true",
}

# The result stage (the last, highest-numbered one) of each Spark job an MLlib optimizer
# runs once per pass over its data (the job's lower stages may be skipped ancestors, named
# by whatever query first computed them):
# L-BFGS/OWL-QN gradient steps (logistic regression), one tree level of the
# gradient-boosted trees, and the boosting error update after each tree.
OPTIMIZER_PASS = re.compile(r"RDDLossFunction|RandomForest\.scala|GradientBoostedTrees\.scala")

# How many of the costliest call sites (the line of our code that started the Spark jobs) to keep.
TOP_CALL_SITES = 12

PEAK_METRICS = ("JVMHeapMemory", "JVMOffHeapMemory", "OnHeapExecutionMemory", "ProcessTreeJVMRSSMemory",
                "ProcessTreePythonRSSMemory")


def event_log(directory: Path, app_id: str) -> Path:
    """The event log file of application ``app_id`` (finished or running) in ``directory``."""
    for name in (app_id, f"{app_id}.inprogress"):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(f"no event log for {app_id} in {directory}")


SQL_START = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionStart"
SQL_END = "org.apache.spark.sql.execution.ui.SparkListenerSQLExecutionEnd"
# The events summarize() reads; the SQL ones carry whole query plans (most of the log's bytes),
# so only their leading fields are parsed.
READ = {"SparkListenerTaskEnd", "SparkListenerJobStart", "SparkListenerJobEnd", "SparkListenerStageCompleted",
        "SparkListenerStageExecutorMetrics", SQL_END}
EVENT_NAME = re.compile(r'^\{"Event":\s*"([^"]+)"')
SQL_START_FIELDS = re.compile(r'"executionId":\s*(\d+),\s*"rootExecutionId":\s*(\d+),\s*'
                              r'"description":\s*"((?:[^"\\]|\\.)*)"')
SQL_START_TIME = re.compile(r'"time":\s*(\d+)')


def query_logged(path: Path, marker: str, tail_bytes: int = 8 << 20) -> bool:
    """Whether the log's tail holds the end of a SQL query whose plan contains ``marker``."""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - tail_bytes))
        tail = f.read().decode("utf-8", errors="replace").splitlines()
    started, ended = set(), set()
    for line in tail:
        name = EVENT_NAME.match(line)
        if name and name.group(1) == SQL_START and marker in line and (fields := SQL_START_FIELDS.search(line)):
            started.add(int(fields.group(1)))
        elif name and name.group(1) == SQL_END:
            ended.add(json.loads(line)["executionId"])
    return bool(started & ended)


def read_events(path: Path) -> Iterator[dict]:
    """The events of a log that :func:`summarize` reads; a last line still being written is skipped.

    A SQL execution's start yields only ``Event``, ``executionId``,
    ``rootExecutionId``, ``description`` and ``time``.
    """
    with path.open() as f:
        for line in f:
            name = EVENT_NAME.match(line)
            if not name:
                continue
            if name.group(1) == SQL_START:
                fields, started = SQL_START_FIELDS.search(line), SQL_START_TIME.findall(line)
                if fields and started:
                    yield {"Event": SQL_START, "executionId": int(fields.group(1)),
                           "rootExecutionId": int(fields.group(2)),
                           "description": json.loads(f'"{fields.group(3)}"'), "time": int(started[-1])}
                continue
            if name.group(1) not in READ:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def summarize(events: Iterable[dict], start_ms: int, end_ms: int) -> dict:
    """Totals of the Spark work that finished between two wall-clock instants.

    Args:
        events: the event log's events.
        start_ms: window start, milliseconds since the epoch.
        end_ms: window end.

    Returns:
        ``jobs``, ``tasks``, ``task_seconds`` (executor run time), ``input_bytes``,
        ``output_bytes``, ``shuffle_read_bytes``, ``shuffle_write_bytes``,
        ``spill_memory_bytes``, ``spill_disk_bytes``; ``optimizer_passes`` and
        ``optimizer_records`` (Spark jobs of :data:`OPTIMIZER_PASS` and the rows
        their tasks read); ``peak_memory``: per executor the highest of
        :data:`PEAK_METRICS` over the window's stages, in bytes; ``call_sites``:
        the costliest lines that started Spark work (a SQL query's description,
        else a job's ``callSite.short``), with the wall seconds of their queries
        or jobs and their tasks' run time.
    """
    totals = dict.fromkeys(("tasks", "task_seconds", "input_bytes", "output_bytes", "shuffle_read_bytes",
                            "shuffle_write_bytes", "spill_memory_bytes", "spill_disk_bytes"), 0)
    jobs, pass_jobs, stage_job, stage_end, stage_peaks = 0, set(), {}, {}, []
    pass_records = 0
    # Call sites: a SQL query's jobs (broadcasts and subqueries included) belong to the
    # query's root execution, named by the line that ran it; other jobs (MLlib's) by their own call site.
    job_site, job_started, site_wall, site_tasks, query_site, query_started = {}, {}, {}, {}, {}, {}
    within = range(start_ms, end_ms + 1)
    for event in events:
        kind = event.get("Event")
        if kind == SQL_START and event["time"] in within and event["executionId"] == event["rootExecutionId"]:
            query_site[event["executionId"]] = event["description"]
            query_started[event["executionId"]] = event["time"]
        elif kind == SQL_END and event["executionId"] in query_started:
            site = query_site[event["executionId"]]
            site_wall[site] = site_wall.get(site, 0) + event["time"] - query_started.pop(event["executionId"])
        elif kind == "SparkListenerJobStart" and event["Submission Time"] in within:
            jobs += 1
            stages = event.get("Stage Infos") or []
            result_stage = max(stages, key=lambda s: s["Stage ID"], default={})
            for stage in stages:
                stage_job[stage["Stage ID"]] = event["Job ID"]
            if OPTIMIZER_PASS.search(result_stage.get("Stage Name", "")):
                pass_jobs.add(event["Job ID"])
            properties = event.get("Properties") or {}
            query = properties.get("spark.sql.execution.root.id")
            job_site[event["Job ID"]] = (query_site.get(int(query)) if query is not None else None) or \
                properties.get("callSite.short") or result_stage.get("Stage Name", "?")
            if query is None:
                job_started[event["Job ID"]] = event["Submission Time"]
        elif kind == "SparkListenerJobEnd" and event["Job ID"] in job_started:
            site = job_site[event["Job ID"]]
            site_wall[site] = site_wall.get(site, 0) + event["Completion Time"] - job_started[event["Job ID"]]
        elif kind == "SparkListenerTaskEnd" and event["Task Info"]["Finish Time"] in within:
            m = event.get("Task Metrics") or {}
            shuffle_read = m.get("Shuffle Read Metrics", {})
            totals["tasks"] += 1
            totals["task_seconds"] += m.get("Executor Run Time", 0) / 1000
            totals["input_bytes"] += m.get("Input Metrics", {}).get("Bytes Read", 0)
            totals["output_bytes"] += m.get("Output Metrics", {}).get("Bytes Written", 0)
            totals["shuffle_read_bytes"] += (shuffle_read.get("Remote Bytes Read", 0)
                                             + shuffle_read.get("Local Bytes Read", 0))
            totals["shuffle_write_bytes"] += m.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
            totals["spill_memory_bytes"] += m.get("Memory Bytes Spilled", 0)
            totals["spill_disk_bytes"] += m.get("Disk Bytes Spilled", 0)
            site = job_site.get(stage_job.get(event["Stage ID"]), "?")
            site_tasks[site] = site_tasks.get(site, 0) + m.get("Executor Run Time", 0)
            if stage_job.get(event["Stage ID"]) in pass_jobs:
                pass_records += m.get("Input Metrics", {}).get("Records Read", 0)
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            stage_end[info["Stage ID"]] = info.get("Completion Time", 0)
        elif kind == "SparkListenerStageExecutorMetrics":
            stage_peaks.append(event)
    peaks: dict[str, dict[str, int]] = {}
    for event in stage_peaks:
        if stage_end.get(event["Stage ID"], -1) not in within:
            continue
        executor = peaks.setdefault(event["Executor ID"], dict.fromkeys(PEAK_METRICS, 0))
        for metric in PEAK_METRICS:
            executor[metric] = max(executor[metric], event["Executor Metrics"].get(metric, 0))
    totals["task_seconds"] = round(totals["task_seconds"], 1)
    sites = sorted(site_wall, key=site_wall.get, reverse=True)[:TOP_CALL_SITES]
    return {"jobs": jobs, **totals, "optimizer_passes": len(pass_jobs), "optimizer_records": pass_records,
            "peak_memory": peaks,
            "call_sites": [{"site": s, "wall_seconds": round(site_wall[s] / 1000, 1),
                            "task_seconds": round(site_tasks.get(s, 0) / 1000, 1)} for s in sites]}


def peak_gib(summary: dict, metric: str) -> float:
    """The highest ``metric`` of any executor (the driver included) in a summary, in GiB."""
    values = [executor.get(metric, 0) for executor in summary["peak_memory"].values()]
    return round(max(values, default=0) / 2**30, 2)
