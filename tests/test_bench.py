"""The benchmark's own arithmetic: event-log totals, Delta files a job added, the scaling exponent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from bench import sparkmetrics, summary
from bench.model_quality import JOBS, settings_for
from bench.pipeline import (REFRESH_TARGET, added, kept_event_log, kept_outputs, log_progress, markdown, now_ms,
                            read_progress, recount_train_floor, refresh_comparison, result_of, table_files,
                            training_floor, with_comparison)
from bench.summary import exponent, memory_limit_voters
from votelake.lakehouse import load_catalog


def task_end(stage: int, finish_ms: int, run_ms: int, shuffle_written: int, spilled: int, records: int = 0) -> dict:
    """A ``SparkListenerTaskEnd`` event as Spark's event log writes it (the fields the bench reads)."""
    return {"Event": "SparkListenerTaskEnd", "Stage ID": stage, "Task Info": {"Finish Time": finish_ms},
            "Task Metrics": {"Executor Run Time": run_ms, "Memory Bytes Spilled": spilled * 4,
                             "Disk Bytes Spilled": spilled,
                             "Input Metrics": {"Bytes Read": 1000, "Records Read": records},
                             "Output Metrics": {"Bytes Written": 10, "Records Written": 1},
                             "Shuffle Read Metrics": {"Remote Bytes Read": 0, "Local Bytes Read": 7},
                             "Shuffle Write Metrics": {"Shuffle Bytes Written": shuffle_written}}}


def job_start(job: int, submitted_ms: int, stages: dict[int, str], query: int | None = None) -> dict:
    properties = {"callSite.short": "$anonfun$withThreadLocalCaptured$2 at CompletableFuture.java:1768"}
    if query is not None:
        properties["spark.sql.execution.root.id"] = str(query)
    return {"Event": "SparkListenerJobStart", "Job ID": job, "Submission Time": submitted_ms,
            "Stage Infos": [{"Stage ID": s, "Stage Name": n} for s, n in stages.items()], "Properties": properties}


def query(execution: int, root: int, description: str, started_ms: int, ended_ms: int) -> list[dict]:
    """A SQL execution's start and end, as :func:`sparkmetrics.read_events` yields them."""
    return [{"Event": sparkmetrics.SQL_START, "executionId": execution, "rootExecutionId": root,
             "description": description, "time": started_ms},
            {"Event": sparkmetrics.SQL_END, "executionId": execution, "time": ended_ms}]


def job_end(job: int, completed_ms: int) -> dict:
    return {"Event": "SparkListenerJobEnd", "Job ID": job, "Completion Time": completed_ms}


def stage_metrics(stage: int, completed_ms: int, executor: str, heap: int, rss: int) -> list[dict]:
    return [{"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": stage, "Completion Time": completed_ms}},
            {"Event": "SparkListenerStageExecutorMetrics", "Executor ID": executor, "Stage ID": stage,
             "Stage Attempt ID": 0, "Executor Metrics": {"JVMHeapMemory": heap, "ProcessTreeJVMRSSMemory": rss}}]


EVENTS = [
    # Before the window: counted nowhere.
    job_start(0, 500, {0: "count at NativeMethodAccessorImpl.java:0"}),
    task_end(0, 900, 5000, 999, 999),
    *stage_metrics(0, 900, "driver", 9 * 2**30, 9 * 2**30),
    # In the window: an ordinary job and two optimizer passes (L-BFGS step, tree level).
    # A query (and a broadcast under it) run from build.py:257; its job is named by the query.
    query(7, 7, "first at build.py:257", 1000, 1260)[0],
    query(8, 7, "broadcast exchange", 1010, 1020)[0],
    job_start(1, 1000, {1: "parquet at NativeMethodAccessorImpl.java:0"}, query=7),
    task_end(1, 1100, 1500, 300, 0),
    task_end(1, 1200, 500, 200, 64),
    job_end(1, 1250),
    query(8, 7, "broadcast exchange", 1010, 1020)[1],
    query(7, 7, "first at build.py:257", 1000, 1260)[1],
    *stage_metrics(1, 1200, "driver", 2 * 2**30, 3 * 2**30),
    # Stage 2 is an ancestor an earlier query computed, named by that query's thread; stage 3 is the step.
    job_start(2, 1300, {3: "treeAggregate at RDDLossFunction.scala:61",
                        2: "$anonfun$withThreadLocalCaptured$2 at CompletableFuture.java:1768"}),
    task_end(2, 1350, 100, 0, 0),
    task_end(3, 1400, 100, 0, 0, records=40),
    job_end(2, 1450),
    job_start(3, 1500, {4: "collectAsMap at RandomForest.scala:693"}),
    task_end(4, 1600, 100, 0, 0, records=60),
    job_end(3, 1610),
    *stage_metrics(4, 1600, "driver", 1 * 2**30, 4 * 2**30),
    *stage_metrics(4, 1600, "1", 2**29, 2**30),
]


