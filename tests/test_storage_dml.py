"""Contract tests for row-level changes (merge, delete, overwrite_where) on delta-spark.

Real Spark, real Delta tables in tmp_path; delta-rs reads the log to see which
files each command rewrote.
"""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from deltalake import DeltaTable
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual
from test_storage import VOTES, VOTES_ROWS, spec, store  # noqa: F401 - `store` is the shared fixture

PEOPLE = T.StructType([
    T.StructField("voter_id", T.LongType(), False),
    T.StructField("county", T.StringType(), True),
    T.StructField("name", T.StringType(), True),
    T.StructField("score", T.DoubleType(), True),
])
ROWS = [(1, "A", "Ann", 0.5), (2, "A", "Bo", 2.0), (3, "B", "Cy", 3.0)]


def people(spark, rows):
    return spark.createDataFrame(rows, PEOPLE)


def keyed(tmp_path, key=("voter_id",), partition_by=(), name="silver.people"):
    """A people table keyed by ``key``."""
    return spec(tmp_path, name, PEOPLE, partition_by, primary_key=key)


def active_files(table) -> set[str]:
    """The table's active data files (real relative paths), read with delta-rs."""
    paths = DeltaTable(str(table.path)).get_add_actions(flatten=True).column("path").to_pylist()
    return {unquote(p) for p in paths}


# -- merge ---------------------------------------------------------------------------------


def test_merge_inserts_and_updates(store, spark, tmp_path):
    table = keyed(tmp_path)
    old = store.write(people(spark, ROWS), table, "append")
    # Source columns in another order: merge aligns them like write.
    source = people(spark, [(2, "A", "Bob", 2.5), (4, "C", "Di", 4.0)]).select("score", "name", "county", "voter_id")
    result = store.merge(source, table, metadata={"run": "r1"})
    assert result.committed and result.version == old.version + 1 == store.version(table)
    assert result.metrics["rows_inserted"] == 1
    assert result.metrics["rows_updated"] == 1
    assert result.metrics["rows_deleted"] == 0
    assertDataFrameEqual(
        store.read(table),
        people(spark, [(1, "A", "Ann", 0.5), (2, "A", "Bob", 2.5), (3, "B", "Cy", 3.0), (4, "C", "Di", 4.0)]),
    )
    assertDataFrameEqual(store.read(table, version=old.version), people(spark, ROWS))
    last = store.history(table)[0]
    assert last["operation"] == "MERGE" and last["metadata"] == {"run": "r1"}


def test_merge_creates_a_missing_table(store, spark, tmp_path):
    table = keyed(tmp_path)
    result = store.merge(people(spark, ROWS), table)
    assert result.committed and result.metrics["rows_inserted"] == 3
    assertDataFrameEqual(store.read(table), people(spark, ROWS))


def test_merge_delete_missing(store, spark, tmp_path):
    table = keyed(tmp_path)
    old = store.write(people(spark, ROWS), table, "append")
    source = people(spark, [(2, "A", "Bob", 2.5), (5, "B", "Ed", 5.0)])
    result = store.merge(source, table, delete_missing=True)
    assert (result.metrics["rows_inserted"], result.metrics["rows_updated"], result.metrics["rows_deleted"]) == (1, 1, 2)
    assertDataFrameEqual(store.read(table), source)
    assertDataFrameEqual(store.read(table, version=old.version), people(spark, ROWS))


def test_merge_rewrites_only_the_touched_files(store, spark, tmp_path):
    # Partitioned by a key column, so the source's partitions bound the files to search.
    table = keyed(tmp_path, key=("county", "voter_id"), partition_by=("county",))
    # One task per write: one file per partition and write.
    store.write(people(spark, ROWS).coalesce(1), table, "append")
    store.write(
        people(spark, [(10, "A", "Jo", 1.0), (11, "C", "Kim", 1.0), (12, "D", "Lu", 1.0)]).coalesce(1), table, "append"
    )
    before_version = store.version(table)
    before = active_files(table)
    touched = {f for f in before if f.startswith("county=A/")}
    assert len(touched) == 2  # one per append
    result = store.merge(people(spark, [(10, "A", "Jo", 9.0), (13, "A", "Mo", 1.0)]), table)
    assert len(before) == 5
    # Only the file holding key 10 is rewritten; every other file stays active.
    assert result.files_removed == 1
    after = active_files(table)
    removed = before - after
    assert len(removed) == 1 and removed <= touched
    assert before - removed <= after
    assertDataFrameEqual(
        store.read(table),
        people(spark, ROWS + [(10, "A", "Jo", 9.0), (11, "C", "Kim", 1.0), (12, "D", "Lu", 1.0), (13, "A", "Mo", 1.0)]),
    )
    assert store.read(table, version=before_version).count() == 6


def test_merge_moves_a_row_to_another_partition(store, spark, tmp_path):
    # The key does not include the partition column: the old row may sit in any partition.
    table = keyed(tmp_path, partition_by=("county",))
    store.write(people(spark, ROWS), table, "append")
    store.merge(people(spark, [(1, "B", "Ann", 0.5)]), table)
    assertDataFrameEqual(
        store.read(table), people(spark, [(1, "B", "Ann", 0.5), (2, "A", "Bo", 2.0), (3, "B", "Cy", 3.0)])
    )


