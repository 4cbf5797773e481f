"""Landing rows → bronze rows and quarantine rows (pure DataFrame functions).

The landing reader (in the ingest job) yields every layout column as a string,
``_corrupt_record``, the file path, the file split's start offset and a row id
from ``monotonically_increasing_id``. Here those become line numbers, the
per-row defects decide bronze or quarantine, and the load columns are added.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.canonical import AS_OF_FIELD
from votelake.layouts import Layout
from votelake.transforms.canonicalize import CORRUPT, defects, typed_field

SOURCE_FILE, BLOCK_START, ROW_ID, LINE = "_source_file", "_block_start", "_row_id", "_line"
# The number of the last line of a row's file (with_line_numbers(file_lines=True)).
FILE_LINES = "_file_lines"
# Every reason a row cannot be used, ``; ``-separated (check_rows); null when it can.
REASON = "_reason"


def with_line_numbers(parsed: DataFrame, header: bool, file_lines: bool = False) -> DataFrame:
    """Number each row by its line in its file (1-based) and drop header lines.

    A file split is read in order inside one task, so rows of a split have
    consecutive row ids; a split's first line number is the count of rows in
    the file's earlier splits. Blank lines, which the reader skips, are not
    counted.

    Args:
        parsed: rows with ``_source_file``, ``_block_start`` and ``_row_id``
            (``monotonically_increasing_id`` taken right at the scan).
        header: whether each file starts with a header line (read as a row,
            line 1, and dropped here).
        file_lines: also keep ``_file_lines``, the number of the file's last
            line (from the same per-split counts, so it costs no further pass).

    Returns:
        ``parsed`` with ``_line`` (bigint) instead of the helper columns.
    """
    splits = parsed.groupBy(SOURCE_FILE, BLOCK_START).agg(
        F.min(ROW_ID).alias("_first_id"), F.count("*").alias("_rows"))
    earlier = Window.partitionBy(SOURCE_FILE).orderBy(BLOCK_START).rowsBetween(Window.unboundedPreceding, -1)
    whole = Window.partitionBy(SOURCE_FILE)
    total = [F.sum("_rows").over(whole).cast("bigint").alias(FILE_LINES)] if file_lines else []
    offsets = splits.select(
        SOURCE_FILE, BLOCK_START, "_first_id",
        F.coalesce(F.sum("_rows").over(earlier), F.lit(0)).alias("_before"),
        *total,
    )
    numbered = parsed.join(F.broadcast(offsets), on=[SOURCE_FILE, BLOCK_START], how="inner")
    line = (F.lit(1) + F.col("_before") + F.col(ROW_ID) - F.col("_first_id")).cast("bigint")
    keep = [c for c in parsed.columns if c not in (BLOCK_START, ROW_ID)]
    out = numbered.select(*keep, line.alias(LINE), *([FILE_LINES] if file_lines else []))
    return out.where(F.col(LINE) > 1) if header else out


def snapshot_date(pattern: str | None, fallback: dt.date | None) -> Column:
    """The snapshot date of each row: its file name's, else the fallback.

    Never the clock: a file loaded a year after it was cut is still that day's snapshot.

    Args:
        pattern: a regex whose first group is a ``yyyyMMdd`` date in the file path.
        fallback: the source's ``snapshot_date`` from the config, else the
            latest date the delivery's rows carry (:func:`as_of`).

    Returns:
        A DateType Column (null only where neither gives a date).
    """
    named = (F.try_to_date(F.regexp_extract(F.col(SOURCE_FILE), pattern, 1), "yyyyMMdd") if pattern
             else F.lit(None).cast("date"))
    return F.coalesce(named, F.lit(fallback).cast("date"))


def as_of(layout: Layout, loaded_at: dt.datetime) -> Column:
    """The date a landing row carries in its kind's dating field, if not after the load.

    A voter record's is its registration; a vote's, its election. Dates after
    the load (typos such as a registration in 2199) are null.

    Args:
        layout: the rows' layout.
        loaded_at: this load's time.

    Returns:
        A DateType Column; its maximum over a delivery's rows dates a delivery
        that neither its file names nor the config date.
    """
    field = AS_OF_FIELD[layout.kind]
    value = F.to_date(typed_field(layout, field)) if field in layout.fields else F.lit(None).cast("date")
    return F.when(value <= F.lit(loaded_at.date()), value)


def check_rows(parsed: DataFrame, layout: Layout, loaded_at: dt.datetime,
               extra_defect: Column | None = None) -> DataFrame:
    """Every reason each numbered landing row cannot be used (the per-row checks, computed once).

    Args:
        parsed: output of :func:`with_line_numbers`.
        layout: the source's layout.
        loaded_at: this load's time (no date may lie after it).
        extra_defect: a further reason per row (null where there is none), known
            outside the row (e.g. the last line of a file cut short).

    Returns:
        ``parsed`` with ``_reason`` (a string, null on a usable row: cheaper to
        keep in a cache than the array of reasons).
    """
    found = defects(layout, loaded_at.date())
    if extra_defect is not None:
        found = F.filter(F.concat(found, F.array(extra_defect)), lambda r: r.isNotNull())
    # No reason is empty, so an empty join means no defect.
    return parsed.select("*", F.nullif(F.array_join(found, "; "), F.lit("")).alias(REASON))


def usable() -> Column:
    """True on a checked row (:func:`check_rows`) that has no defect."""
    return F.col(REASON).isNull()


def split_bronze(
    checked: DataFrame, layout: Layout, source: str, load_id: Column, loaded_at: dt.datetime, snapshot: Column,
    carry: tuple[str, ...] = (),
) -> tuple[DataFrame, DataFrame]:
    """Split checked landing rows into bronze rows and quarantine rows.

    Args:
        checked: output of :func:`check_rows`.
        layout: the source's layout.
        source: the source name, recorded in quarantine.
        load_id: each row's load id (its file's: the load time and the file's content id).
        loaded_at: this load's time.
        snapshot: the snapshot-date Column (:func:`snapshot_date`).
        carry: further columns of ``checked`` the good rows keep after the
            bronze columns (e.g. a flag the caller filters on and drops).

    Returns:
        ``(good, quarantined)``: good rows in the bronze table's columns (and ``carry``);
        quarantined rows with every reason (``; ``-separated), the raw record
        (the line for a malformed row, else the parsed fields as JSON), file and line.
    """
    loaded = F.lit(loaded_at).cast("timestamp")
    data_cols = list(layout.columns) + ([layout.wide_history.column] if layout.wide_history else [])
    good = checked.where(usable()).select(
        *data_cols, SOURCE_FILE, LINE, load_id.alias("_load_id"), loaded.alias("_loaded_at"),
        snapshot.alias("_snapshot_date"), *carry,
    )
    raw = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*data_cols)))
    bad = checked.where(~usable()).select(
        F.lit(source).alias("source"),
        F.col(REASON).alias("reason"),
        raw.alias("raw"),
        SOURCE_FILE,
        LINE,
        load_id.alias("_load_id"),
        loaded.alias("_loaded_at"),
    )
    return good, bad
