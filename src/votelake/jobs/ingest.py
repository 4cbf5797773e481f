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

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.storagelevel import StorageLevel

from votelake import erasure, progress
from votelake.config import Settings, SourceSettings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.landing import LandingFile, check_files, content_id, legacy_fingerprint, list_files, listing_key
from votelake.layouts import Layout, LayoutError, load_layout
from votelake.transforms import erasure as er
from votelake.transforms.bronze import (BLOCK_START, FILE_LINES, LINE, ROW_ID, SOURCE_FILE, as_of,
                                        check_rows, snapshot_date, split_bronze, usable, with_line_numbers)
from votelake.transforms.canonicalize import CORRUPT, source_value

# Commit attempts of one load: racing loads of a source conflict on purpose, and
# every racing ingest can make another lose once.
LOAD_ATTEMPTS = 10
# True on a usable row an erasure keeps out of bronze (cached with the checked rows).
ERASED = "_erased"


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
        raw = (reader.option("sep", layout.delimiter).option("header", False).option("encoding", layout.encoding)
               .csv(paths))
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


def _dated(delivery: Delivery) -> Column | None:
    """The delivery's snapshot-date Column when a file name or the config dates it, else None (its rows must)."""
    src = delivery.source
    if src.snapshot_date is not None:
        return snapshot_date(src.snapshot_date_pattern, src.snapshot_date)
    if src.snapshot_date_pattern and all(re.search(src.snapshot_date_pattern, f.uri) for f in delivery.files):
        return snapshot_date(src.snapshot_date_pattern, None)
    return None


def _snapshot_from_rows(delivery: Delivery, latest: dict[str, dt.date | None]) -> Column:
    """The snapshot-date Column of a delivery that only its rows date.

    Args:
        delivery: the files.
        latest: each file's latest dated record (:func:`votelake.transforms.bronze.as_of`), by file name.

    Raises:
        LayoutError: no file has a dated row.
    """
    known = [d for d in latest.values() if d is not None]
    if not known:
        raise LayoutError(f"source {delivery.source.name}: cannot date {sorted(latest)}: no date in the file name "
                          "(snapshot_date_pattern), no snapshot_date in the config, and no dated rows")
    # Undated files delivered together are slices of one snapshot (Ohio ships its
    # statewide file in county or ZIP parts): dated per file, the smaller slices
    # would look older and their voters removed by the newest one.
    return snapshot_date(delivery.source.snapshot_date_pattern, max(known))


def _content(load_id: Column) -> Column:
    """The file content id that ends a load id (``<load time>-<content id>``)."""
    return F.substring_index(load_id, "-", -1)


def _loaded(lake: Lakehouse, table: str, delivery: Delivery) -> set[str]:
    """The delivery's content ids whose rows the table already holds (all of them for a pre-content-id load)."""
    if lake.version(table) is None:
        return set()
    ids, legacy = set(delivery.ids.values()), legacy_fingerprint(delivery.files)
    # The few content ids already in bronze: they decide which files load, before any is parsed.
    found = {r[0] for r in lake.read(table).select(_content(F.col("_load_id")).alias("_id"))
             .where(F.col("_id").isin(*ids, legacy)).distinct().collect()}
    return ids if legacy in found else found


def _landing_path(spark_uri: Column) -> Column:
    """A Spark file URI (``file:/a%20b``, ``s3a://bucket/key``) as the landing listing names the file, less its
    leading slashes (``a b``, ``bucket/key``), per row: for checks that need a row's file before any query has
    named the files' URIs.

    ``url_decode`` also reads ``+`` as a space (form encoding), which a URI path
    does not, so a ``+`` is escaped before decoding.
    """
    path = F.regexp_replace(spark_uri, r"^[^:]*:", "")
    return F.regexp_replace(F.url_decode(F.replace(path, F.lit("+"), F.lit("%2B"))), r"^/+", "")


def _spark_path(spark_uri: str) -> str:
    """:func:`_landing_path` of one URI, in Python: the listing's key (:func:`listing_key`) of the decoded URI."""
    return listing_key(unquote(spark_uri))


def _by_file(delivery: Delivery, rows: dict[str, Row]) -> dict[str, tuple[str | None, Row | None]]:
    """Per-file rows of a query (keyed by ``_source_file``, Spark's URI) by the delivery's file uri.

    Args:
        delivery: the files of the load.
        rows: one row per file that has any, by Spark's URI of it.

    Returns:
        Each file's Spark URI and row (``(None, None)`` for a file without rows).

    Raises:
        RuntimeError: a row's file is none of the delivery's (nothing is written then).
    """
    by_path = {listing_key(f.uri): f.uri for f in delivery.files}
    found = {by_path.get(_spark_path(spark_uri)): (spark_uri, row) for spark_uri, row in rows.items()}
    if None in found:
        raise RuntimeError(f"{delivery.table}: rows of {found[None][0]}, a file the load does not name; "
                           "nothing was written")
    return {f.uri: found.get(f.uri, (None, None)) for f in delivery.files}


