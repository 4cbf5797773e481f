"""Contract tests for the Delta storage layer, run against every available backend.

Real Spark, real Delta tables in tmp_path. The delta-spark backend runs only where
its jars are on the classpath and the shared session was built for it.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from conftest import TEST_SPARK
from deltalake import DeltaTable
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.catalog import TableSpec
from votelake.session import DELTA_EXTENSION, delta_spark_jars_present
from votelake.storage import (
    DeltaStore,
    NotNullViolationError,
    SchemaMismatchError,
    TableNotFoundError,
    open_store,
)
from votelake.storage.arrow_schema import to_arrow_schema
from votelake.storage.delta_rs import _partition_values

DELTA_SPARK_JARS = delta_spark_jars_present(TEST_SPARK)
BACKENDS = [
    "delta-rs",
    pytest.param(
        "delta-spark",
        marks=pytest.mark.skipif(
            not DELTA_SPARK_JARS,
            reason="delta-spark jars are not on Spark's classpath: "
            "delta-spark backend not tested",
        ),
    ),
]

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


@pytest.fixture(params=BACKENDS)
def store(request, spark):
    """The store under test, for each backend."""
    if request.param == "delta-spark" and DELTA_EXTENSION not in spark.conf.get("spark.sql.extensions", ""):
        pytest.skip("the shared test session was built for delta-rs (no Delta SQL extension)")
    return open_store(spark, request.param)


def people(spark, rows):
    return spark.createDataFrame(rows, SIMPLE)


@pytest.fixture
def votes_table(spark, tmp_path):
    """A partitioned table written by the delta-rs backend, and its expected rows."""
    table = spec(tmp_path, "silver.votes", VOTES, ("county", "election_date"))
    expected = spark.createDataFrame(VOTES_ROWS, VOTES)
    result = open_store(spark, "delta-rs").write(expected, table, "append")
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
    assert len(DeltaTable(str(table.path)).file_uris()) == new.files


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
    # The history-based default agrees with the log's transaction ids.
    assert DeltaStore.committed_run(store, table, "load-people") == 8
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


def test_empty_writes_commit_a_version(store, spark, tmp_path):
    table = spec(tmp_path)
    empty = people(spark, [])
    created = store.write(empty, table, "append")
    assert created.committed and created.rows == 0
    store.write(people(spark, [(1, "Ann", 0.5)]), table, "append")
    appended = store.write(empty, table, "append")
    assert appended.version == store.version(table) == created.version + 2
    assert store.read(table).count() == 1
    # An empty overwrite empties the table.
    store.write(empty, table, "overwrite")
    assert store.read(table).count() == 0


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


# -- delta-rs backend details -----------------------------------------------------------


def test_delta_rs_log_has_encoded_paths_and_footer_stats(votes_table):
    log = (votes_table.path / "_delta_log" / "00000000000000000000.json").read_text().splitlines()
    adds = [json.loads(line)["add"] for line in log if '"add"' in line]
    by_county = {a["partitionValues"]["county"]: a for a in adds}
    # Spark escapes '/', '=', '%' and "'" in folder names; the log path URI-encodes that name.
    assert any(a["path"].startswith("county=O%2527Brien%252FWake%253D50%2525/") for a in adds)
    assert any(a["path"].startswith("county=New%20Hanover/") for a in adds)
    assert any(a["path"].startswith("county=__HIVE_DEFAULT_PARTITION__/") for a in adds)
    stats = json.loads(by_county["Wake"]["stats"])
    assert stats["numRecords"] == 1
    assert stats["minValues"]["age"] == stats["maxValues"]["age"] == 18
    assert stats["minValues"]["loaded_at"] == "2024-11-05T13:30:15.123Z"
    assert stats["maxValues"]["loaded_at"] == "2024-11-05T13:30:15.124Z"
    assert stats["nullCount"]["voted"] == 0
    # delta-rs prunes files with those statistics.
    pruned = DeltaTable(str(votes_table.path)).file_uris(file_pruning_predicate="age > 60")
    assert len(pruned) == 1 and "O%27Brien" in pruned[0]
    staging = votes_table.path / "_staging"
    assert not staging.exists() or not any(staging.iterdir())  # this write's folder is gone


def test_delta_rs_enforces_not_null_columns(spark, tmp_path):
    table = spec(tmp_path)
    store = open_store(spark, "delta-rs")
    nullable = T.StructType([T.StructField(f.name, f.dataType, True) for f in SIMPLE.fields])
    with pytest.raises(NotNullViolationError, match="voter_id"):
        store.write(spark.createDataFrame([(None, "Ann", 0.5)], nullable), table, "append")
    assert not store.exists(table)
    assert not list(tmp_path.rglob("*.parquet"))


def test_partition_folder_parsing():
    assert _partition_values("a=x%2Fy/b=__HIVE_DEFAULT_PARTITION__/part-0.parquet", ("a", "b")) == {
        "a": "x/y",
        "b": None,
    }
    with pytest.raises(ValueError):
        _partition_values("b=1/part-0.parquet", ("a",))


def test_arrow_schema_conversion():
    arrow = to_arrow_schema(VOTES)
    assert str(arrow.field("voter_id").type) == "int64" and not arrow.field("voter_id").nullable
    assert str(arrow.field("loaded_at").type) == "timestamp[us, tz=UTC]"
    assert str(arrow.field("election_date").type) == "date32[day]"
    assert str(arrow.field("tags").type) == "list<element: string>"


def test_unknown_backend(spark):
    with pytest.raises(ValueError, match="unknown storage backend"):
        open_store(spark, "iceberg")
