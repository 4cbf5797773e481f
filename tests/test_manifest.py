"""The run manifest: a job killed between its commits leaves every reader on the last complete set."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from conftest import synthetic_state_settings
from votelake import erasure, readers
from votelake.config import RunSettings
from votelake.jobs import maintain
from votelake.lakehouse import Lakehouse
from votelake.quality import QualityGateError

IDS, HOMES = "silver.person_ids", "silver.households"


@pytest.mark.parametrize("manifest, jobs, expected", [
    (None, ["build", "build"], 3),             # never in a manifest: the latest
    (1, [], 1),                                # the manifest's version is the latest
    (1, ["score"], 1),                         # a later run has not completed
    (1, ["forget", "maintain", ""], 4),        # an erasure, a compaction, a property change keep the run
    (1, ["forget", "build", "maintain"], 1),   # ... but not past a run still incomplete
])
def test_current_version_rule(manifest, jobs, expected):
    commits = [{"version": 0, "metadata": {}}, {"version": 1, "metadata": {"votelake.job": "build"}}]
    commits += [{"version": 2 + i, "metadata": {"votelake.job": job} if job else {}} for i, job in enumerate(jobs)]
    assert readers.current_version(manifest, commits[::-1]) == expected  # any order


def test_newest_manifest_row_wins_per_table():
    rows = [{"table_name": "a", "version": 3, "completed_at": 1, "run_id": "r1"},
            {"table_name": "a", "version": 5, "completed_at": 2, "run_id": "r2"},
            {"table_name": "b", "version": 7, "completed_at": 1, "run_id": "r1"}]
    assert {k: v["run_id"] for k, v in readers.manifest_versions(rows).items()} == {"a": "r2", "b": "r1"}


def _run(spark, settings, version: int) -> Lakehouse:
    """The handle of one build run (its own run version, so its writes are not skipped as done)."""
    return Lakehouse.open(spark, settings.model_copy(update={"run": RunSettings(version=version)}), job="build")


def _ids(spark, n: int):
    schema = T.StructType([T.StructField("registration_key", T.StringType(), False),
                           T.StructField("person_id", T.StringType(), False)])
    return spark.createDataFrame([(f"r{i}", f"p{i}") for i in range(n)], schema)


def _homes(spark, lake: Lakehouse, n: int, size: int = 1):
    return spark.createDataFrame([(f"h{i}", "NC", None, None, None, None, size) for i in range(n)],
                                 lake.table(HOMES).schema)


def test_a_staged_write_is_validated_as_written_and_a_failed_one_never_becomes_current(spark, tmp_path):
    settings = synthetic_state_settings(tmp_path, 1000)
    loose = _run(spark, settings, 1)
    # No manifest lists the table, so readers would see its latest version:
    # the rows are validated before anything is written.
    with pytest.raises(QualityGateError, match="size"):
        loose.write(_homes(spark, loose, 3, size=0), HOMES, "overwrite", staged=True)
    assert loose.version(HOMES) is None

    first = _run(spark, settings, 2)
    first.baseline([HOMES])  # listed empty: the first run's writes are staged too
    empty = first.current(HOMES)
    with pytest.raises(QualityGateError, match="size"):
        first.write(_homes(spark, first, 3, size=0), HOMES, "overwrite", staged=True)
    assert first.version(HOMES) == empty + 1 and first.gates[-1]["rows"] == 3  # validated as written
    assert first.current(HOMES) == empty and first.read_current(HOMES).count() == 0
    assert readers.current_table(tmp_path / "lakehouse", HOMES).to_pyarrow_table().num_rows == 0
    done = _run(spark, settings, 3)
    version = done.write(_homes(spark, done, 3), HOMES, "overwrite", staged=True).version
    done.complete("3", {HOMES: version})

    bad = _run(spark, settings, 4)
    with pytest.raises(QualityGateError, match="size"):
        bad.write(_homes(spark, bad, 3, size=0), HOMES, "overwrite", staged=True)
    assert bad.current(HOMES) == version < bad.version(HOMES) and bad.incomplete([HOMES]) == {HOMES: "build"}
    assertDataFrameEqual(bad.read_current(HOMES), _homes(spark, bad, 3))
    # The same run version re-run skips the write it made, and still refuses it.
    with pytest.raises(QualityGateError, match="size"):
        _run(spark, settings, 4).write(_homes(spark, bad, 3, size=0), HOMES, "overwrite", staged=True)


def test_a_run_killed_between_commits_is_not_seen_until_completed(spark, tmp_path):
    settings = synthetic_state_settings(tmp_path, 1000)
    root = settings.storage.lakehouse
    first = _run(spark, settings, 1)
    done = {IDS: first.write(_ids(spark, 1), IDS, "overwrite", gate=False).version,
            HOMES: first.write(_homes(spark, first, 1), HOMES, "overwrite", gate=False).version}
    assert first.complete("1", done) and not first.complete("1", done)  # recorded once

    killed = _run(spark, settings, 2)
    killed.write(_ids(spark, 2), IDS, "overwrite", gate=False)  # ... and the job dies before households
    assert killed.current(IDS) == done[IDS] < killed.version(IDS)
    assertDataFrameEqual(killed.read_current(IDS), _ids(spark, 1))
    assert killed.incomplete([IDS, HOMES]) == {IDS: "build"}
    # Spark-free readers resolve the same way.
    assert readers.current_versions(root) == done
    assert readers.current_table(root, IDS).to_pyarrow_table().num_rows == 1
    assert pl.read_delta(str(readers.table_path(root, IDS)), version=done[IDS]).height == 1
    shown = subprocess.run([sys.executable, "-m", "votelake.cli", "tables", "--set", f"storage.lakehouse={root}",
                            "--set", "storage.allow_outside=true"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status[IDS]["current"] == done[IDS] and status[IDS]["latest"] == done[IDS] + 1
    assert IDS in shown.stderr and "incomplete" in shown.stderr
    # An erasure now could not reach the version readers use: it refuses before deleting anything.
    with pytest.raises(RuntimeError, match=IDS):
        erasure.forget(spark, settings, {"state_voter_id": ["0"]}, "test")
    # Maintenance compacts, but does not vacuum the files the readers' version needs.
    maintained = maintain.run(spark, settings)
    assert "not_vacuumed" in maintained["tables"][IDS] and "not_vacuumed" not in maintained["tables"][HOMES]
    assert killed.read_current(IDS).count() == 1

    rerun = _run(spark, settings, 3)
    finished = {IDS: rerun.write(_ids(spark, 2), IDS, "overwrite", gate=False).version,
                HOMES: rerun.write(_homes(spark, rerun, 2), HOMES, "overwrite", gate=False).version}
    assert rerun.complete("3", finished)
    assert rerun.incomplete([IDS, HOMES]) == {}
    assert readers.current_versions(root) == finished
    # A handle that read the manifest before sees the completion (it reads the manifest again when it changed).
    assert killed.current(IDS) == finished[IDS] and killed.manifest()[IDS]["run_id"] == "3"
    # A later commit that keeps the run's content (an erasure) moves readers with it.
    rerun.store.delete(rerun.table(HOMES), "household_id = 'h1'")
    assert rerun.current(HOMES) == rerun.version(HOMES) == finished[HOMES] + 1
    assert readers.current_table(root, HOMES).to_pyarrow_table().num_rows == 1
