"""The catalog's Delta tables through delta-spark, the one Delta engine.

Each method is one delta-spark call (a write with ``replaceWhere`` or
``txnAppId``, ``DeltaTable.merge``, ``delete``, ``optimize``, ``VACUUM``,
``ALTER TABLE``) plus what votelake adds around it:

* every table is registered in the session's catalog as ``<layer>.<table>``
  (external: the data stays at the lakehouse path), with the declared
  description and column comments, properties and CHECK constraints;
* every commit records the logical operation and the writing job run in its
  ``userMetadata`` (``history()`` gives it back as a dict);
* writes check the DataFrame against the declared schema first, naming every
  wrong column, and retry a commit that lost a race to another writer.

The session must come from :func:`votelake.session.build_spark` (Delta's SQL
extension and catalog).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable

from delta import exceptions as delta_errors
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from votelake import progress
from votelake.catalog import TableSpec
from votelake.storage.base import (
    APP_ID_KEY,
    OPERATION_KEY,
    RUN_VERSION_KEY,
    ConcurrentWriteError,
    ConstraintViolationError,
    NotNullViolationError,
    RetentionTooShortError,
    SchemaMismatchError,
    TableNotFoundError,
    TimeTravelError,
    WriteMode,
    WriteResult,
    check_schema,
    commit_metadata,
    without_nullability,
)
from votelake.storage.retry import RetryPolicy

# Logical operations recorded in the commit metadata (``history()["operation"]``).
MERGE = "MERGE"
DELETE = "DELETE"
OVERWRITE_WHERE = "OVERWRITE_WHERE"

# Commit metadata key of a token unique to one command, which finds its commit in the history.
COMMIT_KEY = "votelake.commit"
RECENT_COMMITS = 20

# Delta's default for ``delta.deletedFileRetentionDuration``: the time-travel window.
DEFAULT_RETENTION_HOURS = 168.0
RETENTION_KEY = "delta.deletedFileRetentionDuration"
CONSTRAINT_PREFIX = "delta.constraints."
_CONSTRAINT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOURS_PER_UNIT = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1.0, "day": 24.0, "week": 168.0}


def _require_plain_name(table: TableSpec, name: str) -> None:
    """Refuse a CHECK constraint name that is not a plain identifier (SQL could not name it unquoted)."""
    if not _CONSTRAINT_NAME.match(name):
        raise ValueError(f"table {table.name}: constraint name {name!r} must be a plain identifier")


# Session settings that carry commit metadata and the txn id into DML commands
# (DeltaTable's merge and delete builders take no writer options).
_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"

# Conflicts another writer's commit can cause; the write is retried against the new snapshot.
_CONFLICTS = (
    delta_errors.DeltaConcurrentModificationException, delta_errors.ConcurrentWriteException,
    delta_errors.MetadataChangedException, delta_errors.ProtocolChangedException,
    delta_errors.ConcurrentAppendException, delta_errors.ConcurrentDeleteReadException,
    delta_errors.ConcurrentDeleteDeleteException, delta_errors.ConcurrentTransactionException,
)


# Catalog errors a concurrent registration of the same entry can cause, and how often to look again.
CATALOG_RACES = ("TABLE_OR_VIEW_NOT_FOUND", "TABLE_OR_VIEW_ALREADY_EXISTS", "DELTA_TABLE_ALREADY_EXISTS",
                 "SCHEMA_ALREADY_EXISTS")
CATALOG_ATTEMPTS = 3
# Tries to create a table that another writer may be creating at the same moment.
CREATE_ATTEMPTS = 5


def quote(name: str) -> str:
    """Quote an identifier (or a path) for Spark SQL."""
    return "`" + name.replace("`", "``") + "`"


def parse_interval_hours(interval: str) -> float:
    """Parse a Delta interval property such as ``"interval 7 days"`` into hours.

    Raises:
        ValueError: not an interval Delta would accept.
    """
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+?)s?\b", interval.lower().replace("interval", ""))
    if not parts or any(unit not in _HOURS_PER_UNIT for _, unit in parts):
        raise ValueError(f"not an interval: {interval!r}")
    return sum(float(n) * _HOURS_PER_UNIT[unit] for n, unit in parts)


def _metric(metrics: dict, *names: str) -> int:
    """The first of ``names`` present in a Delta operationMetrics map, as int (else 0)."""
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])
    return 0


class DeltaStore:
    """Reads, writes and maintains the catalog's tables with delta-spark.

    Args:
        spark: the job's session (never built here).
        retry_policy: how a commit that lost a race is retried.
    """

    def __init__(self, spark: SparkSession, retry_policy: RetryPolicy | None = None):
        self.spark = spark
        self.retry_policy = retry_policy or RetryPolicy()
        # Tables this store already created or registered: a job writes each many
        # times, and the catalog round trips cost more than a small write.
        self._ready: set[tuple[str, str]] = set()

    # -- tables and the catalog ------------------------------------------------------

    def exists(self, table: TableSpec) -> bool:
        """Tell whether a Delta table exists at the table's location."""
        return DeltaTable.isDeltaTable(self.spark, table.uri)

    def _delta_table(self, table: TableSpec) -> DeltaTable:
        if not self.exists(table):
            raise TableNotFoundError(f"table {table.name}: no Delta table at {table.uri}")
        return DeltaTable.forPath(self.spark, table.uri)

    def _path_sql(self, table: TableSpec) -> str:
        return f"delta.{quote(table.uri)}"

    def create(self, table: TableSpec) -> None:
        """Create the table empty if absent, and register it in the catalog.

        A new table gets the declared schema (NOT NULL columns included),
        partitioning, description, column comments, properties and CHECK
        constraints. An existing one gets any declared property or constraint
        it lacks. Either way the catalog's ``<layer>.<table>`` then points at it.

        Args:
            table: the table.
        """
        if (table.name, table.uri) in self._ready and self.exists(table):
            return
        checks = self._constraint_properties(table)  # before any attempt: a check that cannot hold is no race
        created = False
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            if self.exists(table):
                break
            try:
                self._builder(table, DeltaTable.createIfNotExists(self.spark), checks).location(table.uri).execute()
                # Or found it made a moment ago by another writer of the same declarations (one that
                # declared otherwise makes Delta refuse this create, and the retry syncs instead).
                created = True
                break
            except Exception:
                # Another writer is creating it: the racing create fails (a
                # concurrent-modification or protocol-changed error, or a folder
                # not yet a Delta table). Once its first commit is there,
                # "create if not exists" finds the table.
                if attempt == CREATE_ATTEMPTS:
                    raise
                time.sleep(0.5 * attempt)
        self.register(table)
        if not created:  # made earlier, perhaps under an older declaration: give it what it lacks
            self._sync_declarations(table)
        self._ready.add((table.name, table.uri))

    def _builder(self, table: TableSpec, builder, checks: dict[str, str]):
        for f in table.schema.fields:
            builder = builder.addColumn(f.name, f.dataType, nullable=f.nullable, comment=table.comments.get(f.name))
        if table.partition_by:
            builder = builder.partitionedBy(*table.partition_by)
        if table.description:
            builder = builder.comment(table.description)
        for key, value in {**table.properties, **checks}.items():
            builder = builder.property(key, value)
        return builder

    def _constraint_properties(self, table: TableSpec) -> dict[str, str]:
        """A new table's CHECK constraints as the properties ``ADD CONSTRAINT`` writes, checked as it checks them.

        Given at creation they cost nothing more; added one by one, each was a commit of its own (~0.7 s,
        about 30 s of a small state's pipeline). Delta enforces them on every write either way.

        Returns:
            ``delta.constraints.<name>`` (Delta's names are lower case) to the expression.

        Raises:
            ValueError: a name that is not a plain identifier, or two that differ only in case.
            AnalysisException: an expression that is not a condition on the table's columns.
        """
        if not table.checks:
            return {}
        empty = self.spark.createDataFrame([], table.schema)
        for name, expression in table.checks.items():
            _require_plain_name(table, name)
            # Analysed now (.schema: also over Spark Connect): an unknown column or a non-condition fails here.
            empty.where(expression).schema  # noqa: B018
        properties = {CONSTRAINT_PREFIX + name.lower(): expression for name, expression in table.checks.items()}
        if len(properties) < len(table.checks):
            raise ValueError(f"table {table.name}: constraint names differ only in case: {sorted(table.checks)}")
        return properties

    def register(self, table: TableSpec) -> None:
        """Point the catalog's ``<layer>.<table>`` at the table's location.

        The entry is external, so dropping a stale one (left by a lakehouse at
        another path) removes no data.

        Args:
            table: an existing table.
        """
        name = self.catalog_name(table)
        for attempt in range(1, CATALOG_ATTEMPTS + 1):
            try:
                self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {quote(table.layer)} COMMENT "
                               f"'votelake {table.layer} layer'")
                if self.spark.catalog.tableExists(name):
                    # One row: the registered table's location.
                    location = self.spark.sql(f"DESCRIBE DETAIL {name}").collect()[0]["location"]
                    if _same_path(location, table.uri):
                        return
                    self.spark.sql(f"DROP TABLE {name}")
                self.spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{_sql_string(table.uri)}'")
                return
            except Exception as error:
                # Two writers registering the same entry at once: one sees it vanish
                # or appear between its steps. Looking again settles it.
                if attempt == CATALOG_ATTEMPTS or not any(code in str(error) for code in CATALOG_RACES):
                    raise

    @staticmethod
    def catalog_name(table: TableSpec) -> str:
        """The table's name in the catalog: ``layer.table``, quoted."""
        layer, _, short = table.name.partition(".")
        return f"{quote(layer)}.{quote(short)}"

    def _sync_declarations(self, table: TableSpec) -> None:
        """Give an existing table the declared columns, properties and constraints it lacks.

        New nullable columns are added (schema evolution: a contract's new
        minor version may add columns); Delta keeps refusing anything else that
        differs from the table's schema.
        """
        existing = {f.name.lower() for f in self._delta_table(table).toDF().schema.fields}
        added = [f for f in table.schema.fields if f.name.lower() not in existing]
        if added:
            self.evolve_schema(table, T.StructType(added), table.comments)
        if not table.properties and not table.checks:
            return
        current = self.properties(table)
        missing = {k: v for k, v in table.properties.items() if current.get(k) != v}
        if missing:
            props = ", ".join(f"'{_sql_string(k)}' = '{_sql_string(v)}'" for k, v in missing.items())
            self.spark.sql(f"ALTER TABLE {self._path_sql(table)} SET TBLPROPERTIES ({props})")
        for name, expression in table.checks.items():
            if CONSTRAINT_PREFIX + name.lower() not in current:
                self.add_constraint(table, name, expression)

    def properties(self, table: TableSpec) -> dict[str, str]:
        """The table's Delta properties (``delta.constraints.<name>`` among them)."""
        detail = self.spark.sql(f"DESCRIBE DETAIL {self._path_sql(table)}").collect()[0]  # one row: the table's detail
        return dict(detail["properties"] or {})

    # -- reads ---------------------------------------------------------------------------

    def read(self, table: TableSpec, version: int | None = None) -> DataFrame:
        """Read the table, at its latest version or an earlier one.

        Args:
            table: the table.
            version: a committed version for time travel; None for the latest.

        Returns:
            The declared columns in declared order.

        Raises:
            TableNotFoundError: no table at the declared location.
        """
        if not self.exists(table):
            raise TableNotFoundError(f"table {table.name}: no Delta table at {table.uri}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        df = reader.load(table.uri)
        present = {c.lower() for c in df.columns}
        # A nullable column declared after this version was written (a contract's
        # new minor version) reads as null, as Delta reads it once the table evolves.
        return df.select(*[F.lit(None).cast(f.dataType).alias(f.name) if f.nullable and f.name.lower() not in present
                           else F.col(f.name) for f in table.schema.fields])

    def read_as_of(self, table: TableSpec, timestamp: datetime | str) -> DataFrame:
        """Read the table as of the latest version committed at or before ``timestamp``.

        Args:
            table: the table.
            timestamp: see :meth:`version_as_of`.

        Raises:
            TimeTravelError: the timestamp precedes the earliest available commit.
        """
        return self.read(table, version=self.version_as_of(table, timestamp))

    def version_as_of(self, table: TableSpec, timestamp: datetime | str) -> int:
        """The latest version committed at or before ``timestamp``.

        Resolved from the history, so a time after the last commit gives the
        latest version (Delta's ``timestampAsOf`` would refuse it).

        Args:
            table: the table.
            timestamp: an aware datetime, a naive one (UTC) or an ISO 8601 string.

        Raises:
            TimeTravelError: the timestamp precedes the earliest available commit.
        """
        when = timestamp if isinstance(timestamp, datetime) else datetime.fromisoformat(str(timestamp).strip())
        when = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        commits = self.history(table)
        eligible = [c["version"] for c in commits if c["timestamp"] <= when]
        if not eligible:
            first = commits[-1]
            raise TimeTravelError(f"table {table.name}: no version committed at or before {when.isoformat()}; "
                                  f"the earliest available commit is version {first['version']} at "
                                  f"{first['timestamp'].isoformat()}")
        return max(eligible)

    def changes(self, table: TableSpec, start: int, end: int | None = None) -> DataFrame:
        """Rows changed between versions, from the Change Data Feed (``table_changes``).

        Args:
            table: a table with ``delta.enableChangeDataFeed`` (every silver and gold one).
            start: first version (inclusive).
            end: last version (inclusive); None for the latest.

        Returns:
            The changed rows with ``_change_type``, ``_commit_version`` and ``_commit_timestamp``.
        """
        reader = self.spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", start)
        if end is not None:
            reader = reader.option("endingVersion", end)
        self._delta_table(table)  # a clear error when absent
        return reader.load(table.uri)

    def version(self, table: TableSpec) -> int | None:
        """The latest committed version, or None when the table does not exist."""
        if not self.exists(table):
            return None
        return int(self._delta_table(table).history(1).collect()[0]["version"])  # one row: the newest commit

    def history(self, table: TableSpec) -> list[dict]:
        """The table's commits, newest first.

        Returns:
            One dict per commit: ``version``, ``timestamp`` (aware UTC),
            ``operation`` (the caller's when recorded, else Delta's),
            ``engine_operation``, ``parameters`` and ``metadata`` (the caller's
            commit metadata).

        Raises:
            TableNotFoundError: no table at the declared location.
        """
        commits = []
        for row in self._delta_table(table).history().collect():  # one row per commit in the log
            try:
                metadata = json.loads(row["userMetadata"]) if row["userMetadata"] else {}
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                metadata = {"userMetadata": row["userMetadata"]}
            metadata = {str(k): str(v) for k, v in metadata.items() if k != COMMIT_KEY}
            timestamp = row["timestamp"]
            # Spark returns naive datetimes in the session time zone, which is UTC.
            timestamp = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=timezone.utc)
            commits.append({
                "version": int(row["version"]),
                "timestamp": timestamp.astimezone(timezone.utc),
                "operation": metadata.pop(OPERATION_KEY, row["operation"]),
                "engine_operation": row["operation"],
                "parameters": dict(row["operationParameters"] or {}),
                "metadata": metadata,
            })
        return sorted(commits, key=lambda c: c["version"], reverse=True)

    def committed_run(self, table: TableSpec, app_id: str) -> int | None:
        """The latest run version ``app_id`` committed to the table, from the commit metadata.

        Returns:
            The run version, or None when the table is absent or holds no commit by ``app_id``.
        """
        if not self.exists(table):
            return None
        runs = [int(c["metadata"][RUN_VERSION_KEY]) for c in self.history(table)
                if c["metadata"].get(APP_ID_KEY) == app_id and c["metadata"].get(RUN_VERSION_KEY, "").isdigit()]
        return max(runs, default=None)

    # -- writes ----------------------------------------------------------------------------

    def write(self, df: DataFrame, table: TableSpec, mode: WriteMode, *, app_id: str | None = None,
              run_version: int | None = None, operation: str = "WRITE",
              metadata: dict[str, str] | None = None) -> WriteResult:
        """Append to or overwrite the table in one commit, creating it first if absent.

        Args:
            df: rows matching the declared schema (any column order).
            table: the target table.
            mode: ``append`` or ``overwrite`` (earlier versions stay readable).
            app_id: the writing job's id; with ``run_version``, Delta's own
                ``txnAppId``/``txnVersion`` skip a write that run already committed.
            run_version: the job run's increasing number.
            operation: the logical operation recorded in the commit.
            metadata: extra commit metadata.

        Returns:
            What was committed.

        Raises:
            SchemaMismatchError: the DataFrame does not match the declared schema.
            NotNullViolationError: nulls in a NOT NULL column.
            ConstraintViolationError: rows break a CHECK constraint.
            ConcurrentWriteError: the commit kept losing races to other writers.
        """
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        return self._replace(df, table, mode, None, operation, app_id, run_version, metadata)

    def overwrite_where(self, df: DataFrame, table: TableSpec, predicate: str, *, app_id: str | None = None,
                        run_version: int | None = None, metadata: dict[str, str] | None = None,
                        retry_policy: RetryPolicy | None = None) -> WriteResult:
        """Replace the rows matching ``predicate`` with ``df`` in one commit (Delta's ``replaceWhere``).

        Args:
            df: the new rows; each must satisfy ``predicate`` (Delta refuses the write otherwise).
            table: the target table.
            predicate: a Spark SQL condition over the table's columns.
            app_id: see :meth:`write`.
            run_version: see :meth:`write`.
            metadata: extra commit metadata.
            retry_policy: this write's retries of a lost race (default: the store's).

        Returns:
            What was committed (``metrics``: ``rows_deleted``, ``rows_inserted``).

        Raises:
            ValueError: a row of ``df`` does not satisfy the predicate; nothing was written.
        """
        return self._replace(df, table, "overwrite", predicate, OVERWRITE_WHERE, app_id, run_version, metadata,
                             retry_policy)

    def _replace(self, df: DataFrame, table: TableSpec, mode: str, predicate: str | None, operation: str,
                 app_id: str | None, run_version: int | None, metadata: dict[str, str] | None,
                 retry_policy: RetryPolicy | None = None) -> WriteResult:
        _check_run_args(app_id, run_version)
        aligned = check_schema(df, table)
        self.create(table)
        token = uuid.uuid4().hex
        writer = aligned.write.format("delta").mode(mode).option(
            "userMetadata", json.dumps(commit_metadata({**(metadata or {}), COMMIT_KEY: token}, operation, app_id,
                                                       run_version)))
        if predicate is not None:
            writer = writer.option("replaceWhere", predicate)
        if app_id is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", str(run_version))
        try:
            committed, version, m = self._commit(table, lambda: writer.save(table.uri), token, retry_policy)
        except Exception as error:
            if predicate is not None and "DELTA_REPLACE_WHERE_MISMATCH" in str(error):
                # Only after a refused write: the count the error reports.
                outside = aligned.where(~F.coalesce(F.expr(predicate), F.lit(False))).count()
                raise ValueError(f"table {table.name}: {outside} row(s) of the DataFrame do not satisfy the "
                                 f"overwrite predicate {predicate!r}; nothing was written") from None
            raise
        if not committed:
            return WriteResult(table.name, version, False, 0, None)
        rows = _metric(m, "numOutputRows")
        return WriteResult(table.name, version, True, _metric(m, "numFiles", "numAddedFiles"), rows,
                           files_removed=_metric(m, "numRemovedFiles"),
                           metrics={"rows_deleted": _metric(m, "numDeletedRows"),
                                    "rows_inserted": rows - _metric(m, "numCopiedRows")})

    def merge(self, df: DataFrame, table: TableSpec, *, delete_missing: bool = False, app_id: str | None = None,
              run_version: int | None = None, metadata: dict[str, str] | None = None) -> WriteResult:
        """Upsert rows by the table's primary key with Delta's MERGE, creating the table if absent.

        Args:
            df: the new state of the rows it holds; keys must be unique.
            table: a table with a ``primary_key``.
            delete_missing: also delete target rows whose key is not in ``df``.
            app_id: see :meth:`write` (applied through Delta's session txn settings).
            run_version: see :meth:`write`.
            metadata: extra commit metadata.

        Returns:
            What was committed (``metrics``: rows inserted, updated, deleted).

        Raises:
            ValueError: the table has no key, or ``df`` repeats a key.
        """
        if not table.primary_key:
            raise ValueError(f"table {table.name}: merge needs a primary_key and the catalog declares none")
        _check_run_args(app_id, run_version)
        keys = list(table.primary_key)
        aligned = check_schema(df, table)
        # Delta refuses several source rows per target row only when a target row
        # exists; a duplicate new key would insert twice. Checked up front for both.
        dupes = (aligned.groupBy(*keys).count().where(F.col("count") > 1)
                 .agg(F.count("*").alias("keys"), F.max("count").alias("most")).first())
        if dupes["keys"]:
            raise ValueError(f"table {table.name}: the merge source has {dupes['keys']} key(s) on {keys} occurring "
                             f"more than once (up to {dupes['most']} times); keys must be unique")
        self.create(table)
        condition = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in keys)
        builder = (self._delta_table(table).alias("t").merge(aligned.alias("s"), condition)
                   .whenMatchedUpdateAll().whenNotMatchedInsertAll())
        if delete_missing:
            builder = builder.whenNotMatchedBySourceDelete()
        with self._session_commit(MERGE, metadata, app_id, run_version) as token:
            committed, version, m = self._commit(table, builder.execute, token)
        if not committed:
            return WriteResult(table.name, version, False, 0, None)
        return WriteResult(
            table.name, version, True, _metric(m, "numTargetFilesAdded"), _metric(m, "numOutputRows"),
            files_removed=_metric(m, "numTargetFilesRemoved"),
            metrics={"rows_inserted": _metric(m, "numTargetRowsInserted"),
                     "rows_updated": _metric(m, "numTargetRowsUpdated"),
                     "rows_deleted": _metric(m, "numTargetRowsDeleted", "numTargetRowsNotMatchedBySourceDeleted")},
        )

    def delete(self, table: TableSpec, predicate: str, *, metadata: dict[str, str] | None = None) -> WriteResult:
        """Delete the rows where ``predicate`` is true (Delta's DELETE).

        Returns:
            What was committed (``metrics``: ``rows_deleted``).
        """
        dt = self._delta_table(table)
        with self._session_commit(DELETE, metadata, None, None) as token:
            committed, version, m = self._commit(table, lambda: dt.delete(predicate), token)
        return WriteResult(table.name, version, committed, _metric(m, "numAddedFiles"), _metric(m, "numCopiedRows"),
                           files_removed=_metric(m, "numRemovedFiles"),
                           metrics={"rows_deleted": _metric(m, "numDeletedRows")})

    def delete_keys(self, table: TableSpec, keys: DataFrame, *, metadata: dict[str, str] | None = None) -> WriteResult:
        """Delete the rows whose columns equal one of ``keys``' rows (Delta's MERGE ... WHEN MATCHED THEN DELETE).

        Unlike :meth:`delete`, whose predicate Delta records in the commit, the
        values deleted stay out of the table's log: a MERGE records only its
        join condition. Erasure needs that.

        Args:
            table: the table.
            keys: distinct values of some of the table's columns (nulls match nulls).
            metadata: extra commit metadata.

        Returns:
            What was committed (``metrics``: ``rows_deleted``).
        """
        condition = " AND ".join(f"t.{quote(c)} <=> s.{quote(c)}" for c in keys.columns)
        builder = self._delta_table(table).alias("t").merge(keys.alias("s"), condition).whenMatchedDelete()
        with self._session_commit(MERGE, metadata, None, None) as token:
            committed, version, m = self._commit(table, builder.execute, token)
        return WriteResult(table.name, version, committed, _metric(m, "numTargetFilesAdded"), 0,
                           files_removed=_metric(m, "numTargetFilesRemoved"),
                           metrics={"rows_deleted": _metric(m, "numTargetRowsDeleted")})

    def purge_deleted(self, table: TableSpec) -> None:
        """Rewrite the files whose deleted rows are only masked by deletion vectors, so vacuum can remove them.

        A table without deletion vectors (the default here) rewrites its files
        on every delete, and this does nothing.
        """
        if self.properties(table).get("delta.enableDeletionVectors", "false").lower() == "true":
            self.spark.sql(f"REORG TABLE {self._path_sql(table)} APPLY (PURGE)").collect()

    def _commit(self, table: TableSpec, action: Callable[[], object], token: str,
                retry_policy: RetryPolicy | None = None) -> tuple[bool, int, dict]:
        """Run one Delta command, retrying while it loses races; then read what it committed.

        Args:
            table: the table.
            action: the command.
            token: recorded in the command's commit metadata, to find its commit in the
                history (Delta commits nothing when the txn id says the run already did).
            retry_policy: overrides the store's.

        Returns:
            Whether a commit was made, its version (else the latest) and its operationMetrics.
        """
        policy = retry_policy or self.retry_policy
        for attempt in range(1, policy.attempts + 1):
            try:
                action()
                break
            except Exception as error:  # Delta's errors reach Python converted or as Py4J errors
                if not _is_conflict(error):
                    translated = _translated(error, table)
                    if translated is error:
                        raise
                    raise translated from None
                if attempt == policy.attempts:
                    latest = self.version(table)
                    raise ConcurrentWriteError(
                        f"table {table.name}: commit lost to another writer {attempt} time(s); the table is at "
                        f"version {latest}: {type(error).__name__}", table=table.name, version=latest,
                        attempts=attempt) from error
                time.sleep(policy.delay(attempt))
        # Writers committing right after this one push its commit down the history.
        recent = self._delta_table(table).history(RECENT_COMMITS).select(
            "version", "userMetadata", "operationMetrics").collect()
        for row in recent:
            if token in (row["userMetadata"] or ""):
                metrics = dict(row["operationMetrics"] or {})
                progress.committed(table.name, _metric(metrics, "numOutputRows"))
                return True, int(row["version"]), metrics
        return False, int(recent[0]["version"]), {}

    @contextmanager
    def _session_commit(self, operation: str, metadata: dict[str, str] | None, app_id: str | None,
                        run_version: int | None) -> Iterator[str]:
        """Set the commit's userMetadata (and txn id) for one DML command; yield its token."""
        token = uuid.uuid4().hex
        settings = {_USER_METADATA: json.dumps(commit_metadata({**(metadata or {}), COMMIT_KEY: token}, operation,
                                                               app_id, run_version))}
        if app_id is not None:
            settings.update({_TXN_APP_ID: app_id, _TXN_VERSION: str(run_version)})
        with self._session_conf(settings):
            yield token

    @contextmanager
    def _session_conf(self, settings: dict[str, str]) -> Iterator[None]:
        """Set session configuration for one Delta command, then restore what was there."""
        previous = {k: self.spark.conf.get(k, None) for k in settings}
        for k, v in settings.items():
            self.spark.conf.set(k, v)
        try:
            yield
        finally:
            for k, v in previous.items():
                self.spark.conf.unset(k) if v is None else self.spark.conf.set(k, v)

    # -- schema and constraints -----------------------------------------------------------------

    def add_constraint(self, table: TableSpec, name: str, expression: str) -> None:
        """Add a CHECK constraint that every existing row satisfies; Delta enforces it on every later write.

        Raises:
            ValueError: a name that is not a plain identifier.
            ConstraintViolationError: existing rows break it.
        """
        _require_plain_name(table, name)
        self._delta_table(table)
        try:
            self.spark.sql(f"ALTER TABLE {self._path_sql(table)} ADD CONSTRAINT {name} CHECK ({expression})")
        except Exception as error:
            translated = _translated(error, table)
            if translated is error:
                raise
            raise translated from None

    def constraints(self, table: TableSpec) -> dict[str, str]:
        """The table's CHECK constraints, name to expression (empty when absent)."""
        if not self.exists(table):
            return {}
        return {k[len(CONSTRAINT_PREFIX):]: v for k, v in self.properties(table).items()
                if k.startswith(CONSTRAINT_PREFIX)}

    def evolve_schema(self, table: TableSpec, new_columns: T.StructType,
                      comments: dict[str, str] | None = None) -> None:
        """Add nullable columns (existing rows read them as null); ones present with the same type are skipped.

        Args:
            table: the table.
            new_columns: the columns to add.
            comments: column comments for the catalog.

        Raises:
            ValueError: a column is not nullable.
            SchemaMismatchError: a column exists with another type.
        """
        not_nullable = [f.name for f in new_columns.fields if not f.nullable]
        if not_nullable:
            raise ValueError(f"table {table.name}: cannot add non-nullable column(s) {not_nullable}; "
                             "existing rows have no value for them. Add them nullable.")
        current = {f.name.lower(): f for f in self._delta_table(table).toDF().schema.fields}
        clashes = [f"{f.name} (table: {current[f.name.lower()].dataType.simpleString()}, new: "
                   f"{f.dataType.simpleString()})" for f in new_columns.fields
                   if f.name.lower() in current
                   and without_nullability(current[f.name.lower()].dataType) != without_nullability(f.dataType)]
        if clashes:
            raise SchemaMismatchError(f"table {table.name}: columns already exist with another type: {clashes}")
        to_add = [f for f in new_columns.fields if f.name.lower() not in current]
        if to_add:
            comments = comments or {}
            columns = ", ".join(f"{quote(f.name)} {f.dataType.simpleString()}"
                                + (f" COMMENT '{_sql_string(comments[f.name])}'" if f.name in comments else "")
                                for f in to_add)
            self.spark.sql(f"ALTER TABLE {self._path_sql(table)} ADD COLUMNS ({columns})")

    # -- maintenance ------------------------------------------------------------------------------

    def optimize(self, table: TableSpec, *, zorder_by: Sequence[str] = (), target_file_mb: int | None = None) -> dict:
        """Compact small files, Z-ordered by ``zorder_by`` when given, in one commit.

        Returns:
            ``files_added``, ``files_removed``, ``version_before``, ``version``, ``engine_metrics``.

        Raises:
            ValueError: a Z-order column is unknown or a partition column.
        """
        bad = [c for c in zorder_by if c not in table.columns or c in table.partition_by]
        if bad:
            raise ValueError(f"table {table.name}: cannot z-order by unknown or partition columns {bad}")
        dt = self._delta_table(table)
        before = self.version(table)
        # Delta reads the target size only from the session configuration.
        size = {"spark.databricks.delta.optimize.maxFileSize": str(target_file_mb * 1024 * 1024)} if target_file_mb else {}
        with self._session_conf(size):
            builder = dt.optimize()
            # One row: the metrics read below.
            rows = (builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()).collect()
        raw = rows[0]["metrics"].asDict(recursive=True) if rows and rows[0]["metrics"] else {}
        return {"files_added": int(raw.get("numFilesAdded", 0)), "files_removed": int(raw.get("numFilesRemoved", 0)),
                "version_before": before, "version": self.version(table), "engine_metrics": raw}

    def vacuum(self, table: TableSpec, *, retention_hours: float = DEFAULT_RETENTION_HOURS, dry_run: bool = True,
               force: bool = False) -> list[str]:
        """Delete files that no version within the retention needs (removed by old commits, or never committed).

        Args:
            table: the table.
            retention_hours: keep what the last this-many hours of versions need.
            dry_run: only list what would be deleted.
            force: allow a retention below the table's ``delta.deletedFileRetentionDuration``.

        Returns:
            Paths relative to the table location, deleted or (dry run) to delete.

        Raises:
            RetentionTooShortError: the retention is below the table's without ``force``.
        """
        self._delta_table(table)
        if retention_hours < 0:
            raise ValueError(f"table {table.name}: vacuum retention must be >= 0 hours, got {retention_hours}")
        configured = self.properties(table).get(RETENTION_KEY)
        minimum = parse_interval_hours(configured) if configured else DEFAULT_RETENTION_HOURS
        if retention_hours < minimum and not force:
            raise RetentionTooShortError(
                f"table {table.name}: vacuum retention of {retention_hours:g} h is below the table's "
                f"{RETENTION_KEY} of {minimum:g} h: files of those versions are still needed for time travel "
                "and by writers running now. Pass force=True only when no job uses the table.")
        hours = f"{retention_hours:.6f}".rstrip("0").rstrip(".")
        statement = f"VACUUM {self._path_sql(table)} RETAIN {hours} HOURS"
        settings = {
            # Checked above with a clearer message; Delta's own check would refuse a forced run.
            "spark.databricks.delta.retentionDurationCheck.enabled": "false",
            # Delta ignores any retention but 0 h in favour of the table's property unless told not to;
            # a longer retention asked for must hold, or time travel ends sooner than promised.
            "spark.databricks.delta.vacuum.retentionWindowIgnore.enabled": "false",
            # Vacuum lists and matches files in this many tasks (Spark's default: 10,000,
            # minutes of scheduling on a small machine); the shuffle's width suits the table.
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": self.spark.conf.get(
                "spark.sql.shuffle.partitions"),
        }
        with self._session_conf(settings):
            # Only a dry run lists the paths; the real run reports just the location.
            listed = [row["path"] for row in self.spark.sql(statement + " DRY RUN").collect()]
            # Nothing to delete: the real run would list the table again to delete nothing (and commit
            # its start and end). A file left in between waits for the next vacuum.
            if listed and not dry_run:
                self.spark.sql(statement).collect()
        base = _bare(table.uri)
        return sorted(_bare(p)[len(base) + 1:] if _bare(p).startswith(base + "/") else p for p in listed)


