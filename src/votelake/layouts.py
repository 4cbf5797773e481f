"""Landing-file layouts, declared as configuration in ``conf/layouts/*.yaml``.

A layout describes one kind of file a source publishes: its columns in order,
format (delimited text or JSON lines), delimiter, header, encoding and date
formats, and how it maps to the canonical records of :mod:`votelake.canonical`:
``fields`` names the source column of each canonical field, ``codes`` maps the
source's codes to canonical values, and ``wide_history`` turns per-election
columns (Ohio's SWVF) into vote-history entries. A new state is a new YAML file.

Everything is validated when the layout loads: an unknown key, a field mapped
to a column the layout does not have, a canonical field or code value that does
not exist, each fails naming it.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from votelake.canonical import CODE_SETS, FIELDS, REQUIRED, Kind, code_set


SPARK_CHARSETS = ("utf-8", "iso-8859-1", "us-ascii", "utf-16", "utf-16be", "utf-16le", "utf-32")


class LayoutError(ValueError):
    """A layout file is malformed, or a landing file does not match its layout."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeTable(_Strict):
    """Source codes of one coded field and their canonical values.

    Raw values are compared upper-cased and trimmed; a blank raw value is null
    and never a defect. ``match: contains`` tests the entries in order and takes
    the first whose key the raw value contains (for free-text descriptions).
    """

    values: dict[str, str | None]
    match: Literal["exact", "contains"] = "exact"
    # What an unlisted code becomes: a defect (row quarantined) or ``default``.
    unknown: Literal["quarantine", "default"] = "quarantine"
    default: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # A plain mapping is the short form: {A: ACTIVE, ...} means values only.
        if isinstance(v, dict) and "values" not in v:
            return {"values": v}
        return v

    @field_validator("values", mode="before")
    @classmethod
    def _upper_keys(cls, v: Any) -> Any:
        return {str(k).strip().upper(): val for k, val in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _default_given(self) -> "CodeTable":
        if self.unknown == "default" and self.default is None:
            raise ValueError("unknown: default needs a default value")
        return self


class WideHistory(_Strict):
    """Per-election columns of a voter file, one column per election.

    Columns whose header matches ``pattern`` (named groups ``type`` and
    ``date``) are election columns; a cell's code says whether and how the voter
    voted (``values``: code → party ballot, null for a ballot without party). A
    blank cell means the voter did not vote in that election.
    """

    pattern: str
    date_format: str
    # The pattern's ``type`` group → canonical election type.
    types: dict[str, str]
    values: dict[str, str | None]
    column: str = "vote_history"

    @field_validator("pattern")
    @classmethod
    def _groups(cls, v: str) -> str:
        groups = re.compile(v).groupindex
        if not {"type", "date"} <= set(groups):
            raise ValueError("pattern needs named groups 'type' and 'date'")
        return v

    @field_validator("values", mode="before")
    @classmethod
    def _upper_keys(cls, v: Any) -> Any:
        return {str(k).strip().upper(): val for k, val in v.items()} if isinstance(v, dict) else v


class Layout(_Strict):
    """The shape of one kind of landing file and its mapping to canonical records."""

    name: str
    kind: Kind
    description: str = ""
    state: str | None = None
    format: Literal["delimited", "jsonl"] = "delimited"
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    date_format: str = "yyyy-MM-dd"
    # Per-field date patterns where a file mixes them.
    date_formats: dict[str, str] = Field(default_factory=dict)
    timestamp_format: str = "yyyy-MM-dd'T'HH:mm:ss"
    columns: tuple[str, ...]
    # The header text of each column where it differs from the column's name
    # (e.g. Ohio's unnamed leading index column).
    header_names: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, str | tuple[str, ...]] = Field(default_factory=dict)
    codes: dict[str, CodeTable] = Field(default_factory=dict)
    wide_history: WideHistory | None = None

    @field_validator("encoding")
    @classmethod
    def _spark_charset(cls, v: str) -> str:
        # The charsets Spark's CSV/JSON readers accept (latin-1 is spelled iso-8859-1).
        if v.lower() not in SPARK_CHARSETS:
            raise ValueError(f"encoding {v!r} is not one Spark reads; use one of {', '.join(SPARK_CHARSETS)}")
        return v.lower()

    @model_validator(mode="after")
    def _check(self) -> "Layout":
        problems: list[str] = []
        if not self.columns or len(set(self.columns)) != len(self.columns):
            problems.append("columns must be a non-empty list of unique names")
        if any(not c.strip() or c.startswith("_") for c in self.columns):
            problems.append("column names must not be blank or start with '_' (reserved for load columns)")
        canonical = FIELDS[self.kind]
        for fname, source in self.fields.items():
            if fname not in canonical:
                problems.append(f"field {fname!r} is not a canonical {self.kind} field "
                                f"(known: {', '.join(canonical)})")
            for col in (source,) if isinstance(source, str) else source:
                if col not in self.columns:
                    close = difflib.get_close_matches(col, self.columns, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    problems.append(f"field {fname!r} maps to unknown column {col!r}{hint}")
        missing = [f for f in REQUIRED[self.kind] if f not in self.fields]
        if missing:
            problems.append(f"required canonical field(s) not mapped: {', '.join(missing)}")
        for fname, table in self.codes.items():
            if fname not in self.fields:
                problems.append(f"codes given for {fname!r}, which the layout does not map")
                continue
            cset = code_set(self.kind, fname)
            if cset is None:  # a plain lookup (e.g. county codes to numbers): any values
                continue
            allowed = set(CODE_SETS[cset])
            bad = sorted({str(v) for v in [*table.values.values(), table.default] if v is not None} - allowed)
            if bad:
                problems.append(f"codes.{fname}: {bad} not in the canonical {cset} codes {sorted(allowed)}")
        for fname in self.fields:
            if fname in canonical and code_set(self.kind, fname) and fname not in self.codes:
                problems.append(f"coded field {fname!r} is mapped but has no code table")
        if self.wide_history is not None:
            bad = sorted({v for v in self.wide_history.values.values() if v is not None} - set(CODE_SETS["party"]))
            if bad:
                problems.append(f"wide_history.values: {bad} not canonical party codes")
            bad = sorted(set(self.wide_history.types.values()) - set(CODE_SETS["election_type"]))
            if bad:
                problems.append(f"wide_history.types: {bad} not canonical election types")
        for col in self.header_names:
            if col not in self.columns:
                problems.append(f"header_names names unknown column {col!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def header_name(self, column: str) -> str:
        """The text a file's header row shows for ``column``."""
        return self.header_names.get(column, column)

    def date_format_of(self, field: str) -> str:
        """The date pattern of one canonical date field."""
        return self.date_formats.get(field, self.date_format)

    def source_columns(self, field: str) -> tuple[str, ...]:
        """The source column(s) of a canonical field (empty when unmapped)."""
        source = self.fields.get(field)
        if source is None:
            return ()
        return (source,) if isinstance(source, str) else tuple(source)


def _columns_and_headers(raw_columns: Any) -> tuple[list[str], dict[str, str]]:
    names, headers = [], {}
    for item in raw_columns or []:
        if isinstance(item, dict) and len(item) == 1:
            name, header = next(iter(item.items()))
            names.append(str(name))
            headers[str(name)] = "" if header is None else str(header)
        else:
            names.append(str(item))
    return names, headers


def parse_layout(raw: dict, origin: str) -> Layout:
    """Validate a layout given as a mapping (as read from YAML).

    Args:
        raw: the layout's keys.
        origin: where it came from, for messages.

    Returns:
        The layout.

    Raises:
        LayoutError: naming each problem.
    """
    if not isinstance(raw, dict):
        raise LayoutError(f"layout {origin}: top level must be a mapping")
    data = dict(raw)
    if "columns" in data:
        data["columns"], headers = _columns_and_headers(data["columns"])
        data["header_names"] = {**headers, **(data.get("header_names") or {})}
    try:
        return Layout.model_validate(data)
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"]) or "layout"
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {key}: {msg}")
        raise LayoutError(f"layout {origin} is invalid:\n" + "\n".join(lines)) from None


def load_layout(layouts_dir: Path, name: str) -> Layout:
    """Load and validate ``<layouts_dir>/<name>.yaml``.

    Args:
        layouts_dir: the folder holding layout files.
        name: the layout's name (file stem).

    Returns:
        The layout.

    Raises:
        LayoutError: the file is missing or invalid (naming the key or column).
    """
    path = Path(layouts_dir) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(layouts_dir).glob("*.yaml"))
        raise LayoutError(f"no layout {name!r} in {layouts_dir} (known: {', '.join(known)})")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise LayoutError(f"layout {path}: top level must be a mapping")
    raw.setdefault("name", name)
    return parse_layout(_extend(layouts_dir, raw, {name}), str(path))


def _extend(layouts_dir: Path, raw: dict, seen: set[str]) -> dict:
    """Resolve ``extends: <base layout>``: the base's keys, overridden by this file's.

    ``fields`` and ``codes`` merge key by key, so a revised layout only lists
    what changed (e.g. the columns North Carolina renamed).
    """
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    if base_name in seen:
        raise LayoutError(f"layout {raw.get('name')}: circular extends via {base_name!r}")
    base_path = Path(layouts_dir) / f"{base_name}.yaml"
    if not base_path.is_file():
        raise LayoutError(f"layout {raw.get('name')}: extends unknown layout {base_name!r}")
    base = _extend(layouts_dir, dict(yaml.safe_load(base_path.read_text()) or {}), seen | {base_name})
    merged = {**base, **raw}
    for key in ("fields", "codes"):
        merged[key] = {**(base.get(key) or {}), **(raw.get(key) or {})}
    if "columns" in raw and "header_names" not in raw:
        merged.pop("header_names", None)
    return merged


def header_difference(layout: Layout, header: list[str]) -> str | None:
    """Describe how a file's header differs from its layout.

    Columns are compared by name, case-insensitively. A missing column that
    closely resembles an extra one is reported as renamed-looking, the usual
    sign of a state changing its layout.

    Args:
        layout: the expected layout.
        header: the column names read from the file's first line (for a layout
            with ``wide_history``, only the columns before the election columns).

    Returns:
        ``None`` when they match exactly (names and order), else a message
        naming the missing, renamed-looking, extra and misplaced columns.
    """
    found = [h.strip().lower() for h in header]
    expected = [layout.header_name(c).lower() for c in layout.columns]
    if found == expected:
        return None
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    renamed = []
    for col in list(missing):
        close = difflib.get_close_matches(col, extra, n=1, cutoff=0.6)
        if close:
            renamed.append(f"{col} → {close[0]}")
            missing.remove(col)
            extra.remove(close[0])
    parts = [f"layout {layout.name} expects {len(expected)} columns, the file has {len(found)}"]
    if renamed:
        parts.append(f"renamed-looking: {', '.join(renamed)}")
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if extra:
        parts.append(f"extra: {', '.join(extra)}")
    if not missing and not extra and not renamed:
        parts.append("same columns in a different order")
    return "; ".join(parts)
