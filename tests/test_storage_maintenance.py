"""Maintenance of Delta tables on delta-spark: time travel by timestamp,
optimize, vacuum, CHECK constraints and schema evolution.

Real Spark, real Delta tables in tmp_path (helpers shared with test_storage.py).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from deltalake import DeltaTable
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual
from test_storage import SIMPLE, VOTES, VOTES_ROWS, people, spec, store  # noqa: F401  (store is a fixture)

from votelake.storage import ConstraintViolationError, RetentionTooShortError, TimeTravelError
from votelake.storage.store import parse_interval_hours

TEN_DAYS_AGO = time.time() - 10 * 24 * 3600


def active_files(table) -> set[str]:
    """The data files the table's latest version references, relative to the table."""
    root = str(table.path) + "/"
    return {uri[len(root):] for uri in DeltaTable(str(table.path)).file_uris()}


def age(path, seconds_since_epoch=TEN_DAYS_AGO) -> None:
    """Backdate a file's modification time, as if a writer had left it long ago."""
    os.utime(path, (seconds_since_epoch, seconds_since_epoch))


# -- time travel by timestamp -----------------------------------------------------------


def test_read_as_of_before_and_after_second_commit(store, spark, tmp_path):
    table = spec(tmp_path)
    before_first = datetime.now(timezone.utc) - timedelta(seconds=5)
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append")
    time.sleep(0.05)  # distinct commit timestamps
    store.write(people(spark, [(2, "Bo", 1.0)]), table, "append")
    # Version 0 creates the table; the two appends follow.
    first, second = sorted(store.history(table), key=lambda c: c["version"])[-2:]
    between = first["timestamp"] + (second["timestamp"] - first["timestamp"]) / 2

    assertDataFrameEqual(store.read_as_of(table, between), people(spark, [(1, "Ann", 0.5)]))
    assertDataFrameEqual(
        store.read_as_of(table, datetime.now(timezone.utc) + timedelta(days=1)),
        people(spark, [(1, "Ann", 0.5), (2, "Bo", 1.0)]),
    )
    # Boundaries, ISO strings and naive datetimes (UTC), checked on the resolved version.
    assert store.version_as_of(table, first["timestamp"]) == first["version"]
    assert store.version_as_of(table, between.isoformat()) == first["version"]
    assert store.version_as_of(table, second["timestamp"].replace(tzinfo=None)) == second["version"]
    assert store.version_as_of(table, second["timestamp"].isoformat().replace("+00:00", "Z")) == second["version"]
    with pytest.raises(TimeTravelError, match=r"silver\.people.*earliest available commit is version 0"):
        store.read_as_of(table, before_first)


# -- optimize ---------------------------------------------------------------------------


def test_optimize_compacts_small_files_keeping_rows(store, spark, tmp_path):
    table = spec(tmp_path)
    rows = [(i, f"p{i}", i / 2) for i in range(3)]
    for row in rows:
        store.write(people(spark, [row]), table, "append")
    assert len(active_files(table)) == 3
    before = store.version(table)

    metrics = store.optimize(table)

    assert (metrics["files_added"], metrics["files_removed"]) == (1, 3)
    assert metrics["version_before"] == before
    assert metrics["version"] == store.version(table) > before
    assert len(active_files(table)) == 1
    assertDataFrameEqual(store.read(table), people(spark, rows))


def test_zorder_keeps_partitioned_rows(store, spark, tmp_path):
    # Partition values with spaces and escaped characters: the rewritten files'
    # folders must still read back as the same values.
    table = spec(tmp_path, "silver.votes", VOTES, ("county", "election_date"))
    first, rest = VOTES_ROWS[:3], VOTES_ROWS[3:]
    store.write(spark.createDataFrame(first, VOTES), table, "append")
    store.write(spark.createDataFrame(rest + first, VOTES), table, "append")
    before = store.version(table)

    metrics = store.optimize(table, zorder_by=["age"], target_file_mb=64)

    assert metrics["version"] == before + 1
    assert metrics["files_removed"] >= metrics["files_added"] >= 1
    assertDataFrameEqual(store.read(table), spark.createDataFrame(VOTES_ROWS + first, VOTES))
    with pytest.raises(ValueError, match="partition columns"):
        store.optimize(table, zorder_by=["county"])


# -- vacuum -----------------------------------------------------------------------------


def test_vacuum_respects_retention_and_force(store, spark, tmp_path):
    table = spec(tmp_path)
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append")
    old_version = store.version(table)
    old_files = active_files(table)
    store.write(people(spark, [(9, "Zed", 2.0)]), table, "overwrite")
    current = people(spark, [(9, "Zed", 2.0)])

    # The overwritten file was removed just now: within the default 7-day window.
    assert store.vacuum(table) == []
    with pytest.raises(RetentionTooShortError, match=r"silver\.people.*1 h.*168 h.*time travel"):
        store.vacuum(table, retention_hours=1)
    # Besides the replaced files, Delta's writer leaves the empty files of empty tasks
    # uncommitted: they too are in no version, and vacuum takes them.
    unreferenced = {p.name for p in table.path.glob("*.parquet")} - active_files(table)
    assert old_files <= unreferenced
    assert set(store.vacuum(table, retention_hours=0, force=True)) == unreferenced  # dry run
    # Neither the refused call nor the dry run deleted anything.
    assert all((table.path / f).exists() for f in old_files)

    removed = store.vacuum(table, retention_hours=0, dry_run=False, force=True)

    assert set(removed) == unreferenced
    assert not any((table.path / f).exists() for f in old_files)
    assertDataFrameEqual(store.read(table), current)
    # The log still lists the old version, but its data files are gone for good.
    with pytest.raises(Exception, match=r"(?i)(PATH_NOT_FOUND|FILE_NOT_EXIST|does not exist|not found)"):
        store.read(table, version=old_version).collect()


