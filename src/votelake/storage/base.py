"""The storage contract every Delta backend implements, and the checks they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from votelake.catalog import TableSpec

WriteMode = Literal["append", "overwrite"]

# Key under which the caller's logical operation is recorded in a commit's metadata;
# neither Delta engine lets a writer set the commit's own ``operation`` field.
OPERATION_KEY = "votelake.operation"
# Commit metadata naming the job run that wrote a commit (see ``DeltaStore.committed_run``).
APP_ID_KEY = "votelake.app_id"
RUN_VERSION_KEY = "votelake.run_version"


class SchemaMismatchError(ValueError):
    """A DataFrame's columns or types differ from the table's declared schema."""


class NotNullViolationError(ValueError):
    """Rows hold nulls in a column the catalog declares ``not null``."""


class TableNotFoundError(FileNotFoundError):
    """No Delta table exists at the declared location."""


class ConcurrentWriteError(RuntimeError):
    """A commit kept conflicting with other writers' commits to the same table.

    Nothing was committed by the failed write; the data files it had already moved
    into the table are unreferenced and Delta's vacuum removes them.

    Attributes:
        table: the table name.
        version: the table's latest version when the last attempt failed (the
            version written by the conflicting writer).
        attempts: commit attempts made.
    """

    def __init__(self, message: str, *, table: str, version: int | None, attempts: int):
        super().__init__(message)
        self.table = table
        self.version = version
        self.attempts = attempts

    def __reduce__(self):
        # The keyword-only arguments would be lost by the default exception pickling.
        return (self._rebuild, (str(self), self.table, self.version, self.attempts))

    @classmethod
    def _rebuild(cls, message: str, table: str, version: int | None, attempts: int) -> ConcurrentWriteError:
        """Rebuild a pickled error."""
        return cls(message, table=table, version=version, attempts=attempts)


@dataclass(frozen=True)
class WriteResult:
    """What one ``write`` did.

    Attributes:
        table: the table name.
        version: the table version after the write (the existing one when nothing
            was committed).
        committed: False when the write was skipped because the same job run had
            already committed (idempotent ``app_id``/``run_version``).
        files: data files added by the commit.
        rows: rows added by the commit, when known.
        files_removed: data files the commit removed (overwrite, merge, delete).
        metrics: operation-specific counts (rows inserted/updated/deleted, ...).
    """

    table: str
    version: int | None
    committed: bool
    files: int
    rows: int | None
    files_removed: int = 0
    metrics: dict = field(default_factory=dict)


def commit_metadata(metadata: dict[str, str] | None, operation: str, app_id: str | None = None,
                    run_version: int | None = None) -> dict[str, str]:
    """The metadata every commit records: the caller's, the logical operation and the writing run.

    Args:
        metadata: the caller's commit metadata.
        operation: the logical operation.
        app_id: the writing job's id (recorded with ``run_version`` when given).
        run_version: the job run's number.

    Returns:
        String keys and values.
    """
    out = {str(k): str(v) for k, v in (metadata or {}).items()}
    out[OPERATION_KEY] = operation
    if app_id is not None:
        out.update({APP_ID_KEY: app_id, RUN_VERSION_KEY: str(run_version)})
    return out


def _without_nullability(dtype: T.DataType) -> T.DataType:
    """Return ``dtype`` with every nested nullability flag set to True."""
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(_without_nullability(dtype.elementType), True)
    if isinstance(dtype, T.MapType):
        return T.MapType(_without_nullability(dtype.keyType), _without_nullability(dtype.valueType), True)
    if isinstance(dtype, T.StructType):
        return T.StructType([T.StructField(f.name, _without_nullability(f.dataType), True) for f in dtype.fields])
    return dtype


def check_schema(df: DataFrame, table: TableSpec) -> DataFrame:
    """Check a DataFrame against the table's declared schema and put it in table order.

    Column order may differ and nullability is ignored (Spark marks most computed
    columns nullable); names and data types must match exactly.

    Args:
        df: the rows to write.
        table: the target table; its schema is the contract.

    Returns:
        ``df`` with its columns selected in the table's declared order.

    Raises:
        SchemaMismatchError: naming the table and every missing, extra or
            mistyped column (with both types).
    """
    actual = {f.name: f.dataType for f in df.schema.fields}
    declared = {f.name: f.dataType for f in table.schema.fields}
    missing = [c for c in declared if c not in actual]
    extra = [c for c in actual if c not in declared]
    mistyped = [
        f"{c} (table: {declared[c].simpleString()}, dataframe: {actual[c].simpleString()})"
        for c in declared
        if c in actual and _without_nullability(declared[c]) != _without_nullability(actual[c])
    ]
    if len(actual) != len(df.columns):
        dupes = sorted({c for c in df.columns if df.columns.count(c) > 1})
        raise SchemaMismatchError(f"table {table.name}: DataFrame has duplicate columns {dupes}")
    if missing or extra or mistyped:
        problems = []
        if missing:
            problems.append(f"missing columns {missing}")
        if extra:
            problems.append(f"extra columns {extra}")
        if mistyped:
            problems.append(f"mistyped columns [{', '.join(mistyped)}]")
        raise SchemaMismatchError(
            f"DataFrame does not match table {table.name} ({table.uri}): " + "; ".join(problems)
        )
    return df.select(*table.columns)


class DeltaStore(ABC):
    """Reads and writes the catalog's Delta tables through one Delta implementation.

    A store receives the job's SparkSession and never builds one.
    """

    backend: str

    @abstractmethod
    def exists(self, table: TableSpec) -> bool:
        """Tell whether a Delta table exists at the table's location.

        Args:
            table: the table.

        Returns:
            True when a Delta log is present.
        """

    @abstractmethod
    def create(self, table: TableSpec) -> None:
        """Create the table empty, with the declared schema, partitioning, description
        and properties. Does nothing when it already exists.

        Args:
            table: the table.
        """

    @abstractmethod
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
        """Append to or overwrite the table in one atomic commit, creating it if absent.

        Args:
            df: rows whose columns and types match the declared schema (any order).
            table: the target table.
            mode: ``append`` adds rows; ``overwrite`` replaces all rows (earlier
                versions stay readable by time travel).
            app_id: the writing job's stable id, for idempotent commits.
            run_version: the job run's monotonically increasing number; when the table
                already records ``app_id`` at this version or later, nothing is written.
            operation: the logical operation, recorded in the commit metadata.
            metadata: extra commit metadata.

        Returns:
            What was committed.

        Raises:
            SchemaMismatchError: the DataFrame does not match the declared schema.
        """

    @abstractmethod
    def read(self, table: TableSpec, version: int | None = None) -> DataFrame:
        """Read the table, at its latest version or an earlier one.

        Args:
            table: the table.
            version: a committed version for time travel; None for the latest.

        Returns:
            The rows, with the declared columns in declared order.

        Raises:
            TableNotFoundError: no table at the declared location.
        """

    @abstractmethod
    def version(self, table: TableSpec) -> int | None:
        """Return the latest committed version.

        Args:
            table: the table.

        Returns:
            The version, or None when the table does not exist.
        """

    def committed_run(self, table: TableSpec, app_id: str) -> int | None:
        """The latest run version ``app_id`` committed to the table.

        This default reads the app id and run version every commit records
        (:func:`commit_metadata`), over the history the table keeps.

        Args:
            table: the table.
            app_id: the writing job's id.

        Returns:
            The run version, or None when the table is absent or no kept commit is by ``app_id``.
        """
        if not self.exists(table):
            return None
        runs = [int(c["metadata"][RUN_VERSION_KEY]) for c in self.history(table)
                if c["metadata"].get(APP_ID_KEY) == app_id and c["metadata"].get(RUN_VERSION_KEY, "").isdigit()]
        return max(runs, default=None)

    @abstractmethod
    def history(self, table: TableSpec) -> list[dict]:
        """List the table's commits, newest first.

        Args:
            table: the table.

        Returns:
            One dict per commit with ``version`` (int), ``timestamp`` (aware UTC
            datetime), ``operation`` (the caller's operation when recorded, else the
            engine's), ``engine_operation``, ``parameters`` (dict) and ``metadata``
            (the caller's commit metadata, dict of str).

        Raises:
            TableNotFoundError: no table at the declared location.
        """
