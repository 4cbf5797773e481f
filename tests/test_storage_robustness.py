"""Robustness of the Delta store: crashed and concurrent writers.

Real processes, real Spark, real Delta tables in tmp_path. Writers in other
processes run a small script (written into tmp_path) that builds its own session
with :func:`votelake.session.build_spark`, as a job would (each with a metastore
of its own: Derby admits one process). Each child JVM costs 10-15 s to start on
a 2-core machine, so the module starts only two of them.

In-process races use a Python UDF: while the store's Spark job runs (after
delta-spark read its snapshot, before it commits) the UDF commits to the same
table from another process with delta-rs, exactly once, like another job would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TEST_SPARK
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.catalog import TableSpec
from votelake.storage import ConcurrentWriteError, DeltaStore, RetryPolicy

SIMPLE = T.StructType([
    T.StructField("voter_id", T.LongType(), False),
    T.StructField("name", T.StringType(), True),
    T.StructField("score", T.DoubleType(), True),
])
BEFORE = [(1, "Ann", 0.5), (2, "Bo", None)]
# Generous limits: a hang fails the test instead of blocking CI.
START_TIMEOUT = 150  # child JVM start on a loaded 2-core machine
STEP_TIMEOUT = 120  # one write in a child
EXIT_TIMEOUT = 60

# The child writer. argv[1] is a JSON file describing its task.
WORKER = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path

    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    cfg = json.loads(Path(sys.argv[1]).read_text())
    out = Path(cfg["out"])

    def report(name, **data):
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps(data))
        tmp.rename(out / (name + ".json"))  # atomic: the parent never reads half a file

    def wait_for(path, timeout=300):
        deadline = time.monotonic() + timeout
        while not Path(path).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(path)
            time.sleep(0.005)

    from pyspark.sql import types as T
    from votelake.catalog import TableSpec
    from votelake.config import SparkSettings
    from votelake.session import build_spark
    from votelake.storage import ConcurrentWriteError, DeltaStore

    SCHEMA = T.StructType([
        T.StructField("voter_id", T.LongType(), False),
        T.StructField("name", T.StringType(), True),
        T.StructField("score", T.DoubleType(), True),
    ])
    table = TableSpec(name=cfg["table"], layer="silver", path=Path(cfg["path"]), schema=SCHEMA)
    spark = build_spark(SparkSettings(**cfg["spark"]), Path(cfg["out"]) / "metastore")
    store = DeltaStore(spark)
    spark.range(10).count()  # warm up, so that the released writers really overlap
    appended = spark.createDataFrame([tuple(r) for r in cfg["append"]], SCHEMA)
    replaced = spark.createDataFrame([tuple(r) for r in cfg["overwrite"]], SCHEMA)
    report("ready")
    wait_for(cfg["go_append"])
    result = store.write(appended, table, "append", operation="APPEND-" + cfg["who"])
    report("appended", version=result.version)
    wait_for(cfg["go_overwrite"])
    try:
        result = store.write(replaced, table, "overwrite", operation="OVERWRITE-" + cfg["who"])
        report("overwritten", ok=True, version=result.version)
    except ConcurrentWriteError as error:
        report("overwritten", ok=False, error=str(error), table=error.table, version=error.version)
    if cfg.get("crash_path"):
        # Large and in many tasks, so that it is still writing when the parent sees its
        # first data file and kills it, even when the parent is slowed by a loaded machine.
        crash = TableSpec(name="silver.crash", layer="silver", path=Path(cfg["crash_path"]), schema=SCHEMA)
        big = spark.range(0, cfg["crash_rows"], 1, 64).selectExpr(
            "id + 1000 AS voter_id", "concat('voter-', CAST(id AS STRING)) AS name", "rand(7) AS score"
        )
        report("crash_ready")
        result = store.write(big, crash, "append")
        report("crash_done", version=result.version)
    spark.stop()
''')


def spec(path: Path, name: str = "silver.people") -> TableSpec:
    """A SIMPLE-schema table at ``path``."""
    return TableSpec(name=name, layer="silver", path=path, schema=SIMPLE)


def people(spark, rows):
    return spark.createDataFrame(rows, SIMPLE)


class Worker:
    """A writer in its own process (and process group, so its JVM dies with it)."""

    def __init__(self, tmp: Path, who: str, table: TableSpec, **task_args):
        self.who = who
        self.out = tmp / f"worker-{who}"
        self.out.mkdir()
        script = tmp / "worker.py"
        if not script.exists():
            script.write_text(WORKER)
        settings = TEST_SPARK.model_copy(update={"app_name": f"robustness-{who}", "driver_memory": "1g"})
        cfg = {
            "who": who, "out": str(self.out), "table": table.name,
            "path": str(table.path), "spark": settings.model_dump(), **task_args,
        }
        (self.out / "task.json").write_text(json.dumps(cfg))
        self.log = open(self.out / "log.txt", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.out / "task.json")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log_tail(self) -> str:
        self.log.flush()
        return (self.out / "log.txt").read_text(errors="replace")[-3000:]

    def result(self, name: str, timeout: float) -> dict:
        """Wait for one of the worker's reports and return it; fail if it dies first."""
        path = self.out / f"{name}.json"
        deadline = time.monotonic() + timeout
        while not path.exists():
            code = self.proc.poll()
            if code is not None and not path.exists():
                pytest.fail(f"worker {self.who} exited with {code} before {name!r}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"worker {self.who}: no {name!r} after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)
        return json.loads(path.read_text())

    def kill(self) -> None:
        """SIGKILL the whole process group (the Python driver and its JVM)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT)
        finally:
            self.log.close()

    def finish(self) -> None:
        """Wait for a normal exit (killing the group on timeout) and check the exit code."""
        try:
            code = self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.who} did not exit within {EXIT_TIMEOUT}s:\n{self.log_tail()}")
        assert code == 0, f"worker {self.who} exited with {code}:\n{self.log_tail()}"


# -- writers in other processes ----------------------------------------------------------

ROWS = {
    "a": ([(100 + i, f"a{i}", float(i)) for i in range(20)], [(500 + i, f"A{i}", 1.0) for i in range(7)]),
    "b": ([(200 + i, f"b{i}", float(i)) for i in range(30)], [(600 + i, f"B{i}", 2.0) for i in range(9)]),
}


@pytest.fixture(scope="module")
def writers(spark, tmp_path_factory):
    """Two processes append to one table together, then overwrite it together; then
    writer ``a`` starts a large append to a second table and is killed mid-write.

    Returns:
        A dict: ``table``, ``after_appends`` (its version once both appends
        committed), ``overwrites`` (each writer's overwrite report), ``crash`` (the
        second table), ``killed`` (writer ``a``'s process).
    """
    tmp = tmp_path_factory.mktemp("writers")
    table, crash = spec(tmp / "people"), spec(tmp / "crash", "silver.crash")
    store = DeltaStore(spark)
    store.write(people(spark, BEFORE), table, "append")
    store.write(people(spark, BEFORE), crash, "append")
    go_append, go_overwrite = tmp / "go-append", tmp / "go-overwrite"
    committed_files = set(crash.path.glob("*.parquet"))
    workers = []
    try:
        for who, (appended, replaced) in ROWS.items():
            extra = {"crash_path": str(crash.path), "crash_rows": 40_000_000} if who == "a" else {}
            workers.append(Worker(
                tmp, who, table, append=appended, overwrite=replaced,
                go_append=str(go_append), go_overwrite=str(go_overwrite), **extra,
            ))
        a, b = workers
        for worker in workers:
            worker.result("ready", START_TIMEOUT)
        go_append.touch()  # the barrier: both start writing at once
        for worker in workers:
            worker.result("appended", STEP_TIMEOUT)
        after_appends = store.version(table)
        go_overwrite.touch()
        overwrites = {w.who: w.result("overwritten", STEP_TIMEOUT) for w in workers}
        b.finish()
        a.result("crash_ready", STEP_TIMEOUT)
        deadline = time.monotonic() + STEP_TIMEOUT
        # The write is in progress once its tasks have put data files in the table's folder.
        while not set(crash.path.glob("*.parquet")) - committed_files:
            assert a.proc.poll() is None, f"writer a exited early:\n{a.log_tail()}"
            assert time.monotonic() < deadline, f"no data file being written:\n{a.log_tail()}"
            time.sleep(0.02)
        a.kill()
        assert not (a.out / "crash_done.json").exists(), "the write finished before it was killed"
    finally:
        for worker in workers:
            worker.kill()
    return {"table": table, "after_appends": after_appends, "overwrites": overwrites,
            "crash": crash, "killed": a.proc}


def test_killed_writer_leaves_previous_version_intact(spark, writers):
    """SIGKILL while Spark writes: no commit, the table reads as before.

    The killed write's data files stay in the table's folder, referenced by no
    version; Delta's VACUUM removes them once older than the retention.
    """
    table, killed = writers["crash"], writers["killed"]
    store = DeltaStore(spark)
    assert killed.returncode == -signal.SIGKILL
    # Version 0 created the table, version 1 is the only write.
    assert store.version(table) == 1
    assert len(store.history(table)) == 2
    assertDataFrameEqual(store.read(table), people(spark, BEFORE))
    referenced = {p.split("/")[-1] for p in spark.read.format("delta").load(str(table.path)).inputFiles()}
    left = {p.name for p in table.path.glob("*.parquet")} - referenced
    assert left, "the killed write left nothing behind to clean up"
    assert set(store.vacuum(table, retention_hours=0, force=True)) >= left
    # The table stays writable.
    after = store.write(people(spark, [(3, "Cy", 1.0)]), table, "append")
    assert after.version == 2
    assertDataFrameEqual(store.read(table), people(spark, BEFORE + [(3, "Cy", 1.0)]))


def test_concurrent_appends_both_commit(spark, writers):
    table, after_appends = writers["table"], writers["after_appends"]
    store = DeltaStore(spark)
    # Version 0 created the table, version 1 is its first write.
    assert after_appends == 3
    expected = BEFORE + ROWS["a"][0] + ROWS["b"][0]
    assertDataFrameEqual(store.read(table, version=after_appends), people(spark, expected))
    appends = {c["operation"]: c["version"] for c in store.history(table) if 0 < c["version"] <= after_appends}
    # One commit each, after the table's first write: blind appends never conflict.
    assert appends.keys() == {"WRITE", "APPEND-a", "APPEND-b"}
    assert appends["WRITE"] == 1
    assert {appends["APPEND-a"], appends["APPEND-b"]} == {2, 3}


def test_concurrent_overwrites_end_consistent(spark, writers):
    table, after_appends, overwrites = writers["table"], writers["after_appends"], writers["overwrites"]
    store = DeltaStore(spark)
    committed = [who for who, report in overwrites.items() if report["ok"]]
    for who, report in overwrites.items():
        if not report["ok"]:
            assert report["table"] == table.name and table.name in report["error"], report
    assert committed, f"neither overwrite committed: {overwrites}"
    latest = store.version(table)
    assert latest == after_appends + len(committed)
    history = store.history(table)
    assert [c["version"] for c in history] == list(range(latest, -1, -1))
    last = history[0]["operation"].removeprefix("OVERWRITE-")
    assert last in committed
    # A full replace: the last committed overwrite's rows, entirely and only.
    assertDataFrameEqual(store.read(table), people(spark, ROWS[last][1]))
    if len(committed) == 2:
        first = history[1]["operation"].removeprefix("OVERWRITE-")
        assertDataFrameEqual(store.read(table, version=latest - 1), people(spark, ROWS[first][1]))


# -- races inside one write, deterministic -----------------------------------------------


# Another writer: plain delta-rs, no Spark (a second JVM would cost 10+ s).
INTERLOPER = textwrap.dedent('''
    import json, sys
    import pyarrow as pa
    from deltalake import write_deltalake

    uri, mode, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    schema = pa.schema([
        pa.field("voter_id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("score", pa.float64()),
    ])
    data = pa.Table.from_pylist([dict(zip(schema.names, r)) for r in rows], schema=schema)
    write_deltalake(uri, data, mode=mode)
''')


def _interloping(spark, table: TableSpec, rows, interloper_rows, mode: str):
    """``rows`` as a DataFrame whose evaluation makes another process commit
    ``interloper_rows`` to the table with delta-rs (once, in ``mode``) while the
    store's Spark job runs: after the store read its snapshot, before it commits."""
    script = table.path.parent / "interloper.py"
    script.write_text(INTERLOPER)
    marker = str(table.path.parent / f"{table.path.name}.interloper")
    argv = [sys.executable, str(script), str(table.path), mode, json.dumps(interloper_rows)]

    def interlope(voter_id):
        # Runs in a Spark Python worker, whatever its interpreter: stdlib only.
        import os
        import subprocess

        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return voter_id
        done = subprocess.run(argv, timeout=120, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"interloper failed: {done.stderr[-2000:]}")
        return voter_id

    return people(spark, rows).withColumn("voter_id", F.udf(interlope, T.LongType())("voter_id"))


def test_overwrite_racing_an_overwrite_retries_and_wins(spark, tmp_path):
    table = spec(tmp_path / "people")
    store = DeltaStore(spark)
    store.write(people(spark, BEFORE), table, "append")  # versions 0 (create) and 1
    mine, theirs = [(7, "Mine", 1.0)], [(8, "Theirs", 2.0)]
    result = store.write(_interloping(spark, table, mine, theirs, "overwrite"), table, "overwrite")
    assert result.committed and result.version == 3 == store.version(table)
    assertDataFrameEqual(store.read(table), people(spark, mine))
    assertDataFrameEqual(store.read(table, version=2), people(spark, theirs))


def test_conflict_after_retries_raises_naming_table_and_version(spark, tmp_path):
    table = spec(tmp_path / "people", name="silver.contested")
    store = DeltaStore(spark)
    store.retry_policy = RetryPolicy(attempts=1)
    store.write(people(spark, BEFORE), table, "append")
    theirs = [(8, "Theirs", 2.0)]
    with pytest.raises(ConcurrentWriteError, match="silver.contested") as caught:
        store.write(_interloping(spark, table, [(7, "Mine", 1.0)], theirs, "overwrite"), table, "overwrite")
    assert (caught.value.table, caught.value.version, caught.value.attempts) == ("silver.contested", 2, 1)
    assert "version 2" in str(caught.value)
    assert store.version(table) == 2
    assertDataFrameEqual(store.read(table), people(spark, theirs))


def test_append_racing_an_overwrite_lands_on_top(spark, tmp_path):
    # A blind append reads nothing of the table, so an overwrite committed meanwhile
    # does not conflict with it: it lands on top. Nothing is lost, nothing doubled.
    table = spec(tmp_path / "people")
    store = DeltaStore(spark)
    store.write(people(spark, BEFORE), table, "append")
    mine, theirs = [(7, "Mine", 1.0)], [(8, "Theirs", 2.0)]
    result = store.write(_interloping(spark, table, mine, theirs, "overwrite"), table, "append")
    assert result.version == 3
    assertDataFrameEqual(store.read(table), people(spark, theirs + mine))


def test_first_write_racing_another_writer_keeps_both(spark, tmp_path):
    # The other writer creates the table while this one's first write runs: its
    # create is a no-op and its append lands on the other's table.
    table = spec(tmp_path / "people")
    store = DeltaStore(spark)
    mine, theirs = [(7, "Mine", 1.0)], [(8, "Theirs", 2.0)]
    result = store.write(_interloping(spark, table, mine, theirs, "append"), table, "append")
    assert result.committed
    assertDataFrameEqual(store.read(table), people(spark, theirs + mine))
