"""Landing rows → canonical records, driven by the layout (no state-specific code).

Two halves share the layout's mapping:

* :func:`defects` says, per row, why it cannot be used (wrong column count,
  bytes not valid in the file's encoding, a missing voter id, a bad date or
  number, an unknown code). Ingest sends such rows to quarantine.
* :func:`canonical_records` turns bronze rows into the canonical fields of
  their kind (:mod:`votelake.canonical`), typed, with codes translated.

All functions are pure Column / DataFrame transforms.
"""

from __future__ import annotations

import datetime as dt
import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.canonical import FIELDS, REQUIRED, code_set
from votelake.layouts import CodeTable, Layout
from votelake.transforms.standardize import blank_to_null, parse_int

CORRUPT = "_corrupt_record"
# Load columns every canonical record carries (from its bronze row).
CANONICAL_META = ("_source_file", "_load_id", "_snapshot_date")
# What the JVM decoder puts in place of bytes that are not valid in the encoding.
REPLACEMENT_CHAR = "\ufffd"
# The earliest plausible value of each dated field; none may lie after the load.
# Outside them a value is a typo or corruption (a birth year of 1800 or 2100, a
# registration in 2199), and such a row is quarantined rather than scored.
EARLIEST = {
    "birth_date": dt.date(1880, 1, 1), "birth_year": 1880, "registration_date": dt.date(1900, 1, 1),
    "election_date": dt.date(1900, 1, 1), "attempted_at": dt.date(1990, 1, 1), "event_ts": dt.date(1990, 1, 1),
    "assigned_at": dt.date(1990, 1, 1),
}


def source_value(layout: Layout, field: str) -> Column:
    """A canonical field's raw value: its source column, trimmed, blank as null.

    A field mapped to several columns joins their non-blank values with ``-``
    (e.g. NC's county id and registration number, FL's area code and number).

    Args:
        layout: the source's layout.
        field: the canonical field.

    Returns:
        A string Column (null literal when the layout does not map the field).
    """
    cols = layout.source_columns(field)
    if not cols:
        return F.lit(None).cast("string")
    if len(cols) == 1:
        return blank_to_null(F.col(cols[0]))
    return blank_to_null(F.concat_ws("-", *[blank_to_null(F.col(c)) for c in cols]))


def _code_key(raw: Column) -> Column:
    return F.upper(raw)


def code_value(raw: Column, table: CodeTable) -> Column:
    """Translate a raw code to its canonical value (null for blank or unknown-to-quarantine).

    Args:
        raw: the raw value (trimmed, blank as null).
        table: the layout's code table.

    Returns:
        The canonical value.
    """
    key = _code_key(raw)
    fallback = F.lit(table.default) if table.unknown == "default" else F.lit(None)
    if table.match == "contains":
        out = fallback
        for code, value in reversed(list(table.values.items())):
            out = F.when(key.contains(code), F.lit(value)).otherwise(out)
        return F.when(raw.isNotNull(), out).cast("string")
    mapping = F.create_map(*[F.lit(x) for kv in table.values.items() for x in kv])
    return F.when(is_known_code(raw, table), F.element_at(mapping, key)).otherwise(
        F.when(raw.isNotNull(), fallback)).cast("string")


def is_known_code(raw: Column, table: CodeTable) -> Column:
    """True when the raw code is listed in the table (blank counts as known)."""
    key = _code_key(raw)
    if table.match == "contains":
        hit = F.lit(False)
        for code in table.values:
            hit = hit | key.contains(code)
        return raw.isNull() | hit
    return raw.isNull() | key.isin(*table.values.keys())


def typed_field(layout: Layout, field: str) -> Column:
    """One canonical field of a landing row, parsed to its type (null when absent or unparsable).

    Args:
        layout: the row's layout (it must map ``field``).
        field: a canonical field of the layout's kind.

    Returns:
        The typed Column.
    """
    return _typed(layout, field, source_value(layout, field))


def _typed(layout: Layout, field: str, raw: Column) -> Column:
    """The raw value parsed to the field's canonical type (null when it does not parse)."""
    ftype = FIELDS[layout.kind][field]
    table = layout.codes.get(field)
    if table is not None:
        raw = code_value(raw, table)
    if ftype == "date":
        return F.try_to_date(raw, layout.date_format_of(field))
    if ftype == "timestamp":
        return F.try_to_timestamp(raw, F.lit(layout.timestamp_format))
    if ftype == "int":
        return parse_int(raw)
    return raw


def _implausible(layout: Layout, field: str, value: Column, as_of: dt.date) -> Column | None:
    """A reason when a parsed value lies outside :data:`EARLIEST` .. the load date (values not quoted)."""
    earliest = EARLIEST.get(field)
    if earliest is None:
        return None
    ftype = FIELDS[layout.kind][field]
    if ftype == "int":
        low, high, latest = earliest, as_of.year, as_of.year
    elif ftype == "timestamp":  # up to the end of the load day
        low = dt.datetime.combine(earliest, dt.time())
        high, latest = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time()), as_of
    else:
        low, high, latest = earliest, as_of, as_of
    cols = "+".join(layout.source_columns(field))
    return F.when((value < F.lit(low)) | (value > F.lit(high)),
                  F.lit(f"implausible {field} ({cols}): not between {earliest} and {latest}"))


