"""Delta tables written by Spark executors and committed by delta-rs on the driver.

No Delta jars are needed: Spark writes plain Parquet files into a staging folder
inside the table, the driver moves them into the table keeping their hive-style
partition folders, and delta-rs commits one transaction that adds them (and, for
an overwrite, removes every earlier file). Readers get the snapshot's file list
from delta-rs and let Spark read those files.

Choices worth knowing:

* Writing an empty DataFrame still commits a version (with no files); an empty
  overwrite therefore empties the table.
* Statistics in the log (``numRecords``, ``nullCount``, ``minValues``/``maxValues``)
  come from the Parquet footers Spark wrote; no data is read again. Float/double
  min/max are left out (Parquet statistics skip NaN, Delta's do not), as are
  nested columns.
* ``not null`` columns are enforced from the same footers' null counts.
* A crash between moving files and committing leaves unreferenced files behind;
  Delta's vacuum removes them.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from urllib.parse import unquote

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, CommitProperties, Transaction, create_table_with_add_actions
from deltalake.exceptions import CommitFailedError, DeltaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from votelake.catalog import TableSpec
from votelake.storage.arrow_schema import to_arrow_schema
from votelake.storage.dml import DeltaRsDmlMixin
from votelake.storage.maintenance import DeltaRsMaintenanceMixin, check_constraints, table_constraints
from votelake.storage.base import ConcurrentWriteError
from votelake.storage.retry import DEFAULT_RETRY_POLICY, RetryPolicy
from votelake.storage.base import (
    OPERATION_KEY,
    DeltaStore,
    NotNullViolationError,
    TableNotFoundError,
    WriteMode,
    WriteResult,
    check_schema,
    commit_metadata,
)

STAGING_DIR = "_staging"
# Spark writes a null partition value as this folder name.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# Delta truncates string statistics to a prefix; a longer max is simply left out.
STRING_STATS_PREFIX = 32
# Reader features this module's plain-Parquet reader cannot honour.
UNSUPPORTED_READER_FEATURES = {"columnMapping", "deletionVectors", "v2Checkpoint"}
# commitInfo keys the engines write themselves; every other key is caller metadata.
ENGINE_COMMIT_KEYS = {
    "timestamp", "operation", "operationParameters", "operationMetrics", "engineInfo",
    "clientVersion", "version", "readVersion", "isolationLevel", "isBlindAppend",
    "userId", "userName", "userMetadata", "txnId", "inCommitTimestamp",
}

_ESCAPED = re.compile(r"%([0-9A-Fa-f]{2})")


def _unescape_path_name(name: str) -> str:
    """Undo Spark's escaping of special characters (``%XX``) in a partition folder name."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), name)


def _locate(uri: str) -> tuple[pafs.FileSystem, str, str]:
    """Resolve a table location for pyarrow, Spark and delta-rs.

    Args:
        uri: a local path (absolute or relative to the working directory) or a URI.

    Returns:
        The filesystem, the table path inside it, and the location string to hand
        to Spark and delta-rs (local paths made absolute so all three agree).
    """
    if "://" not in uri:
        path = os.path.abspath(uri)
        return pafs.LocalFileSystem(), path, path
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/"), uri.rstrip("/")


def _partition_values(relative: str, partition_by: tuple[str, ...]) -> dict[str, str | None]:
    """Read the partition values from a file's hive-style relative path.

    Args:
        relative: e.g. ``state=NC/county=Wake%2FDurham/part-0000.parquet``.
        partition_by: the table's partition columns, in order.

    Returns:
        Column -> value as Delta stores it (a string, None for null).

    Raises:
        ValueError: the folders do not match the partition columns.
    """
    folders = relative.split("/")[:-1]
    names = []
    values: dict[str, str | None] = {}
    for folder in folders:
        name, sep, raw = folder.partition("=")
        if not sep:
            raise ValueError(f"not a hive-style partition folder: {folder!r} in {relative!r}")
        name = _unescape_path_name(name)
        names.append(name)
        values[name] = None if raw == HIVE_NULL else _unescape_path_name(raw)
    if tuple(names) != tuple(partition_by):
        raise ValueError(f"file {relative!r} has partition folders {names}, expected {list(partition_by)}")
    return values


