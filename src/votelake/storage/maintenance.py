"""Table maintenance and time travel by timestamp, for both backends:
compaction (optimize, z-order), vacuum with a retention guard, CHECK constraints
and opt-in schema evolution (adding nullable columns).

On the delta-rs backend Spark writes the data files and delta-rs only commits
them, so delta-rs never sees the rows and cannot enforce CHECK constraints:
:func:`check_constraints` does it in Spark before the commit.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from votelake.catalog import TableSpec
from votelake.storage.base import OPERATION_KEY, SchemaMismatchError, _without_nullability

if TYPE_CHECKING:
    from votelake.storage.base import DeltaStore

# Delta's default for ``delta.deletedFileRetentionDuration`` ("interval 1 week").
DEFAULT_RETENTION_HOURS = 168.0
RETENTION_KEY = "delta.deletedFileRetentionDuration"
CONSTRAINT_PREFIX = "delta.constraints."

_HOURS_PER_UNIT = {
    "nanosecond": 1 / 3.6e12,
    "microsecond": 1 / 3.6e9,
    "millisecond": 1 / 3.6e6,
    "second": 1 / 3600,
    "minute": 1 / 60,
    "hour": 1.0,
    "day": 24.0,
    "week": 168.0,
}
_INTERVAL_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+?)s?\b")
_CONSTRAINT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConstraintViolationError(ValueError):
    """Rows to be written break one or more of the table's CHECK constraints."""


class RetentionTooShortError(ValueError):
    """A vacuum retention below the table's ``delta.deletedFileRetentionDuration``."""


class TimeTravelError(ValueError):
    """A time-travel timestamp precedes the table's earliest available commit."""


# -- shared helpers -----------------------------------------------------------------


def _parse_interval_hours(interval: str) -> float:
    """Convert a Delta interval property (``interval 7 days``, ``1 week``) to hours.

    Args:
        interval: the property value.

    Returns:
        The duration in hours.

    Raises:
        ValueError: the value is not an interval this parser understands.
    """
    text = interval.strip().lower()
    if text.startswith("interval"):
        text = text[len("interval"):]
    parts = _INTERVAL_PART.findall(text)
    if not parts or _INTERVAL_PART.sub("", text).strip():
        raise ValueError(f"cannot parse Delta interval {interval!r}")
    hours = 0.0
    for amount, unit in parts:
        if unit not in _HOURS_PER_UNIT:
            raise ValueError(f"cannot parse Delta interval {interval!r}: unknown unit {unit!r}")
        hours += float(amount) * _HOURS_PER_UNIT[unit]
    return hours


def _retention_guard(table: TableSpec, configuration: dict[str, str], retention_hours: float, force: bool) -> None:
    """Refuse a vacuum retention shorter than the table's configured one unless forced.

    Args:
        table: the table (for the message).
        configuration: the table's Delta configuration.
        retention_hours: the requested retention.
        force: skip the check.

    Raises:
        ValueError: a negative retention.
        RetentionTooShortError: the retention is below the table's minimum and
            ``force`` is False.
    """
    if retention_hours < 0:
        raise ValueError(f"table {table.name}: vacuum retention must be >= 0 hours, got {retention_hours}")
    configured = configuration.get(RETENTION_KEY)
    minimum = _parse_interval_hours(configured) if configured else DEFAULT_RETENTION_HOURS
    if retention_hours < minimum and not force:
        raise RetentionTooShortError(
            f"table {table.name}: vacuum retention of {retention_hours:g} h is below the table's "
            f"{RETENTION_KEY} of {minimum:g} h. Files removed from the table more recently than "
            "that are still needed to time travel to those versions and by readers and writers "
            "running concurrently (a writer's files are in place before it commits); deleting "
            "them breaks both. Pass force=True only when no job uses the table and old "
            "versions may become unreadable."
        )


