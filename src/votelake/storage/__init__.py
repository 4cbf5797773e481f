"""Delta Lake storage: one interface, two implementations.

``delta-rs``: Spark writes Parquet, delta-rs commits (no Delta jars needed).
``delta-spark``: delta-spark's native reader and writer (needs its jars).
Pick one with :func:`open_store`; the backend name comes from
:func:`votelake.session.resolve_backend`.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from votelake.storage.base import (
    ConcurrentWriteError,
    DeltaStore,
    NotNullViolationError,
    SchemaMismatchError,
    TableNotFoundError,
    WriteResult,
    check_schema,
)

BACKENDS = ("delta-rs", "delta-spark")

__all__ = [
    "BACKENDS",
    "ConcurrentWriteError",
    "DeltaStore",
    "NotNullViolationError",
    "SchemaMismatchError",
    "TableNotFoundError",
    "WriteResult",
    "check_schema",
    "open_store",
]


def open_store(spark: SparkSession, backend: str) -> DeltaStore:
    """Return the Delta store for a backend.

    Args:
        spark: the job's SparkSession (built for the same backend).
        backend: ``"delta-rs"`` or ``"delta-spark"``.

    Returns:
        The store.

    Raises:
        ValueError: an unknown backend name.
    """
    # Imported lazily so that each backend's dependencies load only when used.
    if backend == "delta-rs":
        from votelake.storage.delta_rs import DeltaRsStore

        return DeltaRsStore(spark)
    if backend == "delta-spark":
        from votelake.storage.delta_spark import DeltaSparkStore

        return DeltaSparkStore(spark)
    raise ValueError(f"unknown storage backend {backend!r}; expected one of {BACKENDS}")
