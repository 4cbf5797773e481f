"""Row-level changes: merge (upsert by primary key), delete by predicate and
predicate overwrite (``replaceWhere``), for both backends.

On delta-rs they run copy-on-write in Spark over only the affected files, and
one delta-rs commit removes the old files and adds the rewritten ones:

1. The current snapshot's file list (with partition values and key statistics)
   comes from delta-rs; files that cannot hold an affected row are pruned there.
2. Spark scans the remaining candidates with each row's file
   (``_metadata.file_path``) and finds the files that really hold affected rows
   (a semi join on the key, or the predicate), collecting only a per-file count.
3. Spark writes the new content of those files (their unaffected rows plus the
   new rows) through the same staging folder as ``write``.
4. One ``append`` transaction removes the affected files and adds the new ones.
   Files without affected rows are neither read in full nor rewritten.

Semantics shared by both backends: a merge's source must have unique keys (rows
whose key columns are all equal, nulls included, count as duplicates); a key
holding a null never matches, as in SQL. A row is deleted, or replaced by
``overwrite_where``, only where the predicate is true (not where it is null).
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterator
from urllib.parse import unquote

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F
from pyspark.sql import types as T

from votelake.catalog import TableSpec
from votelake.storage.base import WriteResult, check_schema, commit_metadata

if TYPE_CHECKING:
    from deltalake import DeltaTable

# Hidden column holding the file a scanned row came from.
FILE_COL = "_votelake_file"
# Source key sets up to this many rows are broadcast to the target scan, so the
# (large) target is never shuffled just to find the affected files.
BROADCAST_KEY_ROWS = 1_000_000
# Partition pruning collects the source's distinct partition values; above this
# many the plain semi join is used instead.
MAX_PRUNING_PARTITIONS = 10_000
# Key types whose Delta min/max statistics can safely rule a file out.
_RANGE_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.StringType, T.DateType)

# Logical operations recorded in the commit metadata (``history()["operation"]``).
MERGE = "MERGE"
DELETE = "DELETE"
OVERWRITE_WHERE = "OVERWRITE_WHERE"


# -- shared by both backends --------------------------------------------------------------


def _require_keys(table: TableSpec) -> tuple[str, ...]:
    """Return the table's primary key, raising when it declares none."""
    if not table.primary_key:
        raise ValueError(f"table {table.name}: merge needs a primary_key and the catalog declares none")
    return tuple(table.primary_key)


def _check_run_args(app_id: str | None, run_version: int | None) -> None:
    """Raise unless ``app_id`` and ``run_version`` are given together."""
    if (app_id is None) != (run_version is None):
        raise ValueError("app_id and run_version must be given together")


def _profile_source(df: DataFrame, table: TableSpec, keys: tuple[str, ...]) -> dict:
    """Count the source rows, reject duplicate keys, and find each key column's range.

    One Spark job: group by key, then aggregate the groups.

    Args:
        df: the aligned source rows.
        table: the target table (for messages and key types).
        keys: the primary key columns.

    Returns:
        ``rows`` (int) and ``ranges`` ({key column: (min, max)}) for key columns
        whose type supports range pruning.

    Raises:
        ValueError: two or more source rows share a key.
    """
    types = {f.name: f.dataType for f in table.schema.fields}
    ranged = [k for k in keys if isinstance(types[k], _RANGE_TYPES)]
    grouped = df.groupBy(*keys).agg(F.count(F.lit(1)).alias("_n"))
    aggs = [
        F.coalesce(F.sum("_n"), F.lit(0)).alias("_rows"),
        F.coalesce(F.max("_n"), F.lit(0)).alias("_most"),
        F.sum(F.when(F.col("_n") > 1, 1).otherwise(0)).alias("_dupes"),
    ]
    for i, k in enumerate(ranged):
        aggs += [F.min(k).alias(f"_lo{i}"), F.max(k).alias(f"_hi{i}")]
    row = grouped.agg(*aggs).collect()[0]
    if row["_most"] > 1:
        raise ValueError(
            f"table {table.name}: the merge source has {row['_dupes']} key(s) on {list(keys)} "
            f"occurring more than once (up to {row['_most']} times); keys must be unique"
        )
    return {
        "rows": int(row["_rows"]),
        "ranges": {k: (row[f"_lo{i}"], row[f"_hi{i}"]) for i, k in enumerate(ranged)},
    }


