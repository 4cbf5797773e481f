"""Landing-file layouts, declared as configuration in ``conf/layouts/*.yaml``.

A layout names a file's columns in order, its format (delimited text or JSON
lines), delimiter, header, encoding and date format. The same layout serves the
files a state publishes and the synthetic files we generate in its image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml


class LayoutError(ValueError):
    """A layout file is malformed, or a landing file does not match its layout."""


@dataclass(frozen=True)
class Layout:
    """The shape of one kind of landing file."""

    name: str
    format: Literal["delimited", "jsonl"]
    columns: tuple[str, ...]
    delimiter: str = ","
    header: bool = True
    encoding: str = "utf-8"
    date_format: str = "yyyy-MM-dd"
    state: str | None = None


_KEYS = {"name", "format", "columns", "delimiter", "header", "encoding", "date_format", "state"}


def load_layout(layouts_dir: Path, name: str) -> Layout:
    """Load ``<layouts_dir>/<name>.yaml``.

    Args:
        layouts_dir: the folder holding layout files.
        name: the layout's name (file stem).

    Returns:
        The layout.

    Raises:
        LayoutError: the file is missing or has unknown keys or no columns.
    """
    path = Path(layouts_dir) / f"{name}.yaml"
    if not path.is_file():
        raise LayoutError(f"no layout {name!r} in {layouts_dir}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - _KEYS
    if unknown:
        raise LayoutError(f"layout {path}: unknown key(s) {sorted(unknown)}")
    columns = tuple(str(c) for c in raw.get("columns") or ())
    if not columns or len(set(columns)) != len(columns):
        raise LayoutError(f"layout {path}: columns must be a non-empty list of unique names")
    return Layout(
        name=str(raw.get("name", name)),
        format=raw.get("format", "delimited"),
        columns=columns,
        delimiter=str(raw.get("delimiter", ",")),
        header=bool(raw.get("header", True)),
        encoding=str(raw.get("encoding", "utf-8")),
        date_format=str(raw.get("date_format", "yyyy-MM-dd")),
        state=raw.get("state"),
    )


def header_difference(layout: Layout, header: list[str]) -> str | None:
    """Describe how a file's header differs from its layout.

    Args:
        layout: the expected layout.
        header: the column names read from the file's first line.

    Returns:
        ``None`` when they match exactly (names and order), else a message
        naming the missing, extra and misplaced columns.
    """
    found = [h.strip().lower() for h in header]
    expected = [c.lower() for c in layout.columns]
    if found == expected:
        return None
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    parts = [f"layout {layout.name} expects {len(expected)} columns, the file has {len(found)}"]
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if extra:
        parts.append(f"extra: {', '.join(extra)}")
    if not missing and not extra:
        parts.append("same columns in a different order")
    return "; ".join(parts)
