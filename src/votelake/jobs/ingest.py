"""Ingest job: landing files → bronze Delta tables.

Inputs: the landing folder (``landing`` in the config) with ``ncvoter/``,
``ncvhis/`` (required), ``contacts/`` and ``digital/`` (optional), each in its
layout from ``conf/layouts/``.
Outputs: ``bronze.ncvoter``, ``bronze.ncvhis``, ``bronze.contacts``,
``bronze.digital`` (every row with ``_source_file``, ``_load_id``,
``_loaded_at``) and ``bronze.quarantine`` (rows that could not be parsed).
Launch: ``spark-submit jobs/ingest.py --conf conf/local.yaml`` or
``votelake run ingest``.

Every file's header is checked against its layout before anything is written.
Reloading the same delivery (same files, sizes, times) is a no-op. Each load
reconciles: rows read = rows in bronze + rows quarantined.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.storagelevel import StorageLevel

from votelake.config import Settings
from votelake.jobs.common import Lakehouse, job_main
from votelake.landing import LandingFile, check_headers, fingerprint, list_files
from votelake.layouts import Layout, LayoutError, load_layout

CORRUPT = "_corrupt_record"


@dataclass(frozen=True)
class Source:
    """A landing folder, its layout and its bronze table."""

    folder: str
    layout: str
    table: str
    required: bool


SOURCES = (
    Source("ncvoter", "nc_ncvoter", "bronze.ncvoter", True),
    Source("ncvhis", "nc_ncvhis", "bronze.ncvhis", True),
    Source("contacts", "contacts", "bronze.contacts", False),
    Source("digital", "digital", "bronze.digital", False),
)


def read_landing(spark: SparkSession, layout: Layout, files: list[LandingFile]) -> DataFrame:
    """Parse landing files with an explicit all-string schema.

    Args:
        spark: the session.
        layout: the files' layout.
        files: the files.

    Returns:
        The layout's columns, ``_corrupt_record`` (set on rows that do not
        parse) and ``_source_file``.
    """
    schema = T.StructType(
        [T.StructField(c, T.StringType()) for c in layout.columns] + [T.StructField(CORRUPT, T.StringType())]
    )
    paths = [f.uri for f in files]
    reader = spark.read.schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
    if layout.format == "jsonl":
        raw = reader.option("encoding", layout.encoding).json(paths)
    else:
        raw = (
            reader.option("sep", layout.delimiter)
            .option("header", layout.header)
            .option("encoding", layout.encoding)
            .option("enforceSchema", True)
            .csv(paths)
        )
    return raw.select(*raw.columns, F.col("_metadata.file_path").alias("_source_file"))


def split_bronze(parsed: DataFrame, source: str, load_id: str, loaded_at: dt.datetime) -> tuple[DataFrame, DataFrame]:
    """Split parsed rows into bronze rows and quarantine rows.

    Args:
        parsed: output of :func:`read_landing`.
        source: the source name, recorded in quarantine.
        load_id: this load's id.
        loaded_at: this load's time.

    Returns:
        ``(good, quarantined)``: good rows with the load columns; quarantined
        rows with the reason and the raw line.
    """
    meta = [F.lit(load_id).alias("_load_id"), F.lit(loaded_at).cast("timestamp").alias("_loaded_at")]
    is_malformed = F.col(CORRUPT).isNotNull()
    good = parsed.where(~is_malformed).drop(CORRUPT).select("*", *meta)
    bad = parsed.where(is_malformed).select(
        F.lit(source).alias("source"),
        F.lit("malformed row: wrong column count or unparseable record").alias("reason"),
        F.col(CORRUPT).alias("raw"),
        "_source_file",
        *meta,
    )
    return good, bad


def _already_loaded(lake: Lakehouse, table: str, fp: str) -> bool:
    if lake.version(table) is None:
        return False
    return lake.read(table).where(F.col("_load_id").endswith(fp)).limit(1).count() > 0


def run(spark: SparkSession, settings: Settings) -> dict:
    """Load every landing source into bronze.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Per source: files, rows read, rows in bronze, rows quarantined, or
        ``skipped`` with the reason.

    Raises:
        LayoutError: a required source is missing or a header does not match
            its layout (raised before any table is written).
    """
    lake = Lakehouse.open(spark, settings, job="ingest")
    plan = []
    for src in SOURCES:
        layout = load_layout(settings.layouts, src.layout)
        files = list_files(str(settings.landing / src.folder))
        if not files:
            if src.required:
                raise LayoutError(f"no {src.folder} files under {settings.landing / src.folder}")
            continue
        if layout.format == "delimited" and layout.header:
            check_headers(layout, files)
        plan.append((src, layout, files))

    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    report: dict[str, dict] = {}
    for src, layout, files in plan:
        fp = fingerprint(files)
        if _already_loaded(lake, src.table, fp):
            report[src.folder] = {"files": len(files), "skipped": "already loaded", "load_id_suffix": fp}
            continue
        load_id = f"{loaded_at:%Y%m%dT%H%M%S}-{fp}"
        parsed = read_landing(spark, layout, files).persist(StorageLevel.MEMORY_AND_DISK)
        counts = parsed.agg(
            F.count("*").alias("read"), F.count(CORRUPT).alias("malformed")
        ).first()
        good, bad = split_bronze(parsed, src.folder, load_id, loaded_at)
        if counts["malformed"]:
            lake.write(bad, "bronze.quarantine", "append", step=src.folder)
        written = lake.write(good, src.table, "append", metadata={"votelake.load_id": load_id})
        parsed.unpersist()
        if not written.committed:
            report[src.folder] = {"files": len(files), "skipped": f"run version {lake.run_version} already committed"}
            continue
        # Rows committed, as the commit reports them (file footers / operation
        # metrics); count the table only when the backend cannot say.
        in_bronze = written.rows
        if in_bronze is None:
            in_bronze = lake.read(src.table).where(F.col("_load_id") == load_id).count()
        if in_bronze + counts["malformed"] != counts["read"]:
            raise RuntimeError(
                f"{src.table}: load {load_id} does not reconcile: read {counts['read']}, "
                f"bronze {in_bronze}, quarantined {counts['malformed']}"
            )
        report[src.folder] = {
            "files": len(files),
            "read": counts["read"],
            "bronze": in_bronze,
            "quarantined": counts["malformed"],
            "load_id": load_id,
        }
    return report


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("ingest", run, __doc__.splitlines()[0], argv)