def test_event_log_totals_count_only_the_window():
    summary = sparkmetrics.summarize(EVENTS, 1000, 2000)
    assert summary == {
        "jobs": 3, "tasks": 5, "task_seconds": 2.3, "input_bytes": 5000, "output_bytes": 50,
        "shuffle_read_bytes": 35, "shuffle_write_bytes": 500, "spill_memory_bytes": 256, "spill_disk_bytes": 64,
        "optimizer_passes": 2, "optimizer_records": 100,
        "peak_memory": {"driver": {"JVMHeapMemory": 2 * 2**30, "JVMOffHeapMemory": 0, "OnHeapExecutionMemory": 0,
                                   "ProcessTreeJVMRSSMemory": 4 * 2**30, "ProcessTreePythonRSSMemory": 0},
                        "1": {"JVMHeapMemory": 2**29, "JVMOffHeapMemory": 0, "OnHeapExecutionMemory": 0,
                              "ProcessTreeJVMRSSMemory": 2**30, "ProcessTreePythonRSSMemory": 0}},
        # A query's jobs by the query's line, other jobs by their own call site.
        "call_sites": [{"site": "first at build.py:257", "wall_seconds": 0.3, "task_seconds": 2.0},
                       {"site": "$anonfun$withThreadLocalCaptured$2 at CompletableFuture.java:1768",
                        "wall_seconds": 0.3, "task_seconds": 0.3}],
    }
    assert sparkmetrics.peak_gib(summary, "ProcessTreeJVMRSSMemory") == 4.0


def test_optimizer_passes_are_named_by_the_jobs_result_stage():
    # Job 1 writes Parquet: no pass. Job 2's result stage is an L-BFGS step, job 3's a tree level.
    assert sparkmetrics.summarize(EVENTS, 1000, 1250)["optimizer_passes"] == 0
    assert sparkmetrics.summarize(EVENTS, 1300, 1450)["optimizer_passes"] == 1
    assert sparkmetrics.summarize(EVENTS, 1500, 1600)["optimizer_passes"] == 1


def test_the_training_floor_prices_each_pass_by_the_rows_it_read(tmp_path: Path):
    # One reference pass reads 50 rows in 0.5 s; the passes in 1000-2000 read 100 rows: 1 s.
    reference = {"rows": 50, "seconds": 0.5}
    assert training_floor(sparkmetrics.summarize(EVENTS, 1000, 2000), reference) == {
        "pass": reference, "passes": 2, "rows_read": 100, "seconds": 1.0}
    # A finished run's train floor, counted again from its event log.
    log = tmp_path / "local-1"
    log.write_text("\n".join(json.dumps(e, separators=(",", ":")) for e in EVENTS) + "\n")
    train = {**job_figures(4.0), "window_ms": [1000, 2000], "floor": {"pass": reference, "passes": 0, "seconds": 0}}
    result = result_of(1000, "python -m bench pipeline --voters 1000", "local[2]",
                       [{"jobs": {"train": train}, "table_sizes": {}, "total_seconds": 4.0}], {})
    recounted = recount_train_floor(result, log)
    assert recounted["runs"][0]["jobs"]["train"]["floor"]["seconds"] == 1.0
    assert recounted["medians"]["train"]["floor_ratio"] == 4.0
    assert recounted["runs"][0]["jobs"]["train"]["spark"]["optimizer_passes"] == 2


