"""Delta tables through delta-spark's native APIs (needs the delta-spark jars).

The session must have been built with the ``delta-spark`` backend (Delta's SQL
extension and catalog). Unlike the delta-rs backend, writing to a table that
does not exist yet takes two commits: ``create`` (version 0, schema from the
catalog) and then the write.
"""

from __future__ import annotations

import json
from datetime import timezone

from pyspark.sql import DataFrame, SparkSession

from votelake.catalog import TableSpec
from votelake.storage.dml import DeltaSparkDmlMixin
from votelake.storage.maintenance import DeltaSparkMaintenanceMixin
from votelake.storage.base import (
    OPERATION_KEY,
    DeltaStore,
    TableNotFoundError,
    WriteMode,
    WriteResult,
    check_schema,
    commit_metadata,
)


class DeltaSparkStore(DeltaSparkDmlMixin, DeltaSparkMaintenanceMixin, DeltaStore):
    """Delta tables written and read by delta-spark.

    Args:
        spark: the job's SparkSession, built with the delta-spark backend.
    """

    backend = "delta-spark"

    def __init__(self, spark: SparkSession):
        self.spark = spark

    def _delta_table(self, table: TableSpec):
        """Open the table with delta-spark, raising a clear error when it does not exist."""
        from delta.tables import DeltaTable

        if not self.exists(table):
            raise TableNotFoundError(f"table {table.name}: no Delta table at {table.uri}")
        return DeltaTable.forPath(self.spark, table.uri)

    def exists(self, table: TableSpec) -> bool:
        """See :meth:`DeltaStore.exists`."""
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(self.spark, table.uri)

    def create(self, table: TableSpec) -> None:
        """See :meth:`DeltaStore.create`."""
        from delta.tables import DeltaTable

        builder = DeltaTable.createIfNotExists(self.spark).location(table.uri).addColumns(table.schema)
        if table.partition_by:
            builder = builder.partitionedBy(*table.partition_by)
        if table.description:
            builder = builder.comment(table.description)
        for key, value in table.properties.items():
            builder = builder.property(key, value)
        builder.execute()

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

        Idempotency uses Delta's ``txnAppId``/``txnVersion`` writer options: Delta
        itself skips the write when the table already records that app at that
        version or later.
        """
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode must be 'append' or 'overwrite', got {mode!r}")
        if (app_id is None) != (run_version is None):
            raise ValueError("app_id and run_version must be given together")
        aligned = check_schema(df, table)
        self.create(table)
        before = self.version(table)
        # delta-spark only lets a writer attach a string to the commit: userMetadata.
        user_metadata = commit_metadata(metadata, operation, app_id, run_version)
        writer = aligned.write.format("delta").mode(mode).option("userMetadata", json.dumps(user_metadata))
        if app_id is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", str(run_version))
        writer.save(table.uri)
        # A skipped idempotent write leaves the version unchanged.
        last = self._delta_table(table).history(1).collect()[0]
        if last["version"] == before:
            return WriteResult(table.name, before, False, 0, None)
        metrics = last["operationMetrics"] or {}
        rows = metrics.get("numOutputRows")
        return WriteResult(
            table.name, last["version"], True, int(metrics.get("numFiles", 0)), int(rows) if rows is not None else None
        )

    def read(self, table: TableSpec, version: int | None = None) -> DataFrame:
        """See :meth:`DeltaStore.read`."""
        if not self.exists(table):
            raise TableNotFoundError(f"table {table.name}: no Delta table at {table.uri}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(table.uri).select(*table.columns)

    def version(self, table: TableSpec) -> int | None:
        """See :meth:`DeltaStore.version`."""
        if not self.exists(table):
            return None
        return int(self._delta_table(table).history(1).collect()[0]["version"])

    def history(self, table: TableSpec) -> list[dict]:
        """See :meth:`DeltaStore.history`."""
        commits = []
        for row in self._delta_table(table).history().collect():
            try:
                metadata = json.loads(row["userMetadata"]) if row["userMetadata"] else {}
            except ValueError:
                metadata = {"userMetadata": row["userMetadata"]}
            if not isinstance(metadata, dict):
                metadata = {"userMetadata": row["userMetadata"]}
            metadata = {str(k): str(v) for k, v in metadata.items()}
            timestamp = row["timestamp"]
            if timestamp.tzinfo is None:
                # Spark returns session-local naive datetimes; the session time zone is UTC.
                timestamp = timestamp.replace(tzinfo=timezone.utc)
            commits.append({
                "version": int(row["version"]),
                "timestamp": timestamp.astimezone(timezone.utc),
                "operation": metadata.pop(OPERATION_KEY, row["operation"]),
                "engine_operation": row["operation"],
                "parameters": dict(row["operationParameters"] or {}),
                "metadata": metadata,
            })
        return sorted(commits, key=lambda c: c["version"], reverse=True)