def _check_within(df: DataFrame, table: TableSpec, predicate: str) -> int:
    """Count ``df``'s rows and raise when any falls outside ``predicate`` (not true).

    Args:
        df: the new rows.
        table: the target table (for the message).
        predicate: the overwrite predicate.

    Returns:
        The number of rows in ``df``.

    Raises:
        ValueError: naming the table, the predicate and the count of violating rows.
    """
    outside = ~F.coalesce(F.expr(predicate), F.lit(False))
    row = df.agg(
        F.count(F.lit(1)).alias("rows"), F.sum(F.when(outside, 1).otherwise(0)).alias("bad")
    ).collect()[0]
    if row["bad"]:
        raise ValueError(
            f"table {table.name}: {row['bad']} row(s) of the DataFrame do not satisfy the "
            f"overwrite predicate {predicate!r}; nothing was written"
        )
    return int(row["rows"])


def _metric(metrics: dict, *names: str) -> int:
    """The first of ``names`` present in a Delta operationMetrics map, as int (else 0)."""
    for name in names:
        if metrics.get(name) is not None:
            return int(metrics[name])
    return 0


# -- delta-rs -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """One active data file of a delta-rs snapshot."""

    relative: str  # the real relative path (the log stores it percent-encoded)
    size: int
    records: int | None
    partition: dict  # typed partition values by column
    low: dict  # min statistics by column
    high: dict  # max statistics by column