def test_vacuum_removes_files_left_by_killed_writers(store, spark, tmp_path):
    table = spec(tmp_path)
    store.write(people(spark, [(1, "Ann", 0.5), (2, "Bo", 1.0)]).coalesce(1), table, "append")
    (committed,) = active_files(table)
    # A writer killed after moving its file into the table, before committing.
    orphan = table.path / "part-00000-orphan.c000.snappy.parquet"
    orphan.write_bytes((table.path / committed).read_bytes())
    age(orphan)
    # A file put in place moments ago may belong to a write still committing.
    in_flight = table.path / "part-00000-in-flight.c000.snappy.parquet"
    in_flight.write_bytes(orphan.read_bytes())
    expected = [orphan.name]

    assert sorted(store.vacuum(table)) == sorted(expected)
    assert orphan.exists()  # dry run
    assert sorted(store.vacuum(table, dry_run=False)) == sorted(expected)

    assert not orphan.exists()
    assert in_flight.exists() and (table.path / committed).exists()
    assertDataFrameEqual(store.read(table), people(spark, [(1, "Ann", 0.5), (2, "Bo", 1.0)]))


def test_vacuum_keeps_what_a_retention_longer_than_the_tables_needs(store, spark, tmp_path):
    table = spec(tmp_path)
    store.write(people(spark, [(1, "Ann", 0.5)]).coalesce(1), table, "append")
    orphan = table.path / "part-00000-orphan.c000.snappy.parquet"
    orphan.write_bytes(next(table.path.glob("*.parquet")).read_bytes())
    age(orphan)  # ten days: past the table's week, within a fortnight

    assert store.vacuum(table, retention_hours=14 * 24, dry_run=False) == []
    assert orphan.exists()
    assert store.vacuum(table, retention_hours=9 * 24) == [orphan.name]


# -- CHECK constraints ------------------------------------------------------------------


def test_add_constraint_is_enforced_on_later_writes(store, spark, tmp_path):
    table = spec(tmp_path)
    store.write(people(spark, [(1, "Ann", 0.5), (2, "Bo", None)]), table, "append")
    store.add_constraint(table, "score_positive", "score IS NULL OR score >= 0")
    store.add_constraint(table, "name_short", "length(name) < 10")
    constraints = store.constraints(table)
    assert set(constraints) == {"score_positive", "name_short"}

    good = people(spark, [(3, "Cy", 1.5), (4, "Di", None)])
    # Later commits keep the constraints in the table's metadata.
    store.write(good, table, "append")
    store.write(good, table, "overwrite")
    assert store.constraints(table) == constraints
    # A write that breaks a constraint is refused and commits nothing.
    before = store.version(table)
    bad = people(spark, [(5, "Ed", -1.0), (6, "Flo", -2.5), (7, "Gus", 3.0)])
    with pytest.raises(ConstraintViolationError, match=r"silver\.people.*score_positive"):
        store.write(bad, table, "append")
    assert store.version(table) == before
    assertDataFrameEqual(store.read(table), good)
    # As in Delta, a null result is a violation, not a pass.
    strict = spec(tmp_path, "silver.strict", checks={"positive": "score > 0"})
    store.write(people(spark, [(8, "Hal", 1.0)]), strict, "append")
    with pytest.raises(ConstraintViolationError, match="positive"):
        store.write(people(spark, [(9, "Ida", None)]), strict, "append")


def test_existing_rows_must_satisfy_a_new_constraint(store, spark, tmp_path):
    table = spec(tmp_path)
    store.write(people(spark, [(1, "Ann", -0.5)]), table, "append")
    with pytest.raises(Exception, match="score_positive|violat|failed"):
        store.add_constraint(table, "score_positive", "score >= 0")
    assert store.constraints(table) == {}


def test_retention_property_parsing():
    assert parse_interval_hours("interval 7 days") == 168
    assert parse_interval_hours("interval 1 week") == 168
    assert parse_interval_hours("interval 36 hours") == 36
    assert parse_interval_hours("2 days 30 minutes") == 48.5


# -- schema evolution -------------------------------------------------------------------

NEW_COLUMNS = T.StructType([
    T.StructField("note", T.StringType(), True),
    T.StructField("visits", T.IntegerType(), True),
])


def test_evolve_schema_adds_nullable_columns(store, spark, tmp_path):
    table = spec(tmp_path)
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append")
    wider_schema = T.StructType(SIMPLE.fields + NEW_COLUMNS.fields)
    wider = spec(tmp_path, schema=wider_schema)

    store.evolve_schema(table, NEW_COLUMNS)
    store.evolve_schema(table, NEW_COLUMNS)  # already there: nothing to do

    assertDataFrameEqual(store.read(wider), spark.createDataFrame([(1, "Ann", 0.5, None, None)], wider_schema))
    store.write(spark.createDataFrame([(2, "Bo", 1.0, "new", 3)], wider_schema), wider, "append")
    assertDataFrameEqual(
        store.read(wider),
        spark.createDataFrame([(1, "Ann", 0.5, None, None), (2, "Bo", 1.0, "new", 3)], wider_schema),
    )
    with pytest.raises(ValueError, match=r"silver\.people.*non-nullable.*\['rank'\]"):
        store.evolve_schema(table, T.StructType([T.StructField("rank", T.IntegerType(), False)]))
    with pytest.raises(ValueError, match=r"note \(table: string, new: int\)"):
        store.evolve_schema(table, T.StructType([T.StructField("note", T.IntegerType(), True)]))