def _stat_value(value: object, dtype: T.DataType, is_max: bool) -> object | None:
    """Render one footer min/max as Delta's stats JSON expects, or None to omit it."""
    if isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return int(value)
    if isinstance(dtype, T.DateType) and isinstance(value, date):
        return value.isoformat()
    if isinstance(dtype, T.TimestampType) and isinstance(value, datetime):
        ts = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        ts = ts.astimezone(timezone.utc)
        # Delta stats carry milliseconds: round outward so the bounds still hold.
        spare = ts.microsecond % 1000
        if spare:
            ts = ts + timedelta(microseconds=1000 - spare) if is_max else ts - timedelta(microseconds=spare)
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    if isinstance(dtype, T.StringType):
        text = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        if len(text) <= STRING_STATS_PREFIX:
            return text
        # A prefix is still a lower bound; a cut maximum is not an upper bound.
        return None if is_max else text[:STRING_STATS_PREFIX]
    return None


def _file_stats(meta: pq.FileMetaData, data_fields: list[T.StructField]) -> dict:
    """Build a Delta ``stats`` object from a Parquet footer.

    Args:
        meta: the file's footer.
        data_fields: the table's non-partition columns.

    Returns:
        ``numRecords`` and, where the footer has them, ``nullCount``,
        ``minValues`` and ``maxValues`` for top-level primitive columns.
    """
    stats: dict = {"numRecords": meta.num_rows}
    if meta.num_row_groups == 0:
        return stats
    first = meta.row_group(0)
    index = {first.column(j).path_in_schema: j for j in range(first.num_columns)}
    null_count, min_values, max_values = {}, {}, {}
    for field in data_fields:
        if isinstance(field.dataType, (T.ArrayType, T.MapType, T.StructType)) or field.name not in index:
            continue
        j = index[field.name]
        columns = [meta.row_group(i).column(j).statistics for i in range(meta.num_row_groups)]
        if all(s is not None and s.has_null_count for s in columns):
            null_count[field.name] = sum(s.null_count for s in columns)
        ranged = [s for s in columns if s is not None and s.has_min_max]
        # Row groups that are all null (no non-null values) have no min/max and
        # cannot widen the range; any other row group without min/max leaves it unknown.
        complete = all(
            s is not None and (s.has_min_max or (s.has_null_count and s.num_values == 0))
            for s in columns
        )
        if ranged and complete:
            low = _stat_value(min(s.min for s in ranged), field.dataType, is_max=False)
            high = _stat_value(max(s.max for s in ranged), field.dataType, is_max=True)
            if low is not None:
                min_values[field.name] = low
            if high is not None:
                max_values[field.name] = high
    if null_count:
        stats["nullCount"] = null_count
    if min_values:
        stats["minValues"] = min_values
    if max_values:
        stats["maxValues"] = max_values
    return stats