def test_event_log_of_a_running_application_skips_a_half_written_line(tmp_path: Path):
    """Spark writes compact JSON; a SQL execution's start carries its whole plan, of which only the head is read."""
    sql_start = {"Event": sparkmetrics.SQL_START, "executionId": 7, "rootExecutionId": 7,
                 "description": 'first at "build.py":257', "details": "a stack", "physicalPlanDescription": "x" * 10_000,
                 "sparkPlanInfo": {"nodeName": "Project", "metrics": [{"name": "time", "accumulatorId": 3}]},
                 "time": 1000, "modifiedConfigs": {}, "jobTags": [], "jobGroupId": None}
    unread = {"Event": "SparkListenerTaskStart", "Stage ID": 1}
    log = tmp_path / "local-1.inprogress"
    lines = [json.dumps(e, separators=(",", ":")) for e in (EVENTS[0], unread, sql_start, EVENTS[1])]
    log.write_text("\n".join(lines) + '\n{"Event":"SparkListenerTa')
    assert sparkmetrics.event_log(tmp_path, "local-1") == log
    assert list(sparkmetrics.read_events(log)) == [
        EVENTS[0], {"Event": sparkmetrics.SQL_START, "executionId": 7, "rootExecutionId": 7,
                    "description": 'first at "build.py":257', "time": 1000}, EVENTS[1]]
    with pytest.raises(FileNotFoundError, match="local-2"):
        sparkmetrics.event_log(tmp_path, "local-2")


def test_files_a_job_added_to_a_delta_table(tmp_path: Path):
    uri = str(tmp_path / "t")
    assert table_files(uri) == {}
    write_deltalake(uri, pa.table({"x": [1, 2, 3]}))
    before = {"t": table_files(uri)}
    write_deltalake(uri, pa.table({"x": [4, 5]}), mode="append")
    after = {"t": table_files(uri)}
    new = added(before, after)
    assert list(new) == ["t"] and new["t"]["rows"] == 2 and len(new["t"]["files"]) == 1
    assert new["t"]["bytes"] == after["t"][new["t"]["files"][0]][0] > 0
    assert Path(new["t"]["files"][0]).exists()
    assert added(after, after) == {}


def test_scaling_exponent_and_memory_extrapolation():
    assert exponent([100_000, 1_000_000], [10.0, 100.0]) == pytest.approx(1.0)
    assert exponent([1, 10, 100], [3.0, 300.0, 30_000.0]) == pytest.approx(2.0)
    assert exponent([1_000_000], [100.0]) is None
    # A small size's fixed cost flattens the slope over every size; the two largest show the linear part.
    sizes = [result_of(v, "python -m bench pipeline", "local[2]",
                       [{"jobs": {"synth": job_figures(s)}, "table_sizes": {}, "total_seconds": s}], {})
             for v, s in [(100_000, 50.0), (1_000_000, 100.0), (5_000_000, 500.0)]]
    assert "| synth | 50.0 | 100.0 | 500.0 | 0.57 | 1.00 |" in summary.markdown(sizes)
    # 2 GiB at 1M, 6 GiB at 5M: 1 GiB per million more, so 24 GiB at 23M.
    assert memory_limit_voters([(1_000_000, 2.0), (5_000_000, 6.0)], 24.0) == 23_000_000
    assert memory_limit_voters([(1_000_000, 2.0)], 24.0) is None


def test_a_marker_query_is_logged_only_once_its_end_is_written(tmp_path: Path):
    log = tmp_path / "local-1.inprogress"
    marker = "votelake_bench_drain_42"
    start = {"Event": sparkmetrics.SQL_START, "executionId": 31, "rootExecutionId": 31,
             "description": "collect at pipeline.py:1", "details": "",
             "physicalPlanDescription": f"Project [{marker} AS marker#1]", "time": 5000}
    lines = [json.dumps(e, separators=(",", ":")) for e in (*EVENTS, start)]
    log.write_text("\n".join(lines) + "\n")
    assert not sparkmetrics.query_logged(log, marker)
    end = {"Event": sparkmetrics.SQL_END, "executionId": 31, "time": 5010}
    log.write_text("\n".join([*lines, json.dumps(end, separators=(",", ":"))]) + "\n")
    assert sparkmetrics.query_logged(log, marker)
    assert not sparkmetrics.query_logged(log, "votelake_bench_drain_43")


def job_figures(seconds: float) -> dict:
    """The figures the bench records for one job (those the summaries read)."""
    return {"seconds": seconds, "voters_per_second": 1000 / seconds, "rows_out_per_second": 0,
            "peak_driver_jvm_gib": 2.0, "peak_python_gib": 0.5, "peak_executor_rss_gib": 2.0,
            "peak_executor_heap_gib": 1.0, "spark": {"shuffle_write_bytes": 0, "spill_disk_bytes": 0, "call_sites": []}}