def _as_utc(timestamp: datetime | str) -> datetime:
    """Turn a datetime or ISO 8601 string into an aware UTC datetime (naive means UTC)."""
    if isinstance(timestamp, str):
        timestamp = datetime.fromisoformat(timestamp.strip())
    if not isinstance(timestamp, datetime):
        raise TypeError(f"timestamp must be a datetime or an ISO 8601 string, got {type(timestamp).__name__}")
    if timestamp.tzinfo is None:
        # Same convention as delta-rs and the sessions we build (session time zone UTC).
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    return timestamp.astimezone(timezone.utc)


def _version_as_of(store: DeltaStore, table: TableSpec, timestamp: datetime | str) -> int:
    """Find the latest version committed at or before ``timestamp``.

    Resolved from the store's history so both backends agree: delta-rs silently
    returns the first version for an earlier timestamp, and delta-spark's
    ``timestampAsOf`` rejects one after the latest commit.

    Args:
        store: the store.
        table: the table.
        timestamp: the point in time.

    Returns:
        The version.

    Raises:
        TimeTravelError: the timestamp precedes the earliest available commit.
        TableNotFoundError: no table at the declared location.
    """
    when = _as_utc(timestamp)
    commits = store.history(table)
    eligible = [c["version"] for c in commits if c["timestamp"] <= when]
    if not eligible:
        earliest = min(commits, key=lambda c: c["version"])
        raise TimeTravelError(
            f"table {table.name}: no version committed at or before {when.isoformat()}; "
            f"the earliest available commit is version {earliest['version']} "
            f"at {earliest['timestamp'].isoformat()}"
        )
    return max(eligible)


def _check_new_columns(table: TableSpec, existing: T.StructType, new_columns: T.StructType) -> list[T.StructField]:
    """Validate columns to add and return those the table does not have yet.

    Args:
        table: the table (for messages).
        existing: the table's current schema.
        new_columns: the columns to add.

    Returns:
        The fields still to add (already present, identically typed ones are skipped
        so that evolving twice is harmless).

    Raises:
        ValueError: a column is not nullable (existing rows would break it).
        SchemaMismatchError: a column already exists with another type.
    """
    not_nullable = [f.name for f in new_columns.fields if not f.nullable]
    if not_nullable:
        raise ValueError(
            f"table {table.name}: cannot add non-nullable column(s) {not_nullable}; "
            "existing rows have no value for them. Add them nullable."
        )
    current = {f.name.lower(): f for f in existing.fields}
    to_add, clashes = [], []
    for field in new_columns.fields:
        old = current.get(field.name.lower())
        if old is None:
            to_add.append(field)
        elif _without_nullability(old.dataType) != _without_nullability(field.dataType):
            clashes.append(
                f"{field.name} (table: {old.dataType.simpleString()}, new: {field.dataType.simpleString()})"
            )
    if clashes:
        raise SchemaMismatchError(f"table {table.name}: columns already exist with another type: {clashes}")
    return to_add


def _quote(name: str) -> str:
    """Quote an identifier for Spark SQL."""
    return "`" + name.replace("`", "``") + "`"


def _datafusion_to_spark_sql(expression: str) -> str:
    """Rewrite DataFusion SQL identifiers for Spark.

    delta-rs stores constraint expressions re-rendered by DataFusion, which quotes
    identifiers with double quotes (``"first name" != 'x'``); Spark would read
    those as string literals and silently check the wrong thing.

    Args:
        expression: the expression as delta-rs stored it.

    Returns:
        The expression with double-quoted identifiers in backticks.
    """
    out, i = [], 0
    while i < len(expression):
        char = expression[i]
        if char in "'\"":
            # Scan to the closing quote; a doubled quote is an escaped one.
            j = i + 1
            while j < len(expression):
                if expression[j] == char:
                    if j + 1 < len(expression) and expression[j + 1] == char:
                        j += 2
                        continue
                    break
                j += 1
            body = expression[i + 1:j]
            if char == "'":
                out.append(expression[i:j + 1])
            else:
                out.append(_quote(body.replace('""', '"')))
            i = j + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


