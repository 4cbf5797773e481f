"""Contract tests for the Delta storage layer on delta-spark.

Real Spark, real Delta tables in tmp_path, registered in the session's own
Hive metastore; other readers (delta-rs, polars, DuckDB) read what it wrote.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from deltalake import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.catalog import TableSpec
from votelake.storage import (
    ConstraintViolationError,
    DeltaStore,
    NotNullViolationError,
    SchemaMismatchError,
    TableNotFoundError,
)

SIMPLE = T.StructType([
    T.StructField("voter_id", T.LongType(), False),
    T.StructField("name", T.StringType(), True),
    T.StructField("score", T.DoubleType(), True),
])

# Partitioned by a string (values with a space, escaped characters and a null) and a date.
VOTES = T.StructType([
    T.StructField("voter_id", T.LongType(), False),
    T.StructField("county", T.StringType(), True),
    T.StructField("election_date", T.DateType(), True),
    T.StructField("age", T.IntegerType(), True),
    T.StructField("voted", T.BooleanType(), True),
    T.StructField("loaded_at", T.TimestampType(), True),
    T.StructField("tags", T.ArrayType(T.StringType(), True), True),
])
TS = datetime(2024, 11, 5, 13, 30, 15, 123456, tzinfo=timezone.utc)
VOTES_ROWS = [
    (1, "New Hanover", date(2024, 11, 5), 34, True, TS, ["a", "b"]),
    (2, "New Hanover", date(2022, 11, 8), 52, False, TS, []),
    (3, None, date(2024, 11, 5), None, None, None, None),
    (4, "O'Brien/Wake=50%", date(2024, 11, 5), 71, True, TS, ["c"]),
    (5, "Wake", None, 18, True, TS, None),
]


def spec(tmp_path, name="silver.people", schema=SIMPLE, partition_by=(), **kwargs) -> TableSpec:
    """A table in this test's tmp_path."""
    return TableSpec(
        name=name,
        layer=name.split(".")[0],
        path=tmp_path / name.replace(".", "_"),
        schema=schema,
        partition_by=partition_by,
        **kwargs,
    )


@pytest.fixture
def store(spark):
    """The store under test."""
    return DeltaStore(spark)


def people(spark, rows):
    return spark.createDataFrame(rows, SIMPLE)


@pytest.fixture
def votes_table(spark, tmp_path):
    """A partitioned table written by the store, and its expected rows."""
    table = spec(tmp_path, "silver.votes", VOTES, ("county", "election_date"))
    expected = spark.createDataFrame(VOTES_ROWS, VOTES)
    result = DeltaStore(spark).write(expected, table, "append")
    assert result.rows == len(VOTES_ROWS)
    return table


def _sorted_rows(records):
    """Rows from any reader as tuples in VOTES column order, sorted by voter_id."""
    names = VOTES.fieldNames()
    rows = [tuple(list(r[n]) if n == "tags" and r[n] is not None else r[n] for n in names) for r in records]
    return sorted(rows, key=lambda r: r[0])


EXPECTED_PLAIN = _sorted_rows([dict(zip(VOTES.fieldNames(), r)) for r in VOTES_ROWS])


# -- the contract, per backend ---------------------------------------------------------


def test_create_is_idempotent_and_reads_empty(store, spark, tmp_path):
    table = spec(tmp_path, description="people", properties={"delta.appendOnly": "false"})
    assert not store.exists(table)
    assert store.version(table) is None
    store.create(table)
    store.create(table)
    assert store.exists(table)
    assert store.version(table) == 0
    df = store.read(table)
    assert df.columns == table.columns
    assertDataFrameEqual(df, spark.createDataFrame([], SIMPLE))
    meta = DeltaTable(str(table.path)).metadata()
    assert meta.description == "people"
    assert meta.configuration == {"delta.appendOnly": "false"}


def test_append_twice_then_read(store, spark, tmp_path):
    table = spec(tmp_path)
    first = store.write(people(spark, [(1, "Ann", 0.5), (2, "Bo", None)]), table, "append")
    # Column order may differ from the table's: the write reorders.
    second = store.write(
        people(spark, [(3, "Cy", 1.5)]).select("score", "name", "voter_id"), table, "append"
    )
    assert first.committed and second.committed
    assert second.version == first.version + 1 == store.version(table)
    assert (first.rows, second.rows) == (2, 1)
    assert second.files >= 1
    assertDataFrameEqual(
        store.read(table), people(spark, [(1, "Ann", 0.5), (2, "Bo", None), (3, "Cy", 1.5)])
    )