def test_a_run_stopped_part_way_keeps_what_it_measured(tmp_path: Path):
    progress = tmp_path / "progress.jsonl"
    log_progress(progress, {"run": {"command": "python -m bench pipeline --voters 1000", "master": "local[2]"}})
    for name, seconds in [("synth", 10.0), ("ingest", 20.0)]:
        log_progress(progress, {"job": name, **job_figures(seconds)})
    log_progress(progress, {"floor_of": "ingest", "read_seconds": 1.0, "write_seconds": 3.0, "seconds": 4.0})
    log_progress(progress, {"job": "synth", **job_figures(30.0)})  # a second repetition, stopped after synth
    log_progress(progress, {"peer": "duckdb", "failed": "exit code -9"})
    log_progress(None, {"job": "ignored"})  # no progress file: nothing written

    start, reps, peers, refreshed = read_progress(progress, settings_for(1000, tmp_path / "state", []))
    assert start == {"command": "python -m bench pipeline --voters 1000", "master": "local[2]"}
    assert [list(r["jobs"]) for r in reps] == [["synth", "ingest"], ["synth"]]
    assert reps[0]["jobs"]["ingest"]["floor_ratio"] == 5.0 and "floor_ratio" not in reps[0]["jobs"]["synth"]
    assert [r["total_seconds"] for r in reps] == [30.0, 30.0]
    assert reps[0]["table_sizes"] == {}  # the state folder holds no table
    assert peers == {"duckdb": [{"failed": "exit code -9"}]} and refreshed == {}

    stopped = {**result_of(1000, start["command"], start["master"], reps[:1], {}), "stopped": "the sitting ended"}
    assert "**Stopped part-way:** the sitting ended" in markdown(stopped)
    complete = result_of(100, "python -m bench pipeline --voters 100", "local[2]",
                         [{"jobs": {n: job_figures(s) for n, s in [("synth", 1.0), ("ingest", 2.0), ("build", 4.0)]},
                           "table_sizes": {}, "total_seconds": 7.0}], {})
    text = summary.markdown([complete, stopped])
    # The stopped size shows the jobs it reached and no total; the exponent uses the sizes that have a time.
    assert "| ingest | 2.0 | 20.0 | 1.00 | 1.00 |" in text
    assert "| build | 4.0 | — | — | — |" in text and "| total | 7.0 | — | — | — |" in text
    assert "Stopped part-way at 1,000 voters: the sitting ended" in text
    # A run stopped after its last job (its floors measured later) has a total again.
    finished = result_of(2000, "python -m bench pipeline --voters 2000", "local[2]",
                         [{"jobs": {n: job_figures(1.0) for n in JOBS}, "table_sizes": {}, "total_seconds": 5.0}], {})
    assert summary.has_total({**finished, "stopped": "floors measured later"}) and not summary.has_total(stopped)


def test_a_stopped_jobs_outputs_are_the_files_written_in_its_window(tmp_path: Path):
    settings = settings_for(1000, tmp_path / "state", [])
    uri = next(spec.uri for spec in load_catalog(settings) if spec.name == "bronze.ncvoter")
    write_deltalake(uri, pa.table({"x": [1, 2, 3]}))  # an earlier job's file
    time.sleep(0.01)  # the window is in whole milliseconds
    start = now_ms()
    time.sleep(0.01)
    write_deltalake(uri, pa.table({"x": [4, 5]}), mode="append")
    window = (start, now_ms())
    ([path], [(size, rows)]) = zip(*table_files(uri, window).items())
    assert rows == 2 and size > 0 and len(table_files(uri)) == 2
    job = {"window_ms": list(window), "tables": {"bronze.ncvoter": {"bytes": size, "rows": 2}}}
    assert kept_outputs(settings, job) == {"bronze.ncvoter": {"files": [path], "bytes": size, "rows": 2}}
    # A later job that rewrote the table leaves other files: the floors would copy the wrong bytes.
    with pytest.raises(RuntimeError, match="not the ones it recorded"):
        kept_outputs(settings, {**job, "tables": {"bronze.ncvoter": {"bytes": size, "rows": 3}}})