class DeltaRsStore(DeltaRsDmlMixin, DeltaRsMaintenanceMixin, DeltaStore):
    """Delta tables written with Spark (data files) and delta-rs (the commit).

    Args:
        spark: the job's SparkSession (classic or Spark Connect).
        storage_options: delta-rs storage options for object stores (credentials,
            endpoint); not needed for local paths.
    """

    backend = "delta-rs"

    def __init__(self, spark: SparkSession, storage_options: dict[str, str] | None = None):
        self.spark = spark
        self.storage_options = storage_options

    # -- helpers -----------------------------------------------------------------

    def _table(self, table: TableSpec, version: int | None = None) -> DeltaTable:
        """Open the table with delta-rs, raising a clear error when it does not exist."""
        _, _, uri = _locate(table.uri)
        if not DeltaTable.is_deltatable(uri, self.storage_options):
            raise TableNotFoundError(f"table {table.name}: no Delta table at {uri}")
        return DeltaTable(uri, version=version, storage_options=self.storage_options)

    @staticmethod
    def _delta_schema(table: TableSpec) -> DeltaSchema:
        # create_table_with_add_actions takes only a deltalake Schema, not an Arrow one.
        return DeltaSchema.from_arrow(to_arrow_schema(table.schema))

    # -- contract ----------------------------------------------------------------

    def exists(self, table: TableSpec) -> bool:
        """See :meth:`DeltaStore.exists`."""
        _, _, uri = _locate(table.uri)
        return DeltaTable.is_deltatable(uri, self.storage_options)

    def create(self, table: TableSpec) -> None:
        """See :meth:`DeltaStore.create`."""
        if self.exists(table):
            return
        _, _, uri = _locate(table.uri)
        # mode="ignore" keeps this idempotent if another writer creates it first.
        DeltaTable.create(
            uri,
            self._delta_schema(table),
            mode="ignore",
            partition_by=list(table.partition_by) or None,
            name=table.name,
            description=table.description or None,
            configuration=dict(table.properties) or None,
            storage_options=self.storage_options,
            commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "CREATE"}),
        )

    def write(
        self,
        df: DataFrame,
        table: TableSpec,
        mode: WriteMode,
        *,
        app_id: str | None = None,
        run_version: int | None = None,
        operation: str = "WRITE",
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """See :meth:`DeltaStore.write`.

        Spark writes the Parquet files; the driver moves them into the table and
        commits them with delta-rs in one transaction.
        """
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if (app_id is None) != (run_version is None):
            raise ValueError("app_id and run_version must be given together")
        aligned = check_schema(df, table)
        fs, root, uri = _locate(table.uri)
        existing = self._table(table) if self.exists(table) else None
        if existing is not None and app_id is not None:
            done = existing.transaction_version(app_id)
            if done is not None and done >= run_version:
                return WriteResult(table.name, existing.version(), False, 0, None)

        # CHECK constraints: delta-rs's own writer is bypassed, so check them here (one pass).
        check_constraints(aligned, table_constraints(self, table), table.name)
        token = uuid.uuid4().hex
        staging = f"{root}/{STAGING_DIR}/{token}"
        try:
            aligned.write.mode("error").partitionBy(*table.partition_by).parquet(f"{uri}/{STAGING_DIR}/{token}")
            actions, rows = self._move_into_table(fs, root, staging, table)
            self._commit(table, uri, existing, actions, mode, app_id, run_version, operation, metadata)
        finally:
            self._remove_staging(fs, staging)
        return WriteResult(table.name, self._table(table).version(), True, len(actions), rows)

    def _move_into_table(
        self, fs: pafs.FileSystem, root: str, staging: str, table: TableSpec
    ) -> tuple[list[AddAction], int]:
        """Move the staged Parquet files into the table and describe them as add actions.

        Args:
            fs: the table's filesystem.
            root: the table path inside ``fs``.
            staging: the staging folder inside ``fs``.
            table: the table.

        Returns:
            The add actions and the total row count.

        Raises:
            NotNullViolationError: a ``not null`` column holds nulls (nothing moved).
        """
        infos = fs.get_file_info(pafs.FileSelector(staging, recursive=True))
        files = [
            i for i in infos
            if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")
            and not i.base_name.startswith((".", "_"))
        ]
        partition_cols = set(table.partition_by)
        data_fields = [f for f in table.schema.fields if f.name not in partition_cols]
        required = {f.name for f in table.schema.fields if not f.nullable}
        planned = []
        for info in files:
            relative = info.path[len(staging) + 1:]
            with fs.open_input_file(info.path) as handle:
                meta = pq.ParquetFile(handle).metadata
            if meta.num_rows == 0:
                continue  # Spark writes a schema-only file for empty input; Delta needs none.
            values = _partition_values(relative, table.partition_by)
            stats = _file_stats(meta, data_fields)
            nulls = [c for c in required if (c in values and values[c] is None)
                     or stats.get("nullCount", {}).get(c, 0) > 0]
            if nulls:
                raise NotNullViolationError(
                    f"table {table.name}: null values in not-null column(s) {sorted(nulls)}"
                )
            planned.append((info, relative, values, stats))

        actions, rows = [], 0
        for info, relative, values, stats in planned:
            target = f"{root}/{relative}"
            fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            fs.move(info.path, target)
            # delta-rs percent-encodes the path itself: hand it the real relative path.
            actions.append(AddAction(
                path=relative,
                size=info.size,
                partition_values=values,
                modification_time=int(info.mtime.timestamp() * 1000),
                data_change=True,
                stats=json.dumps(stats),
            ))
            rows += stats["numRecords"]
        return actions, rows

    def _commit(
        self,
        table: TableSpec,
        uri: str,
        existing: DeltaTable | None,
        actions: list[AddAction],
        mode: WriteMode,
        app_id: str | None,
        run_version: int | None,
        operation: str,
        metadata: dict[str, str] | None,
    ) -> None:
        """Commit the add actions in one transaction (creating the table if needed).

        Concurrent writers are handled at two levels:

        * delta-rs itself rebases a commit that lost the race for the next version
          onto the newer commits when they do not conflict (two appends, an
          overwrite after a blind append), up to ``DELTA_RS_COMMIT_RETRIES`` times.
        * A real conflict (``CommitFailedError``: e.g. another overwrite, delete or
          compaction removed files this commit's snapshot held) is retried under
          the store's :class:`~votelake.storage.retry.RetryPolicy` (the
          ``retry_policy`` attribute, else ``COMMIT_RETRY_POLICY``) against a
          freshly opened snapshot, waiting between attempts.

        An overwrite is retried too: it is a full replace whose rows do not depend
        on the table, so rebuilding it on the newest snapshot is the serial order
        "their commit, then ours" (last writer wins; their commit stays in the
        history for time travel). On its first attempt an overwrite keeps the
        snapshot the write started from, so a blind append committed meanwhile
        survives it (the serial order "our overwrite, then their append").

        A write whose table did not exist creates it; when another writer created
        it first, this one commits into the existing table instead.

        Args:
            table: the table.
            uri: the table location for delta-rs.
            existing: the snapshot the write started from, None when there was no table.
            actions: the files to add.
            mode: ``append`` or ``overwrite``.
            app_id: the writing job's id, for idempotent commits.
            run_version: the job run's number, with ``app_id``.
            operation: the logical operation, recorded in the commit metadata.
            metadata: extra commit metadata.

        Raises:
            ConcurrentWriteError: the commit still conflicted after the policy's
                attempts, or the same ``app_id``/``run_version`` was committed by a
                concurrent writer; nothing was committed by this write.
        """
        properties = CommitProperties(
            custom_metadata=commit_metadata(metadata, operation, app_id, run_version),
            max_commit_retries=DELTA_RS_COMMIT_RETRIES,
            app_transactions=[Transaction(app_id, run_version)] if app_id is not None else None,
        )
        schema = self._delta_schema(table)
        partition_by = list(table.partition_by) or None
        policy = getattr(self, "retry_policy", None) or COMMIT_RETRY_POLICY
        if existing is None:
            try:
                create_table_with_add_actions(
                    uri,
                    schema,
                    actions,
                    mode="error",
                    partition_by=partition_by,
                    name=table.name,
                    description=table.description or None,
                    configuration=dict(table.properties) or None,
                    storage_options=self.storage_options,
                    commit_properties=properties,
                )
                return
            except DeltaError:
                # Another writer created the table since the write began: commit into it.
                if not DeltaTable.is_deltatable(uri, self.storage_options):
                    raise
            existing = DeltaTable(uri, storage_options=self.storage_options)
            if actions and _holds_files(existing, actions):
                return  # the failure came after our own create had committed
        snapshot = existing
        failure: CommitFailedError | None = None
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                time.sleep(policy.delay(attempt - 1))
                snapshot = DeltaTable(uri, storage_options=self.storage_options)
                done = snapshot.transaction_version(app_id) if app_id is not None else None
                if done is not None and done >= run_version:
                    raise ConcurrentWriteError(
                        f"table {table.name} ({uri}): a concurrent writer committed app_id "
                        f"{app_id!r} run {done} (this write is run {run_version}) by version "
                        f"{snapshot.version()}; this write was not committed",
                        table=table.name, version=snapshot.version(), attempts=attempt - 1,
                    ) from failure
            try:
                # mode="overwrite" without partition filters removes every file active
                # in `snapshot` in this same commit.
                snapshot.create_write_transaction(
                    actions, mode, schema, partition_by=partition_by, commit_properties=properties
                )
                return
            except CommitFailedError as error:
                failure = error
                _log.warning(
                    "table %s: %s commit attempt %d/%d conflicted with a concurrent commit: %s",
                    table.name, mode, attempt, policy.attempts, error,
                )
        latest = DeltaTable(uri, storage_options=self.storage_options).version()
        raise ConcurrentWriteError(
            f"table {table.name} ({uri}): {mode} commit conflicted with concurrent commits "
            f"after {policy.attempts} attempt(s); the table is at version {latest}, this write "
            f"was not committed (read version {snapshot.version()}): {failure}",
            table=table.name, version=latest, attempts=policy.attempts,
        ) from failure

    @staticmethod
    def _remove_staging(fs: pafs.FileSystem, staging: str) -> None:
        """Delete this write's staging folder.

        The shared ``_staging`` parent stays: removing it is recursive in
        pyarrow.fs and could delete a concurrent writer's files. Stale folders of
        killed writers are removed by ``vacuum``.
        """
        if fs.get_file_info(staging).type != pafs.FileType.NotFound:
            fs.delete_dir(staging)

    def read(self, table: TableSpec, version: int | None = None) -> DataFrame:
        """See :meth:`DeltaStore.read`.

        Partition columns come from the hive-style folder names, typed by the
        declared schema. Columns read back nullable (Spark's file sources always are).
        """
        dt = self._table(table, version)
        features = set(dt.protocol().reader_features or [])
        unsupported = features & UNSUPPORTED_READER_FEATURES
        if unsupported:
            raise ValueError(
                f"table {table.name} uses Delta reader features {sorted(unsupported)} "
                "that the delta-rs backend's reader does not support; use delta-spark"
            )
        files = dt.file_uris()
        if not files:
            return self.spark.createDataFrame([], table.schema)
        _, _, uri = _locate(table.uri)
        return (
            self.spark.read.schema(table.schema)
            .option("basePath", uri)
            .parquet(*files)
            .select(*table.columns)
        )

    def version(self, table: TableSpec) -> int | None:
        """See :meth:`DeltaStore.version`."""
        if not self.exists(table):
            return None
        return self._table(table).version()

    def committed_run(self, table: TableSpec, app_id: str) -> int | None:
        """See :meth:`DeltaStore.committed_run`; read from the log's transaction identifiers."""
        if not self.exists(table):
            return None
        return self._table(table).transaction_version(app_id)

    def history(self, table: TableSpec) -> list[dict]:
        """See :meth:`DeltaStore.history`."""
        commits = []
        for entry in self._table(table).history():
            metadata = {k: str(v) for k, v in entry.items() if k not in ENGINE_COMMIT_KEYS}
            engine_operation = entry.get("operation", "")
            commits.append({
                "version": int(entry["version"]),
                "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, tz=timezone.utc),
                "operation": metadata.pop(OPERATION_KEY, engine_operation),
                "engine_operation": engine_operation,
                "parameters": dict(entry.get("operationParameters") or {}),
                "metadata": metadata,
            })
        return sorted(commits, key=lambda c: c["version"], reverse=True)


# -- concurrent commits (used by DeltaRsStore._commit) ---------------------------------

_log = logging.getLogger(__name__)

# delta-rs's own retries: rebasing a commit that lost the race for the next version
# onto newer, non-conflicting commits (cheap; no data is rewritten).
DELTA_RS_COMMIT_RETRIES = 15

# Retries of a commit that really conflicted, rebuilt on the newest snapshot. A store
# uses its ``retry_policy`` attribute when set.
COMMIT_RETRY_POLICY: RetryPolicy = DEFAULT_RETRY_POLICY


def _holds_files(snapshot: DeltaTable, actions: list[AddAction]) -> bool:
    """Tell whether a snapshot already references every file of these add actions.

    Args:
        snapshot: the table snapshot.
        actions: add actions whose paths are real relative paths (the log stores
            them percent-encoded).

    Returns:
        True when all of the actions' files are active in the snapshot.
    """
    paths = snapshot.get_add_actions(flatten=True).column("path").to_pylist()
    active = {unquote(p) for p in paths}
    return all(a.path in active for a in actions)