def defects(layout: Layout, as_of: dt.date) -> Column:
    """Why each row of a source cannot be used; empty when it can.

    Args:
        layout: the source's layout (rows carry its columns and ``_corrupt_record``).
        as_of: the load's date: no date or birth year may lie after it.

    Returns:
        An ``array<string>`` Column of reasons.
    """
    checks: list[Column] = []
    every = F.concat_ws("", *[F.col(c) for c in layout.columns])
    checks.append(F.when(every.contains(REPLACEMENT_CHAR),
                         F.lit(f"bytes not valid in the layout's encoding ({layout.encoding})")))
    for field in REQUIRED[layout.kind]:
        if field in layout.fields:
            cols = "+".join(layout.source_columns(field))
            checks.append(F.when(source_value(layout, field).isNull(), F.lit(f"missing {field} ({cols})")))
    for field in layout.fields:
        raw = source_value(layout, field)
        cols = "+".join(layout.source_columns(field))
        table = layout.codes.get(field)
        if table is not None and table.unknown == "quarantine":
            checks.append(F.when(~is_known_code(raw, table),
                                 F.concat(F.lit(f"unknown {field} code '"), raw, F.lit(f"' ({cols})"))))
        if FIELDS[layout.kind][field] in ("date", "timestamp", "int") and code_set(layout.kind, field) is None:
            # Values are not quoted: dates of birth are personal data.
            typed = _typed(layout, field, raw)
            checks.append(F.when(raw.isNotNull() & typed.isNull(),
                                 F.lit(f"bad {FIELDS[layout.kind][field]} in {field} ({cols})")))
            implausible = _implausible(layout, field, typed, as_of)
            if implausible is not None:
                checks.append(implausible)
    wide = layout.wide_history
    if wide is not None:
        known = list(wide.values)
        checks.append(F.when(
            F.exists(F.map_values(F.col(wide.column)), lambda v: ~F.upper(F.trim(v)).isin(*known)),
            F.lit(f"unknown vote code in election columns (known: {', '.join(known)})")))
    malformed = _malformed_reason(layout)
    return F.when(F.col(CORRUPT).isNotNull(), F.array(malformed)).otherwise(
        F.filter(F.array(*checks), lambda r: r.isNotNull()))


def _malformed_reason(layout: Layout) -> Column:
    if layout.format == "jsonl":
        return F.lit("malformed JSON record")
    fields = F.size(F.split(F.col(CORRUPT), re.escape(layout.delimiter)))
    return F.concat(F.lit("wrong column count: "), fields.cast("string"),
                    F.lit(f" fields, layout {layout.name} has {len(layout.columns)}"))


def canonical_records(bronze: DataFrame, layout: Layout) -> DataFrame:
    """Bronze rows of one source as canonical records of the layout's kind.

    Args:
        bronze: rows of the source's bronze table.
        layout: its layout.

    Returns:
        Every canonical field of the kind (null where the layout has none), then
        ``_source_file``, ``_load_id``, ``_snapshot_date``; for a layout with a
        wide vote history, also its map column.
    """
    fields = FIELDS[layout.kind]
    out = [_typed(layout, f, source_value(layout, f)).alias(f) if f in layout.fields
           else F.lit(None).cast(spark_type(t)).alias(f) for f, t in fields.items()]
    extra = [layout.wide_history.column] if layout.wide_history is not None else []
    return bronze.select(*out, *extra, *CANONICAL_META)


def spark_type(ftype: str) -> str:
    """The Spark SQL type of a canonical field type (coded fields are strings)."""
    return {"int": "int", "date": "date", "timestamp": "timestamp"}.get(ftype, "string")


def wide_vote_history(records: DataFrame, layout: Layout) -> DataFrame:
    """Turn per-election columns into vote-history records (one per vote cast).

    Args:
        records: :func:`canonical_records` of a layout with ``wide_history``.
        layout: that layout.

    Returns:
        Canonical ``vote_history`` records: blank cells (did not vote) yield no
        row; a party letter is the primary ballot's party.
    """
    wide = layout.wide_history
    assert wide is not None, "layout has no wide_history"
    groups = re.compile(wide.pattern).groupindex
    pattern = wide.pattern.replace("(?P<", "(?<")  # Java's named-group syntax
    ballots = F.create_map(*[F.lit(x) for kv in wide.values.items() for x in kv])
    types = F.create_map(*[F.lit(x) for kv in wide.types.items() for x in kv])
    cells = records.select(
        "state_voter_id", "county_id", "precinct", "_source_file", "_load_id", "_snapshot_date",
        F.explode(F.col(wide.column)).alias("_label", "_cell"),
    )
    label = F.col("_label")
    return cells.select(
        "state_voter_id",
        "county_id",
        F.try_to_date(F.regexp_extract(label, pattern, groups["date"]), wide.date_format).alias("election_date"),
        F.element_at(types, F.regexp_extract(label, pattern, groups["type"])).alias("election_type"),
        label.alias("election_desc"),
        F.lit(None).cast("string").alias("voting_method"),
        F.element_at(ballots, F.upper(F.trim(F.col("_cell")))).alias("voted_party"),
        "precinct",
        "_source_file",
        "_load_id",
        "_snapshot_date",
    )