def _check_run_args(app_id: str | None, run_version: int | None) -> None:
    if (app_id is None) != (run_version is None):
        raise ValueError("app_id and run_version must be given together")


def _is_conflict(error: Exception) -> bool:
    """Whether a Delta command lost a race to another writer's commit (a retry may succeed)."""
    # A write's conflict arrives as a Py4J error naming Delta's exception, not as its Python class.
    return isinstance(error, _CONFLICTS) or "io.delta.exceptions.Concurrent" in str(error) or (
        "DELTA_CONCURRENT_" in str(error))


def _translated(error: Exception, table: TableSpec) -> Exception:
    """Delta's invariant errors as votelake's, naming the table; other errors unchanged."""
    text = str(error)
    if "DELTA_NOT_NULL_CONSTRAINT_VIOLATED" in text or "NOT NULL constraint violated" in text:
        return NotNullViolationError(f"table {table.name}: {_first_line(text)}")
    if "DELTA_VIOLATE_CONSTRAINT" in text or "CHECK constraint" in text or "DELTA_NEW_CHECK_CONSTRAINT" in text:
        return ConstraintViolationError(f"table {table.name}: {_first_line(text)}")
    return error


def _first_line(text: str) -> str:
    """Delta's own message (``[DELTA_...] ...``) out of a Py4J error's text, else its first line."""
    found = re.search(r"\[DELTA_[A-Z_]+\][^\n]*", text)
    return found.group(0) if found else (text.strip().splitlines() or [""])[0]


def _sql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _bare(path: str) -> str:
    """A path or URI without its scheme (``file:``), for comparisons."""
    return re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(//)?", "/", str(path)).replace("//", "/").rstrip("/")


def _same_path(a: str, b: str) -> bool:
    return _bare(a) == _bare(b)

