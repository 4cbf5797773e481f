"""Ingest job: landing files → bronze Delta tables, with quarantine.

Inputs: the landing sources of the config (``sources``: each a folder or file
under ``landing``, a file-name glob and a layout from ``conf/layouts/``). The
default config reads the synthetic state's ``ncvoter/``, ``ncvhis/``
(required), ``contacts/``, ``digital/`` and ``experiments/`` (optional); only
configured sources are read, so ``results/`` (precinct results, read by
calibration code) is never ingested.
Outputs: ``bronze.<source>`` for each source (every usable row as delivered,
with ``_source_file``, ``_line``, ``_load_id``, ``_loaded_at``,
``_snapshot_date``) and ``bronze.quarantine`` (rows that cannot be used, with
every reason, the raw record, its exact bytes, file and line number).
Launch: ``spark-submit jobs/ingest.py --conf conf/local.yaml`` or
``votelake run ingest``.

Every file is checked against its layout (header or column count, encoding,
emptiness) before anything is written; one mismatch stops the load and names
the missing, renamed-looking and extra columns, and a compressed file is read
through once, so a truncated or corrupt one fails naming it. A file is known by
its content (a SHA-256 of its bytes and its size), not its name: each loads
exactly once, a redelivery under another name is skipped, a new snapshot
beside old ones loads alone, and ingests that race each other still leave one
copy (:func:`load_delivery`). Each load reconciles per file: rows read = rows
in bronze + rows quarantined (+ rows erased: a contact, digital or experiment
row naming someone ``audit.erasures`` names is not loaded).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.storagelevel import StorageLevel

from votelake import erasure
from votelake.config import Settings, SourceSettings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.landing import LandingFile, check_files, content_id, legacy_fingerprint, list_files
from votelake.layouts import Layout, LayoutError, load_layout
from votelake.transforms import erasure as er
from votelake.transforms.bronze import (BLOCK_START, LINE, ROW_ID, SOURCE_FILE, latest_as_of, snapshot_date,
                                        split_bronze, with_line_numbers)
from votelake.transforms.canonicalize import CORRUPT, source_value

# Commit attempts of one load: racing loads of a source conflict on purpose, and
# every racing ingest can make another lose once.
LOAD_ATTEMPTS = 10


@dataclass(frozen=True)
class Delivery:
    """One source's files of this run, checked against its layout."""

    source: SourceSettings
    layout: Layout
    files: list[LandingFile]
    election_columns: tuple[str, ...]
    # Each file's content id (landing.content_id), by uri.
    ids: dict[str, str]
    # The files whose text does not end with a line break (their last line may be cut).
    unterminated: frozenset[str] = frozenset()

    @property
    def table(self) -> str:
        """The source's bronze table."""
        return f"bronze.{self.source.name}"


def read_landing(spark: SparkSession, layout: Layout, files: list[LandingFile],
                 election_columns: tuple[str, ...] = ()) -> DataFrame:
    """Parse landing files with an explicit all-string schema.

    Args:
        spark: the session.
        layout: the files' layout.
        files: the files.
        election_columns: the per-election columns found after the layout's
            columns (layouts with ``wide_history``), in file order.

    Returns:
        The layout's columns, the election cells as one map (non-blank cells
        only), ``_corrupt_record`` (set on rows that do not parse),
        ``_source_file``, ``_block_start`` and ``_row_id`` (for line numbers).
    """
    wide_names = [f"_e{i}" for i in range(len(election_columns))]
    fields = [T.StructField(c, T.StringType()) for c in (*layout.columns, *wide_names)]
    schema = T.StructType(fields + [T.StructField(CORRUPT, T.StringType())])
    paths = [f.uri for f in files]
    reader = spark.read.schema(schema).option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
    if layout.format == "jsonl":
        raw = reader.option("encoding", layout.encoding).json(paths)
    else:
        # Header lines are read as rows and dropped once numbered (with_line_numbers):
        # the header was already checked against the layout, and Spark's own
        # header handling would only warn about the names it does not use.
        raw = reader.option("sep", layout.delimiter).option("header", False).option("encoding", layout.encoding).csv(paths)
    extra = []
    if layout.wide_history is not None:
        cells = F.map_from_arrays(F.array(*[F.lit(c) for c in election_columns]),
                                  F.array(*[F.col(c) for c in wide_names]))
        extra.append(F.map_filter(cells, lambda _, v: F.trim(v) != "").alias(layout.wide_history.column))
    return raw.select(
        *layout.columns, *extra, CORRUPT,
        F.col("_metadata.file_path").alias(SOURCE_FILE),
        F.col("_metadata.file_block_start").alias(BLOCK_START),
        F.monotonically_increasing_id().alias(ROW_ID),
    )