def table_constraints(store: DeltaStore, table: TableSpec) -> dict[str, str]:
    """Read a table's CHECK constraints from its Delta configuration.

    Args:
        store: the store the table is used through.
        table: the table.

    Returns:
        Constraint name to Spark SQL expression (``delta.constraints.<name>``
        keys); empty when the table has none or does not exist. On the delta-rs
        backend, expressions are translated from delta-rs's SQL dialect to Spark's.
    """
    if not store.exists(table):
        return {}
    if store.backend == "delta-rs":
        configuration = store._table(table).metadata().configuration
    else:
        detail = store.spark.sql(f"DESCRIBE DETAIL delta.{_quote(table.uri)}").collect()[0]
        configuration = dict(detail["properties"] or {})
    constraints = {
        key[len(CONSTRAINT_PREFIX):]: value
        for key, value in configuration.items()
        if key.startswith(CONSTRAINT_PREFIX)
    }
    if store.backend == "delta-rs":
        constraints = {name: _datafusion_to_spark_sql(expr) for name, expr in constraints.items()}
    return constraints


def check_constraints(df: DataFrame, constraints: dict[str, str], table_name: str) -> None:
    """Check rows against CHECK constraints in one Spark aggregation.

    As in Delta, a row passes only when the expression is true: a null result
    (e.g. ``age > 0`` with a null age) is a violation.

    Args:
        df: the rows about to be written.
        constraints: constraint name to Spark SQL boolean expression.
        table_name: the table, for the message.

    Raises:
        ConstraintViolationError: naming every violated constraint, its
            expression and the number of violating rows.
    """
    if not constraints:
        return  # no Spark job for tables without constraints
    names = list(constraints)
    counts = df.agg(*[
        F.sum(F.when(F.coalesce(F.expr(f"({constraints[name]})"), F.lit(False)), 0).otherwise(1)).alias(f"c{i}")
        for i, name in enumerate(names)
    ]).collect()[0]
    violated = [(name, int(counts[i] or 0)) for i, name in enumerate(names) if counts[i]]
    if violated:
        details = "; ".join(f"{n} rows violate {name} ({constraints[name]})" for name, n in violated)
        raise ConstraintViolationError(f"table {table_name}: CHECK constraint violated: {details}")


def _check_constraint_name(table: TableSpec, name: str) -> None:
    """Refuse constraint names that would need quoting (both engines store them as keys)."""
    if not _CONSTRAINT_NAME.match(name):
        raise ValueError(f"table {table.name}: constraint name {name!r} must be a plain identifier")


def _optimize_result(version_before: int | None, version_after: int | None, added: int, removed: int, raw: dict) -> dict:
    """Shape optimize metrics the same way for both backends."""
    return {
        "files_added": int(added),
        "files_removed": int(removed),
        "version_before": version_before,
        "version": version_after,
        "engine_metrics": raw,
    }


# -- delta-rs ---------------------------------------------------------------------------


class _TimeTravel:
    """Time travel by timestamp, the same on both backends (uses ``self.read``)."""

    def read_as_of(self, table: TableSpec, timestamp: datetime | str) -> DataFrame:
        """Read the table as it was at a point in time.

        The version is resolved from the table history on both backends:
        delta-rs would silently return version 0 for a timestamp before the
        first commit, and delta-spark's ``timestampAsOf`` rejects one after the last.

        Args:
            table: the table.
            timestamp: an aware datetime, a naive one (taken as UTC) or an ISO 8601
                string.

        Returns:
            The rows of the latest version committed at or before ``timestamp``.

        Raises:
            TimeTravelError: the timestamp precedes the earliest available commit.
            TableNotFoundError: no table at the declared location.
        """
        return self.read(table, version=_version_as_of(self, table, timestamp))