def _lookup(values: dict[str, str], key: Column) -> Column:
    """``values[key]`` as a Column (null for a key not in ``values``)."""
    return F.element_at(F.create_map(*[F.lit(x) for kv in values.items() for x in kv]), key)


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


def _cut_last_line(delivery: Delivery, path: Column) -> Column | None:
    """A reason on the last line of each delimited file that does not end with a line break, else None.

    Such a line parses with the right column count even when the file was cut
    inside its last field, so it cannot be told from a whole one. Rows need
    ``_line`` and ``_file_lines`` (:func:`with_line_numbers`).

    Args:
        delivery: the files.
        path: each row's file as the landing listing names it (:func:`_landing_path`).
    """
    unterminated = sorted(listing_key(u) for u in delivery.unterminated if u in {f.uri for f in delivery.files})
    if not unterminated or delivery.layout.format != "delimited":
        return None
    # The line number first: the path is decoded on each file's last line only.
    last = (F.col(LINE) == F.col(FILE_LINES)) & path.isin(*unterminated)
    return F.when(last, F.lit("no line break after the last line: the file may be cut short"))


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


def reconcile(table: str, read: dict[str, int], bronze: dict[str, int], quarantined: dict[str, int],
              erased: dict[str, int], committed_bronze: int, committed_quarantine: int) -> None:
    """Check that every row read is written once: per file, read = bronze + quarantined + erased.

    Args:
        table: the bronze table (for the message).
        read: rows parsed per file, counted before the rows were split.
        bronze: usable rows kept for bronze per file, counted on the cached checked rows.
        quarantined: rows quarantined per file, counted likewise.
        erased: usable rows an erasure kept out of bronze per file, counted likewise.
        committed_bronze: rows Delta reports inserted into ``table``.
        committed_quarantine: rows Delta reports inserted into the quarantine.

    Raises:
        RuntimeError: a file's counts, or a write's counts against Delta's, disagree (nothing is lost silently).
    """
    files = sorted(set(read) | set(bronze) | set(quarantined) | set(erased))
    wrong = [f"{f.rsplit('/', 1)[-1]}: read {read.get(f, 0)}, bronze {bronze.get(f, 0)}, "
             f"quarantined {quarantined.get(f, 0)}, erased {erased.get(f, 0)}"
             for f in files if read.get(f, 0) != bronze.get(f, 0) + quarantined.get(f, 0) + erased.get(f, 0)]
    if sum(bronze.values()) != committed_bronze:
        wrong.append(f"{sum(bronze.values())} row(s) written to {table}, Delta committed {committed_bronze}")
    if sum(quarantined.values()) != committed_quarantine:
        wrong.append(f"{sum(quarantined.values())} row(s) written to the quarantine, "
                     f"Delta committed {committed_quarantine}")
    if wrong:
        raise RuntimeError(
            f"{table}: the load of {len(files)} file(s) does not reconcile: read {sum(read.values())}, "
            f"bronze {committed_bronze}, quarantined {sum(quarantined.values())}, erased {sum(erased.values())}; "
            + "; ".join(wrong))


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

    The files are parsed, numbered and checked once into a cache that every
    step reads: one aggregate counts the rows read per file (and dates an
    undated delivery) and the rows each class of the split holds, the quality
    gate runs, then each table is written once, and the rows each write
    committed (Delta's commit metrics) are checked against those counts. (Not
    a :class:`pyspark.sql.Observation` on the write: once used, it leaves the
    session unserializable for MLlib models that keep their training summary.)

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
        LayoutError: nothing dates the files (before anything is written).
        RuntimeError: the counts do not reconcile (nothing is lost silently).
    """
    src, layout = delivery.source, delivery.layout
    files, skipped = _new_files(delivery, _loaded(lake, delivery.table, delivery))
    if not files:
        return {"files": len(delivery.files), "skipped": "already loaded", "skipped_files": skipped}
    delivery = replace(delivery, files=files)
    progress.stage(f"parsing and checking {len(files)} {src.name} file(s)")
    load_ids = {f.uri: f"{loaded_at:%Y%m%dT%H%M%S}-{delivery.ids[f.uri]}" for f in files}
    parsed = with_line_numbers(read_landing(spark, layout, files, delivery.election_columns),
                               header=layout.header and layout.format == "delimited", file_lines=True)
    checked = check_rows(parsed, layout, loaded_at, _cut_last_line(delivery, _landing_path(F.col(SOURCE_FILE))))
    dropped = (er.erased({k: source_value(layout, k) for k in er.KINDS if layout.source_columns(k)},
                         suppressed.hashes, suppressed.salt)
               if suppressed is not None and layout.kind in er.PRIVATE_KINDS else None)
    # Parsed, numbered and checked once: the aggregate below fills the cache, the gate and the writes read it.
    checked = checked.select(
        *[c for c in checked.columns if c != FILE_LINES],
        (F.lit(False) if dropped is None else F.when(usable(), dropped).otherwise(False)).alias(ERASED),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        dated = _dated(delivery)
        # The one pass before the gate: rows read per file (counted before any split), quarantined,
        # and each file's latest dated row when neither its name nor the config dates it (else its snapshot date).
        # Each row counts once in "read" and once in the class its split puts it in (the writes are then checked
        # against Delta's own counts of what they committed).
        stats = checked.groupBy(SOURCE_FILE).agg(
            F.count("*").alias("read"), F.count_if(~usable()).alias("bad"),
            F.count_if(usable() & F.col(ERASED)).alias("erased"), F.count_if(usable() & ~F.col(ERASED)).alias("kept"),
            *([F.max(as_of(layout, loaded_at)).alias("as_of")] if dated is None else [F.max(dated).alias("snapshot")])
        ).collect()
        by_uri = _by_file(delivery, {r[SOURCE_FILE]: r for r in stats})
        read = {u: r["read"] if r else 0 for u, (_, r) in by_uri.items()}
        snapshot = dated if dated is not None else _snapshot_from_rows(
            delivery, {u.rsplit("/", 1)[-1]: r["as_of"] for u, (_, r) in by_uri.items() if r})
        load_id = _lookup({spark_uri: load_ids[u] for u, (spark_uri, r) in by_uri.items() if r}, F.col(SOURCE_FILE))
        good, bad = split_bronze(checked, layout, src.name, load_id, loaded_at, snapshot, carry=(ERASED,))
        kept = good.where(~F.col(ERASED)).drop(ERASED)
        # The load's quality gate runs before anything of it is written, one snapshot at a time when
        # several land together (after a missed week): a registration is unique within a snapshot, and
        # each snapshot's size is compared with the one before it.
        snapshots = sorted({r["snapshot"] for r in stats if dated is not None and r["snapshot"] is not None})
        for part in ([kept.where(F.col("_snapshot_date") == F.lit(d)) for d in snapshots]
                     if len(snapshots) > 1 else [kept]):
            lake.check_quality(part, delivery.table, persist=False)
        reasons, committed_quarantine = {}, 0
        these = f"substring_index(_load_id, '-', -1) IN ({', '.join(repr(delivery.ids[f.uri]) for f in files)})"
        with_bad = [u for u, (_, r) in by_uri.items() if r and r["bad"]]
        if with_bad:
            # The report's commonest reasons: a small aggregate over the cached rows.
            reasons = {r["reason"]: r["n"] for r in bad.groupBy("reason").agg(F.count("*").alias("n"))
                       .orderBy(F.desc("n")).limit(20).collect()}
            rows = bad.join(raw_lines(spark, layout, with_bad), on=[SOURCE_FILE, LINE], how="left")
            in_quarantine = lake.replace_where(rows, "bronze.quarantine", f"source = '{src.name}' AND {these}",
                                               LOAD_ATTEMPTS)
            committed_quarantine = in_quarantine.metrics["rows_inserted"] if in_quarantine.committed else 0
        written = lake.replace_where(kept, delivery.table, these, LOAD_ATTEMPTS)
    finally:
        checked.unpersist()
    # Nothing committed: no row to write (all quarantined or erased); the count check below still holds.
    in_bronze = written.metrics["rows_inserted"] if written.committed else 0
    bronze, quarantined, erased_rows = ({u: r[key] if r else 0 for u, (_, r) in by_uri.items()}
                                        for key in ("kept", "bad", "erased"))
    reconcile(delivery.table, read, bronze, quarantined, erased_rows, in_bronze, committed_quarantine)
    # "erased" only where erasures apply, so other sources' reports read as before.
    per_file = {u.rsplit("/", 1)[-1]: {"read": read[u], "bronze": bronze[u], "quarantined": quarantined[u],
                                       **({"erased": erased_rows[u]} if dropped is not None else {})}
                for u in load_ids}
    return {"files": per_file, "read": sum(read.values()), "bronze": in_bronze,
            "quarantined": sum(quarantined.values()), "erased": sum(erased_rows.values()), "reasons": reasons,
            "load_ids": sorted(load_ids.values()), "skipped_files": skipped,
            "replaced_rows": written.metrics.get("rows_deleted", 0)}


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