class DeltaRsDmlMixin:
    """Row-level operations of :class:`~votelake.storage.delta_rs.DeltaRsStore`."""

    # -- helpers --------------------------------------------------------------------------

    def _snapshot_files(self, dt: DeltaTable) -> list[_File]:
        """List a snapshot's active files with their partition values and statistics."""
        import pyarrow as pa

        files = []
        for a in pa.table(dt.get_add_actions(flatten=False)).to_pylist():
            files.append(_File(
                relative=unquote(a["path"]),
                size=int(a["size_bytes"]),
                records=a.get("num_records"),
                partition=a.get("partition") or {},
                low=a.get("min") or {},
                high=a.get("max") or {},
            ))
        return files

    def _scan_files(self, table: TableSpec, files: list[_File]) -> DataFrame:
        """Read some of the table's files, each row tagged with its file (``FILE_COL``)."""
        from votelake.storage.delta_rs import _locate

        _, _, uri = _locate(table.uri)
        return (
            self.spark.read.schema(table.schema)
            .option("basePath", uri)
            .parquet(*[f"{uri}/{f.relative}" for f in files])
            .select(*table.columns, F.col("_metadata.file_path").alias(FILE_COL))
        )

    @staticmethod
    def _resolve(files: list[_File], counts: list[Row]) -> list[tuple[_File, int]]:
        """Match Spark's per-file counts back to the snapshot's files.

        Spark reports a file as a URI whose path is percent-encoded (and whose
        scheme and root may be spelled differently from the table's), so a file
        is found by the longest decoded suffix that is one of the relative paths.
        """
        by_relative = {f.relative: f for f in files}
        matched = []
        for row in counts:
            parts = unquote(row[FILE_COL]).split("/")
            found = None
            for depth in range(1, len(parts) + 1):
                found = by_relative.get("/".join(parts[-depth:]))
                if found is not None:
                    break
            if found is None:
                raise RuntimeError(f"scanned file {row[FILE_COL]!r} is not in the table's snapshot")
            matched.append((found, int(row["count"])))
        return matched

    def _matching_files(self, table: TableSpec, files: list[_File], predicate: str) -> list[tuple[_File, int]]:
        """Find the files holding rows where ``predicate`` is true, with those rows' counts.

        Spark prunes partitions and Parquet row groups with the predicate, so files
        that cannot match are not read.
        """
        if not files:
            return []
        counts = (
            self._scan_files(table, files).where(F.expr(predicate)).groupBy(FILE_COL).count().collect()
        )
        return self._resolve(files, counts)

    @staticmethod
    def _prune_by_key(
        files: list[_File], table: TableSpec, keys: tuple[str, ...], profile: dict, partitions: set | None
    ) -> list[_File]:
        """Drop files that cannot hold a source key: outside the source's partitions or key range."""
        kept = []
        for f in files:
            if partitions is not None and tuple(f.partition.get(c) for c in table.partition_by) not in partitions:
                continue
            outside = False
            for k, (lo, hi) in profile["ranges"].items():
                if lo is None:  # every source key is null here: nothing can match
                    outside = True
                    break
                # A missing statistic proves nothing; a string min is a prefix (still a lower bound).
                if (f.high.get(k) is not None and f.high[k] < lo) or (f.low.get(k) is not None and f.low[k] > hi):
                    outside = True
                    break
            if not outside:
                kept.append(f)
        return kept

    def _source_partitions(self, source: DataFrame, table: TableSpec, keys: tuple[str, ...]) -> set | None:
        """The source's distinct partition values, when they can prune target files.

        Only when every partition column is part of the key does a key live in one
        partition; otherwise an updated row may sit in any partition. Timestamp
        partitions are left out: Python's view of them depends on the session zone.
        """
        types = {f.name: f.dataType for f in table.schema.fields}
        if not table.partition_by or not set(table.partition_by) <= set(keys):
            return None
        if any(isinstance(types[c], (T.TimestampType, T.TimestampNTZType)) for c in table.partition_by):
            return None
        rows = source.select(*table.partition_by).distinct().limit(MAX_PRUNING_PARTITIONS + 1).collect()
        if len(rows) > MAX_PRUNING_PARTITIONS:
            return None
        return {tuple(r) for r in rows}

    @contextmanager
    def _staged(self, df: DataFrame, table: TableSpec) -> Iterator[tuple[list, int]]:
        """Write ``df`` as Parquet through a staging folder and move it into the table.

        Yields:
            The add actions and their row count; the staging folder is removed when
            the block ends (after the caller's commit, or its failure).
        """
        from votelake.storage.delta_rs import STAGING_DIR, _locate

        fs, root, uri = _locate(table.uri)
        token = uuid.uuid4().hex
        staging = f"{root}/{STAGING_DIR}/{token}"
        try:
            df.write.mode("error").partitionBy(*table.partition_by).parquet(f"{uri}/{STAGING_DIR}/{token}")
            yield self._move_into_table(fs, root, staging, table)
        finally:
            self._remove_staging(fs, staging)

    def _commit_rewrite(
        self,
        table: TableSpec,
        existing: DeltaTable,
        removed: list[_File],
        new_rows: DataFrame | None,
        operation: str,
        metadata: dict[str, str] | None,
        app_id: str | None = None,
        run_version: int | None = None,
    ) -> tuple[int | None, int, int]:
        """Write the new rows and commit one transaction removing ``removed`` and adding them.

        The commit goes straight to delta-rs rather than through ``_commit``: a
        copy-on-write commit must not be replayed on a newer snapshot, because the
        rewritten rows were derived from the files it read. delta-rs still rebases
        it over concurrent commits that do not touch those files; when another
        commit removed one of them it raises ``ConcurrentWriteError`` (nothing
        committed) and the caller re-runs the operation on the new snapshot.

        Args:
            table: the table.
            existing: the snapshot the rows were read from.
            removed: files to remove.
            new_rows: rows to add (None for none).
            operation: the logical operation, recorded in the commit metadata.
            metadata: extra commit metadata.
            app_id: the writing job's id, recorded for idempotency.
            run_version: the job run's number, with ``app_id``.

        Returns:
            The new table version, files added and rows added.
        """
        from deltalake.transaction import CommitProperties, RemoveAction, Transaction

        from votelake.storage.delta_rs import _partition_values

        now = int(time.time() * 1000)
        removes = []
        for f in removed:
            try:
                values = _partition_values(f.relative, table.partition_by)
            except ValueError:
                values = None  # not a hive-style path: the values are optional in a remove
            removes.append(RemoveAction(
                path=f.relative, data_change=True, deletion_timestamp=now, size=f.size, partition_values=values
            ))
        properties = CommitProperties(
            custom_metadata=commit_metadata(metadata, operation, app_id, run_version),
            app_transactions=[Transaction(app_id, run_version)] if app_id is not None else None,
        )

        def commit(adds: list) -> None:
            from deltalake.exceptions import CommitFailedError

            from votelake.storage.base import ConcurrentWriteError

            try:
                # mode="append" keeps every file not removed explicitly.
                existing.create_write_transaction(
                    removes + adds,
                    "append",
                    self._delta_schema(table),
                    partition_by=list(table.partition_by) or None,
                    commit_properties=properties,
                )
            except CommitFailedError as error:
                latest = self._table(table).version()
                raise ConcurrentWriteError(
                    f"table {table.name} ({table.uri}): {operation} conflicted with a concurrent commit "
                    f"that changed the files it rewrote (read version {existing.version()}, table now at "
                    f"{latest}); nothing was committed, re-run the operation: {error}",
                    table=table.name, version=latest, attempts=1,
                ) from error

        if new_rows is None:
            commit([])
            return self._table(table).version(), 0, 0
        with self._staged(new_rows, table) as (adds, rows):
            commit(adds)
        return self._table(table).version(), len(adds), rows

    # -- operations -----------------------------------------------------------------------

    def merge(
        self,
        df: DataFrame,
        table: TableSpec,
        *,
        delete_missing: bool = False,
        app_id: str | None = None,
        run_version: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """Upsert ``df`` into the table by its primary key, in one commit.

        New keys are inserted, rows whose key exists are replaced whole, and with
        ``delete_missing`` target rows whose key is not in ``df`` are deleted. A
        missing table is created (every row is an insert). Only files that hold a
        key of ``df`` are rewritten (with ``delete_missing``, every file is).

        Args:
            df: the new rows; columns and types must match the declared schema.
            table: the target table, which must declare ``primary_key``.
            delete_missing: also delete target rows whose key is absent from ``df``.
            app_id: the writing job's stable id, for idempotent commits.
            run_version: the job run's number; when the table already records
                ``app_id`` at this version or later, nothing is done.
            metadata: extra commit metadata.

        Returns:
            What was committed; ``metrics`` has ``rows_inserted``, ``rows_updated``,
            ``rows_deleted``, ``files_rewritten`` (files removed) and
            ``files_total_before``.

        Raises:
            ValueError: the table declares no primary key, or ``df`` repeats a key.
            SchemaMismatchError: ``df`` does not match the declared schema.
        """
        keys = _require_keys(table)
        _check_run_args(app_id, run_version)
        aligned = check_schema(df, table)
        existing = self._table(table) if self.exists(table) else None
        if existing is not None and app_id is not None:
            done = existing.transaction_version(app_id)
            if done is not None and done >= run_version:
                return WriteResult(table.name, existing.version(), False, 0, None)

        # The source is used by the key check, the file search and the write: cache
        # it so all three see the same rows and it is computed once.
        source = aligned.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            profile = _profile_source(source, table, keys)
            if existing is None:
                created = self.write(
                    source, table, "append", app_id=app_id, run_version=run_version,
                    operation=MERGE, metadata=metadata,
                )
                return replace(created, metrics={
                    "rows_inserted": created.rows or 0, "rows_updated": 0, "rows_deleted": 0,
                    "files_rewritten": 0, "files_total_before": 0,
                })

            files = self._snapshot_files(existing)
            source_keys = source.select(*keys)
            if profile["rows"] <= BROADCAST_KEY_ROWS:
                source_keys = F.broadcast(source_keys)

            if delete_missing:
                # Every target row is either replaced or deleted: all files go, and the
                # table's new content is exactly the source.
                removed = files
                updated = (
                    self._scan_files(table, files).join(source_keys, list(keys), how="left_semi").count()
                    if files else 0
                )
                total = sum(f.records for f in files) if all(f.records is not None for f in files) else (
                    self._scan_files(table, files).count() if files else 0
                )
                deleted = total - updated
                new_rows = source
            else:
                partitions = self._source_partitions(source, table, keys)
                candidates = self._prune_by_key(files, table, keys, profile, partitions)
                scan = self._scan_files(table, candidates) if candidates else None
                if scan is not None:
                    # Row-group statistics skip Parquet data outside the source's key range.
                    for k, (lo, hi) in profile["ranges"].items():
                        scan = scan.where(F.col(k).between(F.lit(lo), F.lit(hi)))
                counts = (
                    scan.select(*keys, FILE_COL).join(source_keys, list(keys), how="left_semi")
                    .groupBy(FILE_COL).count().collect()
                    if scan is not None else []
                )
                hits = self._resolve(candidates, counts)
                removed = [f for f, _ in hits]
                updated = sum(n for _, n in hits)
                deleted = 0
                new_rows = source
                if removed:
                    kept = self._scan_files(table, removed).drop(FILE_COL).join(
                        source_keys, list(keys), how="left_anti"
                    )
                    new_rows = kept.unionByName(source)

            version, added, rows = self._commit_rewrite(
                table, existing, removed, new_rows, MERGE, metadata, app_id, run_version
            )
        finally:
            source.unpersist()
        return WriteResult(
            table.name, version, True, added, rows,
            files_removed=len(removed),
            metrics={
                # Keys are unique in the source and (by the merge contract) the target,
                # so each updated target row used up one source row.
                "rows_inserted": profile["rows"] - updated,
                "rows_updated": updated,
                "rows_deleted": deleted,
                "files_rewritten": len(removed),
                "files_total_before": len(files),
            },
        )

    def delete(self, table: TableSpec, predicate: str, *, metadata: dict[str, str] | None = None) -> WriteResult:
        """Delete the rows where a Spark SQL predicate is true, in one commit.

        Files whose rows all match are removed without being read again; files
        with some matching rows are rewritten without them; other files stay.
        Nothing is committed when no row matches.

        Args:
            table: the table.
            predicate: a Spark SQL boolean expression over the table's columns.
            metadata: extra commit metadata.

        Returns:
            What was committed; ``metrics`` has ``rows_deleted``,
            ``files_rewritten`` (files removed) and ``files_total_before``.

        Raises:
            TableNotFoundError: no table at the declared location.
        """
        existing = self._table(table)
        files = self._snapshot_files(existing)
        hits = self._matching_files(table, files, predicate)
        deleted = sum(n for _, n in hits)
        metrics = {"rows_deleted": deleted, "files_rewritten": len(hits), "files_total_before": len(files)}
        if not hits:
            return WriteResult(table.name, existing.version(), False, 0, 0, metrics=metrics)
        partial = [f for f, n in hits if f.records is None or n < f.records]
        new_rows = None
        if partial:
            new_rows = (
                self._scan_files(table, partial).drop(FILE_COL)
                .where(~F.coalesce(F.expr(predicate), F.lit(False)))
            )
        version, added, rows = self._commit_rewrite(
            table, existing, [f for f, _ in hits], new_rows, DELETE, metadata
        )
        return WriteResult(table.name, version, True, added, rows, files_removed=len(hits), metrics=metrics)

    def overwrite_where(
        self,
        df: DataFrame,
        table: TableSpec,
        predicate: str,
        *,
        app_id: str | None = None,
        run_version: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """Atomically replace the rows where ``predicate`` is true with ``df`` (replaceWhere).

        Args:
            df: the new rows; every one must satisfy ``predicate``.
            table: the target table (created when absent).
            predicate: a Spark SQL boolean expression over the table's columns.
            app_id: the writing job's stable id, for idempotent commits.
            run_version: the job run's number; when the table already records
                ``app_id`` at this version or later, nothing is done.
            metadata: extra commit metadata.

        Returns:
            What was committed; ``metrics`` has ``rows_deleted`` (rows replaced),
            ``rows_inserted``, ``files_rewritten`` (files removed) and
            ``files_total_before``.

        Raises:
            ValueError: some rows of ``df`` do not satisfy ``predicate`` (the count
                is in the message); nothing is committed.
            SchemaMismatchError: ``df`` does not match the declared schema.
        """
        _check_run_args(app_id, run_version)
        aligned = check_schema(df, table)
        existing = self._table(table) if self.exists(table) else None
        if existing is not None and app_id is not None:
            done = existing.transaction_version(app_id)
            if done is not None and done >= run_version:
                return WriteResult(table.name, existing.version(), False, 0, None)
        incoming = _check_within(aligned, table, predicate)
        if existing is None:
            created = self.write(
                aligned, table, "append", app_id=app_id, run_version=run_version,
                operation=OVERWRITE_WHERE, metadata=metadata,
            )
            return replace(created, metrics={
                "rows_deleted": 0, "rows_inserted": created.rows or 0,
                "files_rewritten": 0, "files_total_before": 0,
            })

        files = self._snapshot_files(existing)
        hits = self._matching_files(table, files, predicate)
        partial = [f for f, n in hits if f.records is None or n < f.records]
        new_rows = aligned
        if partial:
            kept = (
                self._scan_files(table, partial).drop(FILE_COL)
                .where(~F.coalesce(F.expr(predicate), F.lit(False)))
            )
            new_rows = kept.unionByName(aligned)
        version, added, rows = self._commit_rewrite(
            table, existing, [f for f, _ in hits], new_rows, OVERWRITE_WHERE, metadata, app_id, run_version
        )
        return WriteResult(
            table.name, version, True, added, rows,
            files_removed=len(hits),
            metrics={
                "rows_deleted": sum(n for _, n in hits),
                "rows_inserted": incoming,
                "files_rewritten": len(hits),
                "files_total_before": len(files),
            },
        )


# -- delta-spark --------------------------------------------------------------------------

# Session settings Delta reads for idempotent DML and for the commit's userMetadata
# (DeltaTable's merge/delete builders take no writer options).
_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


class DeltaSparkDmlMixin:
    """Row-level operations of :class:`~votelake.storage.delta_spark.DeltaSparkStore`."""

    @contextmanager
    def _dml_conf(
        self, operation: str, metadata: dict[str, str] | None, app_id: str | None, run_version: int | None
    ) -> Iterator[None]:
        """Set the commit's userMetadata (and txn id) for one DML command, then restore the session."""
        settings = {_USER_METADATA: json.dumps(commit_metadata(metadata, operation, app_id, run_version))}
        if app_id is not None:
            settings[_TXN_APP_ID] = app_id
            settings[_TXN_VERSION] = str(run_version)
        previous = {k: self.spark.conf.get(k, None) for k in settings}
        for k, v in settings.items():
            self.spark.conf.set(k, v)
        try:
            yield
        finally:
            for k, v in previous.items():
                if v is None:
                    self.spark.conf.unset(k)
                else:
                    self.spark.conf.set(k, v)

    def _files_now(self, table: TableSpec) -> int:
        """The number of active files in the table's latest version."""
        return int(self._delta_table(table).detail().collect()[0]["numFiles"])

    def _last_commit(self, table: TableSpec, before: int | None) -> tuple[bool, int, dict]:
        """Whether a commit followed ``before``, the latest version and its operationMetrics."""
        last = self._delta_table(table).history(1).collect()[0]
        if last["version"] == before:
            return False, int(before), {}
        return True, int(last["version"]), dict(last["operationMetrics"] or {})

    def merge(
        self,
        df: DataFrame,
        table: TableSpec,
        *,
        delete_missing: bool = False,
        app_id: str | None = None,
        run_version: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """See :meth:`DeltaRsDmlMixin.merge`; runs Delta's MERGE INTO.

        A missing table is first created (version 0), then merged into.
        """
        keys = _require_keys(table)
        _check_run_args(app_id, run_version)
        aligned = check_schema(df, table)
        _profile_source(aligned, table, keys)
        self.create(table)
        before = self.version(table)
        files_before = self._files_now(table)
        condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        builder = (
            self._delta_table(table).alias("t").merge(aligned.alias("s"), condition)
            .whenMatchedUpdateAll().whenNotMatchedInsertAll()
        )
        if delete_missing:
            builder = builder.whenNotMatchedBySourceDelete()
        with self._dml_conf(MERGE, metadata, app_id, run_version):
            builder.execute()
        committed, version, m = self._last_commit(table, before)
        if not committed:
            return WriteResult(table.name, version, False, 0, None)
        return WriteResult(
            table.name, version, True, _metric(m, "numTargetFilesAdded"), _metric(m, "numOutputRows"),
            files_removed=_metric(m, "numTargetFilesRemoved"),
            metrics={
                "rows_inserted": _metric(m, "numTargetRowsInserted"),
                "rows_updated": _metric(m, "numTargetRowsUpdated"),
                "rows_deleted": _metric(m, "numTargetRowsDeleted", "numTargetRowsNotMatchedBySourceDeleted"),
                "files_rewritten": _metric(m, "numTargetFilesRemoved"),
                "files_total_before": files_before,
            },
        )

    def delete(self, table: TableSpec, predicate: str, *, metadata: dict[str, str] | None = None) -> WriteResult:
        """See :meth:`DeltaRsDmlMixin.delete`; runs Delta's DELETE."""
        dt = self._delta_table(table)
        before = self.version(table)
        files_before = self._files_now(table)
        with self._dml_conf(DELETE, metadata, None, None):
            dt.delete(predicate)
        committed, version, m = self._last_commit(table, before)
        metrics = {
            "rows_deleted": _metric(m, "numDeletedRows"),
            "files_rewritten": _metric(m, "numRemovedFiles"),
            "files_total_before": files_before,
        }
        return WriteResult(
            table.name, version, committed, _metric(m, "numAddedFiles"), _metric(m, "numCopiedRows"),
            files_removed=metrics["files_rewritten"], metrics=metrics,
        )

    def overwrite_where(
        self,
        df: DataFrame,
        table: TableSpec,
        predicate: str,
        *,
        app_id: str | None = None,
        run_version: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """See :meth:`DeltaRsDmlMixin.overwrite_where`; a Delta write with ``replaceWhere``."""
        _check_run_args(app_id, run_version)
        aligned = check_schema(df, table)
        # Checked here too (Delta would also refuse) so both backends fail alike.
        _check_within(aligned, table, predicate)
        self.create(table)
        before = self.version(table)
        files_before = self._files_now(table)
        user_metadata = commit_metadata(metadata, OVERWRITE_WHERE, app_id, run_version)
        writer = (
            aligned.write.format("delta").mode("overwrite")
            .option("replaceWhere", predicate)
            .option("userMetadata", json.dumps(user_metadata))
        )
        if app_id is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", str(run_version))
        writer.save(table.uri)
        committed, version, m = self._last_commit(table, before)
        if not committed:
            return WriteResult(table.name, version, False, 0, None)
        return WriteResult(
            table.name, version, True, _metric(m, "numFiles", "numAddedFiles"),
            _metric(m, "numOutputRows"),
            files_removed=_metric(m, "numRemovedFiles"),
            metrics={
                "rows_deleted": _metric(m, "numDeletedRows"),
                "rows_inserted": _metric(m, "numOutputRows") - _metric(m, "numCopiedRows"),
                "files_rewritten": _metric(m, "numRemovedFiles"),
                "files_total_before": files_before,
            },
        )