def test_overwrite_replaces_and_time_travel_reads_previous(store, spark, tmp_path):
    table = spec(tmp_path)
    old = store.write(people(spark, [(1, "Ann", 0.5), (2, "Bo", 1.0)]), table, "append")
    new = store.write(people(spark, [(9, "Zed", 2.0)]), table, "overwrite")
    assert new.version == old.version + 1
    assertDataFrameEqual(store.read(table), people(spark, [(9, "Zed", 2.0)]))
    assertDataFrameEqual(
        store.read(table, version=old.version), people(spark, [(1, "Ann", 0.5), (2, "Bo", 1.0)])
    )
    # Every earlier file was removed by the overwrite commit itself.
    assert new.files_removed == len(DeltaTable(str(table.path), version=old.version).file_uris())
    assert len(DeltaTable(str(table.path)).file_uris()) == 1


def test_partitioned_table_round_trips(store, spark, tmp_path):
    table = spec(tmp_path, "silver.votes", VOTES, ("county", "election_date"))
    expected = spark.createDataFrame(VOTES_ROWS, VOTES)
    store.write(expected, table, "append")
    assertDataFrameEqual(store.read(table), expected)
    partitions = DeltaTable(str(table.path)).get_add_actions(flatten=True)
    counties = set(partitions.column("partition.county").to_pylist())
    assert counties == {"New Hanover", None, "O'Brien/Wake=50%", "Wake"}
    assert set(partitions.column("partition.election_date").to_pylist()) == {date(2024, 11, 5), date(2022, 11, 8), None}


def test_schema_mismatch_names_the_columns(store, spark, tmp_path):
    table = spec(tmp_path)
    bad_type = spark.createDataFrame([(1, "Ann", 1)], "voter_id int, name string, score int")
    with pytest.raises(SchemaMismatchError) as err:
        store.write(bad_type, table, "append")
    message = str(err.value)
    assert "silver.people" in message
    assert "voter_id (table: bigint, dataframe: int)" in message
    assert "score (table: double, dataframe: int)" in message
    missing_extra = spark.createDataFrame([(1, "Ann", "x")], "voter_id bigint, name string, extra string")
    with pytest.raises(SchemaMismatchError, match=r"missing columns \['score'\].*extra columns \['extra'\]"):
        store.write(missing_extra, table, "append")
    assert not store.exists(table)


def test_same_app_run_commits_once(store, spark, tmp_path):
    table = spec(tmp_path)
    rows = people(spark, [(1, "Ann", 0.5)])
    first = store.write(rows, table, "append", app_id="load-people", run_version=7)
    again = store.write(rows, table, "append", app_id="load-people", run_version=7)
    older = store.write(rows, table, "append", app_id="load-people", run_version=3)
    assert first.committed
    assert not again.committed and not older.committed
    assert again.version == older.version == first.version == store.version(table)
    assert store.read(table).count() == 1
    later = store.write(rows, table, "append", app_id="load-people", run_version=8)
    other = store.write(rows, table, "append", app_id="other-job", run_version=7)
    assert later.committed and other.committed
    assert store.read(table).count() == 3
    assert (store.committed_run(table, "load-people"), store.committed_run(table, "other-job")) == (8, 7)
    assert store.committed_run(table, "never-wrote") is None
    assert store.committed_run(spec(tmp_path, "silver.absent"), "load-people") is None


def test_history_lists_commits_newest_first(store, spark, tmp_path):
    table = spec(tmp_path)
    store.create(table)
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append", operation="LOAD", metadata={"run": "r1"})
    store.write(people(spark, [(2, "Bo", 0.5)]), table, "overwrite", metadata={"run": "r2"})
    history = store.history(table)
    assert [h["version"] for h in history] == [2, 1, 0]
    assert [h["operation"] for h in history[:2]] == ["WRITE", "LOAD"]
    assert history[0]["metadata"] == {"run": "r2"}
    assert history[1]["metadata"] == {"run": "r1"}
    assert all(h["timestamp"].tzinfo is not None for h in history)


def test_empty_writes(store, spark, tmp_path):
    table = spec(tmp_path)
    empty = people(spark, [])
    # An empty append creates the table (version 0) and commits nothing more.
    created = store.write(empty, table, "append")
    assert not created.committed and created.version == 0 == store.version(table)
    assert store.read(table).count() == 0
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append")
    assert store.read(table).count() == 1
    # An empty overwrite empties the table in a new version; the old one stays readable.
    emptied = store.write(empty, table, "overwrite")
    assert emptied.committed and emptied.version == 2
    assert store.read(table).count() == 0 and store.read(table, version=1).count() == 1


def test_missing_table_is_a_clear_error(store, tmp_path):
    table = spec(tmp_path)
    with pytest.raises(TableNotFoundError, match=r"silver\.people.*silver_people"):
        store.read(table)
    with pytest.raises(TableNotFoundError):
        store.history(table)


# -- other readers of the tables we write ------------------------------------------------


def test_deltalake_reads_without_spark(votes_table):
    records = DeltaTable(str(votes_table.path)).to_pyarrow_table().to_pylist()
    assert _sorted_rows(records) == EXPECTED_PLAIN


def test_pandas_reads_through_deltalake(votes_table):
    frame = DeltaTable(str(votes_table.path)).to_pandas()
    assert sorted(frame["voter_id"]) == [r[0] for r in EXPECTED_PLAIN]
    assert frame["county"].isna().sum() == 1