def test_merge_into_escaped_partition_folders(store, spark, tmp_path):
    table = spec(tmp_path, "silver.votes", VOTES, ("county", "election_date"), primary_key=("voter_id",))
    store.write(spark.createDataFrame(VOTES_ROWS, VOTES), table, "append")
    changed = list(VOTES_ROWS[3])
    changed[3] = 72  # voter 4 lives in county=O'Brien/Wake=50%
    store.merge(spark.createDataFrame([tuple(changed)], VOTES), table)
    expected = spark.createDataFrame(VOTES_ROWS[:3] + [tuple(changed)] + VOTES_ROWS[4:], VOTES)
    assertDataFrameEqual(store.read(table), expected)
    # Another reader agrees: the old file was really removed from the log.
    assert DeltaTable(str(table.path)).to_pyarrow_table().num_rows == len(VOTES_ROWS)


def test_merge_is_idempotent_per_app_run(store, spark, tmp_path):
    table = keyed(tmp_path)
    store.write(people(spark, ROWS), table, "append")
    first = store.merge(people(spark, [(4, "C", "Di", 4.0)]), table, app_id="upsert", run_version=3)
    again = store.merge(people(spark, [(5, "C", "Ed", 5.0)]), table, app_id="upsert", run_version=3)
    assert first.committed and not again.committed
    assert again.version == first.version == store.version(table)
    assertDataFrameEqual(store.read(table), people(spark, ROWS + [(4, "C", "Di", 4.0)]))
    later = store.merge(people(spark, [(5, "C", "Ed", 5.0)]), table, app_id="upsert", run_version=4)
    assert later.committed and store.read(table).count() == 5


def test_merge_rejects_duplicate_keys_and_keyless_tables(store, spark, tmp_path):
    table = keyed(tmp_path)
    store.write(people(spark, ROWS), table, "append")
    version = store.version(table)
    dupes = people(spark, [(7, "A", "X", 1.0), (7, "B", "Y", 2.0), (8, "A", "Z", 1.0)])
    with pytest.raises(ValueError, match=r"1 key\(s\).*more than once"):
        store.merge(dupes, table)
    assert store.version(table) == version
    with pytest.raises(ValueError, match="primary_key"):
        store.merge(people(spark, ROWS), spec(tmp_path, "silver.nokey", PEOPLE))


# -- delete ----------------------------------------------------------------------------------


def test_delete_by_predicate(store, spark, tmp_path):
    table = keyed(tmp_path, partition_by=("county",))
    old = store.write(people(spark, ROWS + [(4, "C", "Di", None)]), table, "append")
    # Partial file in A; a null score is not deleted (the predicate is null, not true).
    result = store.delete(table, "score > 1", metadata={"why": "test"})
    assert result.committed and result.metrics["rows_deleted"] == 2
    assertDataFrameEqual(store.read(table), people(spark, [(1, "A", "Ann", 0.5), (4, "C", "Di", None)]))
    assertDataFrameEqual(store.read(table, version=old.version), people(spark, ROWS + [(4, "C", "Di", None)]))
    assert store.history(table)[0]["operation"] == "DELETE"
    # Every row of the C file matches: the file is removed, nothing is rewritten.
    whole = store.delete(table, "county = 'C'")
    assert whole.metrics["rows_deleted"] == 1 and whole.files_removed == 1 and whole.files == 0
    assertDataFrameEqual(store.read(table), people(spark, [(1, "A", "Ann", 0.5)]))


# -- overwrite_where -------------------------------------------------------------------------


def test_overwrite_where_replaces_only_matching_rows(store, spark, tmp_path):
    table = keyed(tmp_path, partition_by=("county",))
    old = store.write(people(spark, ROWS), table, "append")
    new_a = people(spark, [(20, "A", "New", 1.0)])
    result = store.overwrite_where(new_a, table, "county = 'A'", metadata={"run": "r9"})
    assert result.committed and result.version == old.version + 1
    assert result.metrics["rows_deleted"] == 2 and result.metrics["rows_inserted"] == 1
    assertDataFrameEqual(store.read(table), people(spark, [(20, "A", "New", 1.0), (3, "B", "Cy", 3.0)]))
    assertDataFrameEqual(store.read(table, version=old.version), people(spark, ROWS))
    assert store.history(table)[0]["metadata"] == {"run": "r9"}


def test_overwrite_where_on_a_data_column(store, spark, tmp_path):
    table = keyed(tmp_path)
    store.write(people(spark, ROWS), table, "append")
    store.overwrite_where(people(spark, [(7, "B", "G", 5.0)]), table, "score >= 2")
    assertDataFrameEqual(store.read(table), people(spark, [(1, "A", "Ann", 0.5), (7, "B", "G", 5.0)]))


def test_overwrite_where_rejects_rows_outside_the_predicate(store, spark, tmp_path):
    table = keyed(tmp_path, partition_by=("county",))
    store.write(people(spark, ROWS), table, "append")
    version = store.version(table)
    bad = people(spark, [(20, "A", "New", 1.0), (21, "B", "Out", 1.0), (22, None, "Null", 1.0)])
    with pytest.raises(ValueError, match=r"2 row\(s\)"):
        store.overwrite_where(bad, table, "county = 'A'")
    assert store.version(table) == version
    assertDataFrameEqual(store.read(table), people(spark, ROWS))


def test_overwrite_where_is_idempotent_per_app_run(store, spark, tmp_path):
    table = keyed(tmp_path, partition_by=("county",))
    first = store.overwrite_where(
        people(spark, [(1, "A", "Ann", 0.5)]), table, "county = 'A'", app_id="load", run_version=1
    )
    again = store.overwrite_where(
        people(spark, [(2, "A", "Bo", 0.5)]), table, "county = 'A'", app_id="load", run_version=1
    )
    assert first.committed and not again.committed
    assertDataFrameEqual(store.read(table), people(spark, [(1, "A", "Ann", 0.5)]))