class DeltaRsMaintenanceMixin(_TimeTravel):
    """Maintenance operations of :class:`~votelake.storage.delta_rs.DeltaRsStore`."""

    def optimize(
        self, table: TableSpec, *, zorder_by: Sequence[str] = (), target_file_mb: int | None = None
    ) -> dict:
        """Compact small files (and z-order them when asked) in one commit.

        delta-rs rewrites the files with its own Parquet writer; rows are unchanged.

        Args:
            table: the table.
            zorder_by: non-partition columns to cluster by; empty for plain compaction.
            target_file_mb: the target file size; None for delta-rs's default.

        Returns:
            ``files_added``, ``files_removed``, ``version_before``, ``version`` (equal
            when there was nothing to compact) and ``engine_metrics``.

        Raises:
            TableNotFoundError: no table at the declared location.
            ValueError: a z-order column is unknown or a partition column.
        """
        from deltalake.transaction import CommitProperties

        dt = self._table(table)
        before = dt.version()
        target = target_file_mb * 1024 * 1024 if target_file_mb else None
        properties = CommitProperties(custom_metadata={OPERATION_KEY: "OPTIMIZE"})
        if zorder_by:
            _check_zorder_columns(table, zorder_by)
            raw = dt.optimize.z_order(list(zorder_by), target_size=target, commit_properties=properties)
        else:
            raw = dt.optimize.compact(target_size=target, commit_properties=properties)
        return _optimize_result(
            before, self._table(table).version(), raw["numFilesAdded"], raw["numFilesRemoved"], raw
        )

    def vacuum(
        self, table: TableSpec, *, retention_hours: float = 168, dry_run: bool = True, force: bool = False
    ) -> list[str]:
        """Delete files no version within the retention window needs.

        Covers files removed by commits older than the retention, data files no
        commit ever added (a writer killed between moving its files in and
        committing) and staging folders under ``_staging/`` left by killed writers;
        files and folders younger than the retention are kept, since they may
        belong to a write still in progress.

        Args:
            table: the table.
            retention_hours: keep what the last this-many hours need (rounded up to
                whole hours for delta-rs's vacuum).
            dry_run: only list what would be deleted.
            force: allow a retention below the table's ``delta.deletedFileRetentionDuration``.

        Returns:
            Paths relative to the table location, deleted or (dry run) to delete.

        Raises:
            RetentionTooShortError: retention below the table's minimum without ``force``.
            TableNotFoundError: no table at the declared location.
        """
        from deltalake.transaction import CommitProperties

        dt = self._table(table)
        _retention_guard(table, dt.metadata().configuration, retention_hours, force)
        # full=True: the default "lite" mode only looks at files the log removed,
        # never at files no commit added.
        removed = dt.vacuum(
            retention_hours=math.ceil(retention_hours),
            dry_run=dry_run,
            enforce_retention_duration=False,  # checked above, with a clearer message
            full=True,
            commit_properties=CommitProperties(custom_metadata={OPERATION_KEY: "VACUUM"}),
        )
        return sorted(removed) + self._vacuum_staging(table, retention_hours, dry_run)

    def _vacuum_staging(self, table: TableSpec, retention_hours: float, dry_run: bool) -> list[str]:
        """Delete staging folders whose newest file is older than the retention.

        Delta's vacuum skips folders starting with ``_``, so it never sees these.

        Args:
            table: the table.
            retention_hours: the retention.
            dry_run: only list.

        Returns:
            Files (relative to the table) deleted or to delete.
        """
        import pyarrow.fs as pafs

        from votelake.storage.delta_rs import STAGING_DIR, _locate

        fs, root, _ = _locate(table.uri)
        parent = f"{root}/{STAGING_DIR}"
        cutoff = time.time() - retention_hours * 3600
        removed: list[str] = []
        for entry in fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True)):
            if entry.type == pafs.FileType.Directory:
                inside = [
                    i for i in fs.get_file_info(pafs.FileSelector(entry.path, recursive=True))
                    if i.type == pafs.FileType.File
                ]
            else:
                inside = [entry]
            times = [i.mtime.timestamp() for i in inside if i.mtime is not None]
            if not times and entry.mtime is not None:
                times = [entry.mtime.timestamp()]
            if times and max(times) > cutoff:
                continue  # possibly a write still running
            removed.extend(i.path[len(root) + 1:] for i in inside)
            if not dry_run:
                if entry.type == pafs.FileType.Directory:
                    fs.delete_dir(entry.path)
                else:
                    fs.delete_file(entry.path)
        if not dry_run and not fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True)):
            try:
                fs.delete_dir(parent)
            except OSError:
                pass  # absent, or a writer created a staging folder meanwhile
        return sorted(removed)

    def add_constraint(self, table: TableSpec, name: str, expression: str) -> None:
        """Add a CHECK constraint; every existing row must already satisfy it.

        delta-rs validates the existing rows; later writes through this store are
        checked with :func:`check_constraints`.

        Args:
            table: the table.
            name: the constraint name (a plain identifier).
            expression: a SQL boolean expression over the table's columns.

        Raises:
            ValueError: a bad name, an expression delta-rs cannot parse, or
                existing rows that violate it (delta-rs's message).
            TableNotFoundError: no table at the declared location.
        """
        from deltalake.exceptions import DeltaError

        _check_constraint_name(table, name)
        try:
            self._table(table).alter.add_constraint({name: expression})
        except DeltaError as exc:
            raise ValueError(f"table {table.name}: cannot add constraint {name} ({expression}): {exc}") from exc

    def evolve_schema(self, table: TableSpec, new_columns: T.StructType) -> None:
        """Add nullable columns to the table's schema (existing rows read them as null).

        Args:
            table: the table.
            new_columns: the columns to add; ones already present with the same
                type are skipped.

        Raises:
            ValueError: a column is not nullable.
            SchemaMismatchError: a column already exists with another type.
            TableNotFoundError: no table at the declared location.
        """
        from deltalake import Schema as DeltaSchema

        from votelake.storage.arrow_schema import to_arrow_schema

        dt = self._table(table)
        existing = T.StructType.fromJson(json.loads(dt.schema().to_json()))
        to_add = _check_new_columns(table, existing, new_columns)
        if to_add:
            dt.alter.add_columns(DeltaSchema.from_arrow(to_arrow_schema(T.StructType(to_add))).fields)


