"""Maintain job: compact, Z-order and vacuum every table; register each in the catalog.

Inputs and outputs: every table of the catalog that exists. For each, in order:
it is registered (``<layer>.<table>`` points at its lakehouse path), its small
files are compacted with Delta's OPTIMIZE (Z-ordered by the table's
``cluster_by`` when it declares one, e.g. a published table's county and
precinct), and Delta's VACUUM deletes the files no version within
``maintenance.retention_hours`` needs: those replaced by older commits and
those a killed writer left behind uncommitted. The retention is never shorter
than the time-travel window (a week), so every version in it stays readable.
A table that an incomplete job run changed (its run manifest not written) is
compacted but not vacuumed, so the version readers use keeps its files.
Launch: ``spark-submit jobs/maintain.py --conf conf/local.yaml`` or
``votelake run maintain``.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse


def run(spark: SparkSession, settings: Settings) -> dict:
    """Maintain every existing table.

    Args:
        spark: the session.
        settings: the run configuration (``maintenance``).

    Returns:
        Per table: files added and removed by compaction, whether it was
        Z-ordered, and the files vacuumed; and the totals.
    """
    lake = Lakehouse.open(spark, settings)
    options = settings.maintenance
    tables: dict[str, dict] = {}
    # Readers of a table an incomplete run changed are on an older version,
    # whose files a vacuum could delete: those tables are not vacuumed.
    pending = lake.incomplete(t.name for t in lake.catalog)
    for table in lake.catalog:
        if not lake.store.exists(table):
            continue
        lake.store.create(table)  # registers it, and adds any declared property or constraint it lacks
        zorder = tuple(table.cluster_by) if options.zorder else ()
        compacted = lake.store.optimize(table, zorder_by=zorder, target_file_mb=options.target_file_mb)
        vacuumed = [] if table.name in pending else lake.store.vacuum(
            table, retention_hours=options.retention_hours, dry_run=False)
        tables[table.name] = {"files_added": compacted["files_added"], "files_removed": compacted["files_removed"],
                              "zorder_by": list(zorder), "vacuumed_files": len(vacuumed),
                              # A vacuum that deleted files committed after the compaction.
                              "version": lake.store.version(table) if vacuumed else compacted["version"]}
        if table.name in pending:
            tables[table.name]["not_vacuumed"] = f"an incomplete {pending[table.name]} run: re-run it"
    return {"tables": tables, "retention_hours": options.retention_hours,
            "files_removed": sum(t["files_removed"] for t in tables.values()),
            "vacuumed_files": sum(t["vacuumed_files"] for t in tables.values())}


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("maintain", run, __doc__.splitlines()[0], argv)