def test_the_event_log_of_a_stopped_run(tmp_path: Path):
    (tmp_path / "local-7").write_text("")
    assert kept_event_log(tmp_path, {"command": "..."}) == tmp_path / "local-7"
    (tmp_path / "local-8.inprogress").write_text("")
    assert kept_event_log(tmp_path, {"app_id": "local-8"}) == tmp_path / "local-8.inprogress"
    with pytest.raises(FileNotFoundError, match="2 event logs"):
        kept_event_log(tmp_path, {})


def test_a_refresh_is_reported_against_the_full_run(tmp_path: Path):
    full = {n: job_figures(s) for n, s in [("synth", 5.0), ("ingest", 20.0), ("build", 60.0), ("train", 30.0),
                                           ("score", 20.0)]}
    refreshed = {n: job_figures(s) for n, s in [("ingest", 4.0), ("build", 50.0), ("score", 18.0)]}
    refreshed["build"]["summary"] = {"resolution": {
        "method": "splink", "resolved": "changed", "registrations": 1003, "changed_registrations": 7,
        "removed_registrations": 0, "registrations_resolved_again": 19,
        "contacts": {"profiles": 1200, "linked_again": 31}, "digital": {"profiles": 2400, "linked_again": "all"}}}
    comparison = refresh_comparison(full, refreshed)
    assert comparison["jobs"]["ingest"] == {"full_seconds": 20.0, "refresh_seconds": 4.0, "ratio": 0.2}
    assert comparison["ingest_build_score"] == {"full_seconds": 100.0, "refresh_seconds": 72.0, "ratio": 0.72}
    assert comparison["target_ratio"] == REFRESH_TARGET
    # A full run without build (run in parts elsewhere): no sum to compare.
    partial = refresh_comparison({n: full[n] for n in ("ingest", "score")}, refreshed)
    assert partial["jobs"]["build"]["ratio"] is None and partial["ingest_build_score"]["ratio"] is None

    result = result_of(1000, "python -m bench pipeline --voters 1000 --refresh", "local[2]",
                       [{"jobs": full, "table_sizes": {}, "total_seconds": 135.0}], {})
    delivery = {"seconds": 3.0, "previous_snapshot": "2026-09-01", "snapshot": "2026-09-08",
                "event_day": "2026-09-01", "on_rolls": 950, "changes": {"move": 3, "new": 3, "removal": 2, "name": 1},
                "rows": {"ncvoter": 1003, "contacts": 5, "digital": 40}}
    result["refresh"] = {"delivery": delivery, "jobs": refreshed, "comparison": comparison}
    text = markdown(result)
    assert "| build | 60.0 | 50.0 | 0.83 |" in text
    assert "| **ingest + build + score** | **100.0** | **72.0** | **0.72** |" in text
    assert "Changed registrations (9 of 950 on the rolls): move 3, new 3, removal 2, name 1" in text
    assert ("Identity resolution resolved again 19 of 1,003 registrations (the persons that 7 changed and "
            "0 removed registrations reach).") in text
    assert "Linking contacts: 31 of 1,200 profiles linked again (new, or reached by a changed person row)." in text
    assert "Linking digital: every one of 2,400 profiles linked again." in text
    # The summary of every size reads a results file with a refresh as before.
    assert "| ingest | 20.0 |" in summary.markdown([json.loads(json.dumps(result))])

    # A run stopped during its refresh keeps the refresh jobs it finished.
    progress = tmp_path / "progress.jsonl"
    log_progress(progress, {"run": {"command": "python -m bench pipeline --voters 1000 --refresh"}})
    for name, job in full.items():
        if name != "train":  # (its figures carry the run summary, not needed here)
            log_progress(progress, {"job": name, **job})
    log_progress(progress, {"refresh_delivery": delivery})
    log_progress(progress, {"refresh_job": "ingest", **refreshed["ingest"]})
    start, reps, _, stopped = read_progress(progress, settings_for(1000, tmp_path / "state", []))
    assert stopped == {"delivery": delivery, "jobs": {"ingest": refreshed["ingest"]}}
    result = {**result_of(1000, start["command"], None, reps, {}), "stopped": "killed during the refresh build"}
    result["refresh"] = with_comparison(stopped, result)
    text = markdown(result)
    assert "| ingest | 20.0 | 4.0 | 0.20 |" in text and "| **ingest + build + score** | **—** | **—** | **—** |" in text