def _snapshot(parsed: DataFrame, delivery: Delivery, loaded_at: dt.datetime) -> Column:
    """The delivery's snapshot-date Column; the data dates it only when name and config do not.

    Raises:
        LayoutError: a file that neither its name, the config nor its rows date.
    """
    src = delivery.source
    if src.snapshot_date is not None:
        return snapshot_date(src.snapshot_date_pattern, src.snapshot_date)
    named = src.snapshot_date_pattern and all(re.search(src.snapshot_date_pattern, f.uri) for f in delivery.files)
    if named:
        return snapshot_date(src.snapshot_date_pattern, None)
    # A few rows, one per file: the latest dated record of each.
    dates = {r[SOURCE_FILE]: r["_as_of"] for r in latest_as_of(parsed, delivery.layout, loaded_at).collect()}
    known = [d for d in dates.values() if d is not None]
    if not known:
        undated = sorted(f.rsplit("/", 1)[-1] for f in dates)
        raise LayoutError(f"source {src.name}: cannot date {undated}: no date in the file name "
                          "(snapshot_date_pattern), no snapshot_date in the config, and no dated rows")
    # Undated files delivered together are slices of one snapshot (Ohio ships its
    # statewide file in county or ZIP parts): dated per file, the smaller slices
    # would look older and their voters removed by the newest one.
    return snapshot_date(src.snapshot_date_pattern, max(known))


def _content(load_id: Column) -> Column:
    """The file content id that ends a load id (``<load time>-<content id>``)."""
    return F.substring_index(load_id, "-", -1)


def _loaded(lake: Lakehouse, table: str, delivery: Delivery) -> set[str]:
    """The delivery's content ids whose rows the table already holds (all of them for a pre-content-id load)."""
    if lake.version(table) is None:
        return set()
    ids, legacy = set(delivery.ids.values()), legacy_fingerprint(delivery.files)
    found = {r[0] for r in lake.read(table).select(_content(F.col("_load_id")).alias("_id"))
             .where(F.col("_id").isin(*ids, legacy)).distinct().collect()}
    return ids if legacy in found else found


def _spark_path(spark_uri: str) -> str:
    """A Spark file URI (``file:/a%20b``, ``s3a://bucket/key``) as pyarrow names the file (``/a b``, ``bucket/key``)."""
    return unquote(spark_uri.split(":", 1)[1]).lstrip("/")


def plan_deliveries(settings: Settings) -> list[Delivery]:
    """Find every source's files and check them against their layouts.

    Args:
        settings: the run configuration.

    Returns:
        The deliveries to load (sources without files and not required are left out).

    Raises:
        LayoutError: naming every problem of every source (a missing required
            source, an empty file, a header or column count that does not match,
            an encoding error), before anything is written.
    """
    plan, problems = [], []
    for src in settings.sources:
        try:
            layout = load_layout(settings.layouts, src.layout)
            location = settings.source_path(src)
            files = list_files(str(location), src.files)
            if not files:
                if src.required:
                    problems.append(f"source {src.name}: no files matching {src.files!r} under {location}")
                continue
            columns = check_files(layout, files)
            contents = {f.uri: content_id(f) for f in files}
            plan.append(Delivery(src, layout, files, columns, {u: c.id for u, c in contents.items()},
                                 frozenset(u for u, c in contents.items() if not c.terminated)))
        except LayoutError as exc:
            problems.append(f"source {src.name}: {exc}")
    if problems:
        raise LayoutError("nothing was loaded:\n" + "\n".join(problems))
    return plan