def _check_zorder_columns(table: TableSpec, columns: Sequence[str]) -> None:
    """Refuse z-order columns that are unknown or partition columns (neither engine can use them)."""
    unknown = [c for c in columns if c not in table.columns]
    partition = [c for c in columns if c in table.partition_by]
    if unknown or partition:
        raise ValueError(
            f"table {table.name}: cannot z-order by unknown columns {unknown} "
            f"or partition columns {partition}"
        )


# -- delta-spark ------------------------------------------------------------------------


class DeltaSparkMaintenanceMixin(_TimeTravel):
    """Maintenance operations of :class:`~votelake.storage.delta_spark.DeltaSparkStore`."""

    def _sql_name(self, table: TableSpec) -> str:
        """The table as a path identifier in Delta SQL."""
        return f"delta.{_quote(table.uri)}"

    def optimize(
        self, table: TableSpec, *, zorder_by: Sequence[str] = (), target_file_mb: int | None = None
    ) -> dict:
        """Compact small files (and z-order them when asked) in one commit.

        Args:
            table: the table.
            zorder_by: non-partition columns to cluster by; empty for plain compaction.
            target_file_mb: the maximum output file size; None for Delta's default.

        Returns:
            ``files_added``, ``files_removed``, ``version_before``, ``version`` and
            ``engine_metrics``.

        Raises:
            TableNotFoundError: no table at the declared location.
            ValueError: a z-order column is unknown or a partition column.
        """
        if zorder_by:
            _check_zorder_columns(table, zorder_by)
        dt = self._delta_table(table)
        before = self.version(table)
        key = "spark.databricks.delta.optimize.maxFileSize"
        previous = self.spark.conf.get(key, None)
        if target_file_mb:
            # Delta reads the target size only from the session configuration.
            self.spark.conf.set(key, str(target_file_mb * 1024 * 1024))
        try:
            builder = dt.optimize()
            result = builder.executeZOrderBy(*zorder_by) if zorder_by else builder.executeCompaction()
            rows = result.collect()
        finally:
            if target_file_mb:
                if previous is None:
                    self.spark.conf.unset(key)
                else:
                    self.spark.conf.set(key, previous)
        raw = rows[0]["metrics"].asDict(recursive=True) if rows and rows[0]["metrics"] else {}
        return _optimize_result(
            before, self.version(table), raw.get("numFilesAdded", 0), raw.get("numFilesRemoved", 0), raw
        )

    def vacuum(
        self, table: TableSpec, *, retention_hours: float = 168, dry_run: bool = True, force: bool = False
    ) -> list[str]:
        """Delete files no version within the retention window needs.

        Delta's vacuum covers files removed by old commits and files no commit
        added; both only when older than the retention.

        Args:
            table: the table.
            retention_hours: keep what the last this-many hours need.
            dry_run: only list what would be deleted.
            force: allow a retention below the table's ``delta.deletedFileRetentionDuration``.

        Returns:
            Paths relative to the table location, deleted or (dry run) to delete.

        Raises:
            RetentionTooShortError: retention below the table's minimum without ``force``.
            TableNotFoundError: no table at the declared location.
        """
        if not self.exists(table):
            from votelake.storage.base import TableNotFoundError

            raise TableNotFoundError(f"table {table.name}: no Delta table at {table.uri}")
        detail = self.spark.sql(f"DESCRIBE DETAIL {self._sql_name(table)}").collect()[0]
        _retention_guard(table, dict(detail["properties"] or {}), retention_hours, force)
        hours = f"{retention_hours:.6f}".rstrip("0").rstrip(".")
        statement = f"VACUUM {self._sql_name(table)} RETAIN {hours} HOURS"
        key = "spark.databricks.delta.retentionDurationCheck.enabled"
        previous = self.spark.conf.get(key, None)
        # Checked above with a clearer message; Delta's own check would refuse a forced run.
        self.spark.conf.set(key, "false")
        try:
            # Only a dry run lists paths; the real run reports just the table location.
            listed = [row["path"] for row in self.spark.sql(statement + " DRY RUN").collect()]
            if not dry_run:
                self.spark.sql(statement).collect()
        finally:
            if previous is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, previous)
        location = str(detail["location"]).rstrip("/")
        return sorted(_relative_to(p, location) for p in listed)

    def add_constraint(self, table: TableSpec, name: str, expression: str) -> None:
        """Add a CHECK constraint; every existing row must already satisfy it.

        Delta enforces it on every later write.

        Args:
            table: the table.
            name: the constraint name (a plain identifier).
            expression: a Spark SQL boolean expression over the table's columns.

        Raises:
            ValueError: a bad name.
            TableNotFoundError: no table at the declared location.
        """
        _check_constraint_name(table, name)
        self._delta_table(table)  # a clear error when absent
        self.spark.sql(f"ALTER TABLE {self._sql_name(table)} ADD CONSTRAINT {name} CHECK ({expression})")

    def evolve_schema(self, table: TableSpec, new_columns: T.StructType) -> None:
        """Add nullable columns to the table's schema (existing rows read them as null).

        Args:
            table: the table.
            new_columns: the columns to add; ones already present with the same
                type are skipped.

        Raises:
            ValueError: a column is not nullable.
            SchemaMismatchError: a column already exists with another type.
            TableNotFoundError: no table at the declared location.
        """
        existing = self._delta_table(table).toDF().schema
        to_add = _check_new_columns(table, existing, new_columns)
        if to_add:
            columns = ", ".join(f"{_quote(f.name)} {f.dataType.simpleString()}" for f in to_add)
            self.spark.sql(f"ALTER TABLE {self._sql_name(table)} ADD COLUMNS ({columns})")


def _relative_to(path: str, location: str) -> str:
    """Express a vacuum path relative to the table location (schemes may differ: ``file:``)."""
    def strip_scheme(p: str) -> str:
        return re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(//)?", "", p).lstrip("/")

    bare, base = strip_scheme(path), strip_scheme(location)
    return bare[len(base) + 1:] if bare.startswith(base + "/") else path