def test_polars_reads_without_spark(votes_table):
    pl = pytest.importorskip("polars")
    frame = pl.read_delta(str(votes_table.path))
    assert _sorted_rows(frame.to_dicts()) == EXPECTED_PLAIN


def test_duckdb_reads_without_spark(votes_table):
    duckdb = pytest.importorskip("duckdb")
    ext = pytest.importorskip("duckdb_ext", reason="duckdb-ext-delta (the delta extension wheel) is not installed")
    con = duckdb.connect()
    # The wheel ships the extension in DuckDB's own folder layout: point DuckDB at it.
    con.execute(f"SET extension_directory = '{list(ext.__path__)[0]}/extensions'")
    con.execute("LOAD delta")
    cursor = con.execute(f"SELECT * FROM delta_scan('{votes_table.path}')")
    names = [d[0] for d in cursor.description]
    records = [dict(zip(names, row)) for row in cursor.fetchall()]
    assert _sorted_rows(records) == EXPECTED_PLAIN


# -- delta-spark details -------------------------------------------------------------------


def test_not_null_columns_are_enforced(store, spark, tmp_path):
    table = spec(tmp_path)
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in SIMPLE.fields])
    with pytest.raises(NotNullViolationError, match="voter_id"):
        store.write(spark.createDataFrame([(None, "Ann", 0.5)], nullable), table, "append")
    assert store.read(table).count() == 0


def test_tables_are_registered_in_the_catalog_with_comments(store, spark, tmp_path):
    table = spec(tmp_path, "gold.people", description="People and their scores.",
                 comments={"score": "A score from 0 to 1."}, properties={"delta.enableChangeDataFeed": "true"})
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append")
    assertDataFrameEqual(spark.table("gold.people"), people(spark, [(1, "Ann", 0.5)]))
    described = {r["col_name"]: r["comment"] for r in spark.sql("DESCRIBE TABLE gold.people").collect()}
    assert described["score"] == "A score from 0 to 1."
    detail = spark.sql("DESCRIBE DETAIL gold.people").collect()[0]
    assert detail["description"] == "People and their scores."
    assert detail["properties"]["delta.enableChangeDataFeed"] == "true"
    # The same name in another lakehouse: the catalog follows the table that was written last.
    elsewhere = spec(tmp_path / "other", "gold.people")
    store.write(people(spark, [(2, "Bo", 1.0)]), elsewhere, "append")
    assertDataFrameEqual(spark.table("gold.people"), people(spark, [(2, "Bo", 1.0)]))
    assert store.read(table).count() == 1  # dropping the stale entry removed no data


def test_change_data_feed_returns_the_last_write(store, spark, tmp_path):
    table = spec(tmp_path, "silver.people", properties={"delta.enableChangeDataFeed": "true"})
    store.write(people(spark, [(1, "Ann", 0.5), (2, "Bo", 1.0)]), table, "append")
    last = store.write(people(spark, [(1, "Ann", 0.5), (3, "Cy", 2.0)]), table, "overwrite")
    changes = store.changes(table, last.version)
    by_type = {r["_change_type"]: r["n"] for r in changes.groupBy("_change_type").agg(F.count("*").alias("n")).collect()}
    assert by_type == {"insert": 2, "delete": 2}
    assertDataFrameEqual(
        spark.sql(f"SELECT voter_id, name, score FROM table_changes('silver.people', {last.version}) "
                  "WHERE _change_type = 'insert'"),
        people(spark, [(1, "Ann", 0.5), (3, "Cy", 2.0)]))


def test_check_constraints_from_the_declaration(store, spark, tmp_path):
    table = spec(tmp_path, checks={"score_range": "score IS NULL OR score BETWEEN 0 AND 1"})
    store.write(people(spark, [(1, "Ann", 0.5), (2, "Bo", None)]), table, "append")
    assert store.constraints(table) == {"score_range": "score IS NULL OR score BETWEEN 0 AND 1"}
    with pytest.raises(ConstraintViolationError, match="score_range"):
        store.write(people(spark, [(3, "Cy", 1.5)]), table, "append")
    assert store.read(table).count() == 2


@pytest.mark.parametrize("checks, error", [
    ({"score range": "score BETWEEN 0 AND 1"}, ValueError),  # not a plain identifier
    ({"score_range": "scor BETWEEN 0 AND 1"}, AnalysisException),  # no such column
    ({"score_range": "score + 1"}, AnalysisException),  # not a condition
    ({"score_range": "score <= 1", "Score_Range": "score >= 0"}, ValueError),  # one name to Delta
])
def test_a_declared_check_that_cannot_hold_fails_the_create(store, tmp_path, checks, error):
    """Checks are given to a new table at its creation: one that could never be a constraint stops it there."""
    table = spec(tmp_path, checks=checks)
    with pytest.raises(error):
        store.create(table)
    assert not store.exists(table)