def _per_file(good: DataFrame, bad: DataFrame, erased: Column | None = None) -> dict[str, dict[str, int]]:
    """Rows read, bronze, quarantined and erased per file, by the file's full path (``_source_file``).

    Args:
        good: the usable rows.
        bad: the quarantined rows.
        erased: true on the usable rows an erasure keeps out of bronze (None: no erasure applies).
    """
    flag = F.lit(0) if erased is None else erased.cast("int")
    counts = (good.select(SOURCE_FILE, (F.lit(1) - flag).alias("_good"), F.lit(0).alias("_bad"),
                          flag.alias("_erased"))
              .unionByName(bad.select(SOURCE_FILE, F.lit(0).alias("_good"), F.lit(1).alias("_bad"),
                                      F.lit(0).alias("_erased")))
              .groupBy(SOURCE_FILE).agg(F.sum("_good").alias("bronze"), F.sum("_bad").alias("quarantined"),
                                        F.sum("_erased").alias("erased"))
              .collect())
    # "erased" only where erasures apply, so other sources' reports read as before.
    return {r[SOURCE_FILE]: {"read": r["bronze"] + r["quarantined"] + r["erased"], "bronze": r["bronze"],
                             "quarantined": r["quarantined"],
                             **({"erased": r["erased"]} if erased is not None else {})} for r in counts}


def raw_lines(spark: SparkSession, layout: Layout, paths: list[str]) -> DataFrame:
    """Every line of the files as its exact bytes: ``_source_file, _line, raw_bytes``.

    Spark's text source keeps a line's bytes undecoded, so a quarantined row
    can be replayed byte for byte even when its bytes are not valid in the
    layout's encoding. Lines are numbered as the parse numbers them (blank
    lines, which the parsers skip, are not counted).

    Args:
        spark: the session.
        layout: the files' layout (its header).
        paths: the files, as the parse named them (``_source_file``).

    Returns:
        One row per line.
    """
    lines = (spark.read.text(paths)
             .select("value", F.col("_metadata.file_path").alias(SOURCE_FILE),
                     F.col("_metadata.file_block_start").alias(BLOCK_START))
             .where(F.trim("value") != "")
             .select("*", F.monotonically_increasing_id().alias(ROW_ID)))
    numbered = with_line_numbers(lines, header=layout.header and layout.format == "delimited")
    return numbered.select(SOURCE_FILE, LINE, F.col("value").cast("binary").alias("raw_bytes"))


def _cut_last_lines(parsed: DataFrame, delivery: Delivery, spark_paths: list[str]) -> Column | None:
    """A reason on the last line of each delimited file that does not end with a line break, else None.

    Such a line parses with the right column count even when the file was cut
    inside its last field, so it cannot be told from a whole one.
    """
    unterminated = {u.lstrip("/") for u in delivery.unterminated}
    paths = [p for p in spark_paths if _spark_path(p) in unterminated]
    if not paths or delivery.layout.format != "delimited":
        return None
    last = parsed.where(F.col(SOURCE_FILE).isin(*paths)).groupBy(SOURCE_FILE).agg(F.max(LINE).alias("n")).collect()
    reason, found = F.lit("no line break after the last line: the file may be cut short"), None
    for row in last:
        hit = (F.col(SOURCE_FILE) == row[SOURCE_FILE]) & (F.col(LINE) == row["n"])
        found = F.when(hit, reason) if found is None else found.when(hit, reason)
    return found


def _new_files(delivery: Delivery, loaded: set[str]) -> tuple[list[LandingFile], dict[str, str]]:
    """The files to load now (one per content not yet loaded) and why each other file is skipped."""
    new, skipped, first = [], {}, {}
    for f in delivery.files:
        cid, name = delivery.ids[f.uri], f.uri.rsplit("/", 1)[-1]
        if cid in loaded:
            skipped[name] = "already loaded"
        elif cid in first:
            skipped[name] = f"same content as {first[cid]}"
        else:
            first[cid] = name
            new.append(f)
    return new, skipped


