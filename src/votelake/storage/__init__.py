"""Delta Lake storage: the catalog's tables through delta-spark (:class:`DeltaStore`).

``deltalake`` (delta-rs) is not used to write; it stays a Spark-free reader of
the same tables for downstream users and tests.
"""

from votelake.storage.base import (
    ConcurrentWriteError,
    ConstraintViolationError,
    NotNullViolationError,
    RetentionTooShortError,
    SchemaMismatchError,
    TableNotFoundError,
    TimeTravelError,
    WriteResult,
    check_schema,
)
from votelake.storage.retry import RetryPolicy
from votelake.storage.store import DeltaStore

__all__ = [
    "ConcurrentWriteError",
    "ConstraintViolationError",
    "DeltaStore",
    "NotNullViolationError",
    "RetentionTooShortError",
    "RetryPolicy",
    "SchemaMismatchError",
    "TableNotFoundError",
    "TimeTravelError",
    "WriteResult",
    "check_schema",
]
