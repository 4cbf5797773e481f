"""What the Delta store returns and raises, and the schema check before every write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from votelake.catalog import TableSpec

WriteMode = Literal["append", "overwrite"]

# Key under which the caller's logical operation is recorded in a commit's metadata;
# Delta does not let a writer set the commit's own ``operation`` field.
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


class ConstraintViolationError(ValueError):
    """Rows break one of the table's CHECK constraints."""


class RetentionTooShortError(ValueError):
    """A vacuum retention below the table's ``delta.deletedFileRetentionDuration`` (its time-travel window)."""


class TimeTravelError(ValueError):
    """A time-travel timestamp precedes the table's earliest available commit."""


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


def without_nullability(dtype: T.DataType) -> T.DataType:
    """Return ``dtype`` with every nested nullability flag set to True."""
    if isinstance(dtype, T.ArrayType):
        return T.ArrayType(without_nullability(dtype.elementType), True)
    if isinstance(dtype, T.MapType):
        return T.MapType(without_nullability(dtype.keyType), without_nullability(dtype.valueType), True)
    if isinstance(dtype, T.StructType):
        return T.StructType([T.StructField(f.name, without_nullability(f.dataType), True) for f in dtype.fields])
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
        if c in actual and without_nullability(declared[c]) != without_nullability(actual[c])
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