def load_delivery(spark: SparkSession, lake: Lakehouse, delivery: Delivery, loaded_at: dt.datetime,
                  suppressed: erasure.Suppression | None = None) -> dict:
    """Load one source's new files into its bronze table and the quarantine, each file exactly once.

    A file is its content (:func:`votelake.landing.content_id`): one already in
    bronze under any name is skipped, a new one beside it loads alone. Its rows
    carry the content id at the end of ``_load_id``, and both writes replace
    whatever rows of the same contents the table holds (Delta's
    ``replaceWhere``), so two ingests that race on a file conflict in Delta,
    and the one that retries replaces the other's rows instead of adding to
    them.

    Args:
        spark: the session.
        lake: the lakehouse, opened for the ingest job.
        delivery: the checked files.
        loaded_at: this load's time.
        suppressed: the erasures a source the campaign collected honours.

    Returns:
        The load's report: per file read/bronze/quarantined, totals, rows
        erased, the
        reasons with their counts, ``skipped_files`` with the reason of each
        file not loaded, and ``replaced_rows`` (rows of a concurrent load of
        the same files); ``skipped`` when no file was new.

    Raises:
        RuntimeError: the counts do not reconcile (nothing is lost silently).
    """
    src, layout = delivery.source, delivery.layout
    files, skipped = _new_files(delivery, _loaded(lake, delivery.table, delivery))
    if not files:
        return {"files": len(delivery.files), "skipped": "already loaded", "skipped_files": skipped}
    delivery = replace(delivery, files=files)
    parsed = with_line_numbers(
        read_landing(spark, layout, files, delivery.election_columns),
        header=layout.header and layout.format == "delimited",
    ).persist(StorageLevel.MEMORY_AND_DISK)
    by_path = {f.uri.lstrip("/"): delivery.ids[f.uri] for f in files}
    ids = {p: by_path[_spark_path(p)] for p in (r[0] for r in parsed.select(SOURCE_FILE).distinct().collect())}
    load_id = F.concat(F.lit(f"{loaded_at:%Y%m%dT%H%M%S}-"),
                       F.element_at(F.create_map(*[F.lit(x) for kv in ids.items() for x in kv]), F.col(SOURCE_FILE)))
    good, bad = split_bronze(parsed, layout, src.name, load_id, loaded_at, _snapshot(parsed, delivery, loaded_at),
                             _cut_last_lines(parsed, delivery, list(ids)))
    read = parsed.count()
    dropped = (er.erased({k: source_value(layout, k) for k in er.KINDS if layout.source_columns(k)},
                         suppressed.hashes, suppressed.salt)
               if suppressed is not None and layout.kind in er.PRIVATE_KINDS else None)
    per_file = _per_file(good, bad, dropped)
    if dropped is not None:
        good = good.where(~dropped)
    quarantined = sum(f["quarantined"] for f in per_file.values())
    erased_rows = sum(f.get("erased", 0) for f in per_file.values())
    # The load's quality gate runs before anything of it is written.
    lake.check_quality(good, delivery.table, persist=False)
    reasons = {}
    these = f"substring_index(_load_id, '-', -1) IN ({', '.join(repr(c) for c in sorted(by_path.values()))})"
    if quarantined:
        reasons = {r["reason"]: r["n"] for r in bad.groupBy("reason").agg(F.count("*").alias("n"))
                   .orderBy(F.desc("n")).limit(20).collect()}
        with_bad = [path for path, counts in per_file.items() if counts["quarantined"]]
        bad = bad.join(raw_lines(spark, layout, with_bad), on=[SOURCE_FILE, LINE], how="left")
        lake.replace_where(bad, "bronze.quarantine", f"source = '{src.name}' AND {these}", LOAD_ATTEMPTS)
    written = lake.replace_where(good, delivery.table, these, LOAD_ATTEMPTS)
    parsed.unpersist()
    # Nothing committed: no row to write (all quarantined or erased); the count check below still holds.
    in_bronze = written.metrics["rows_inserted"] if written.committed else 0
    if in_bronze + quarantined + erased_rows != read:
        raise RuntimeError(
            f"{delivery.table}: the load of {len(files)} file(s) does not reconcile: read {read}, "
            f"bronze {in_bronze}, quarantined {quarantined}, erased {erased_rows}"
        )
    return {"files": {path.rsplit("/", 1)[-1]: counts for path, counts in per_file.items()}, "read": read,
            "bronze": in_bronze, "quarantined": quarantined, "erased": erased_rows, "reasons": reasons,
            "load_ids": sorted(f"{loaded_at:%Y%m%dT%H%M%S}-{c}" for c in by_path.values()),
            "skipped_files": skipped, "replaced_rows": written.metrics.get("rows_deleted", 0)}


def run(spark: SparkSession, settings: Settings) -> dict:
    """Load every landing source into bronze.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Per source, the report of :func:`load_delivery`.

    Raises:
        LayoutError: a required source is missing or a file does not match its
            layout (raised before any table is written).
    """
    plan = plan_deliveries(settings)
    lake = Lakehouse.open(spark, settings, job="ingest")
    loaded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    suppressed = erasure.suppression(lake, settings)
    report = {d.source.name: load_delivery(spark, lake, d, loaded_at, suppressed) for d in plan}
    report["quality"] = lake.quality_report()
    return report


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("ingest", run, __doc__.splitlines()[0], argv)
