"""Hand-off files a person and a field tool can use: one file per turf, named for it, with a manifest.

Spark writes a universe's rows partitioned by county and precinct, one part
file per turf named ``part-00000-<uuid>.c000.csv``. Canvassing and texting
tools import files by name, and the people loading them read names, so each
part file is moved to ``<universe>_<county>_<precinct>_<build>.csv`` beside a
``_manifest.csv`` listing every file with its turf, voter count and SHA-256
(its leading underscore keeps Spark, pandas-on-Spark and Hadoop readers of the
folder from taking it for data, as with ``_SUCCESS``).
Spark has no setting for output file names, hence these few file moves.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa

MANIFEST = "_manifest.csv"
# The copies of county_id and precinct that Spark partitions by (the originals stay in the files).
TURF_COLUMNS = ("turf_county", "turf_precinct")
MANIFEST_COLUMNS = ("file", "universe", "build_id", "county_id", "precinct", "voters", "sha256")
# How Spark names the folder of a null partition value.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
# File names keep letters, digits, dots and dashes; anything else (spaces, slashes) becomes a dash.
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def file_name(universe: str, county_id: str, precinct: str, build_id: str, fmt: str) -> str:
    """``<universe>_<county>_<precinct>_<build>.<fmt>``, each part made safe for a file name.

    Args:
        universe: the universe's name.
        county_id: the turf's county.
        precinct: the turf's precinct.
        build_id: the universe build.
        fmt: ``csv`` or ``parquet``.

    Returns:
        The file name.
    """
    parts = (_UNSAFE.sub("-", str(p)).strip("-") or "none" for p in (universe, county_id, precinct, build_id))
    return "_".join(parts) + f".{fmt}"


def name_turf_files(written: Path, folder: Path, universe: str, build_id: str, fmt: str) -> list[dict]:
    """Move Spark's per-turf part files into ``folder`` under their turf's name, and write the manifest.

    Args:
        written: what Spark wrote, partitioned by :data:`TURF_COLUMNS`
            with one part file per turf (it is removed afterwards).
        folder: the hand-off folder.
        universe: the universe's name.
        build_id: the universe build.
        fmt: ``csv`` or ``parquet``.

    Returns:
        The manifest's rows.

    Raises:
        ValueError: a turf has more than one part file (its rows would be split).
    """
    rows = []
    for turf in sorted(p for p in written.glob(f"{TURF_COLUMNS[0]}=*/{TURF_COLUMNS[1]}=*") if p.is_dir()):
        parts = sorted(turf.glob(f"part-*.{fmt}"))
        if len(parts) != 1:
            raise ValueError(f"{turf}: expected one part file per turf, found {len(parts)}")
        county, precinct = (_partition_value(p.name) for p in (turf.parent, turf))
        name = file_name(universe, county, precinct, build_id, fmt)
        if (folder / name).exists():
            # Two precincts whose names differ only in unsafe characters.
            name = file_name(universe, county, f"{precinct}-{len(rows)}", build_id, fmt)
        parts[0].replace(folder / name)
        rows.append({"file": name, "universe": universe, "build_id": build_id, "county_id": county,
                     "precinct": precinct})
    shutil.rmtree(written)
    return write_manifest(folder, rows)


def write_manifest(folder: Path, rows: list[dict] | None = None) -> list[dict]:
    """Write (or refresh) ``folder/_manifest.csv``: each file's turf, voters and SHA-256.

    Args:
        folder: a hand-off folder.
        rows: each file's ``file, universe, build_id, county_id, precinct``
            (default: the current manifest's, e.g. after files were rewritten).

    Returns:
        The manifest's rows, with ``voters`` and ``sha256`` counted from the files.
    """
    rows = read_manifest(folder) if rows is None else rows
    for row in rows:
        path = folder / row["file"]
        data = path.read_bytes()
        row["voters"] = _count_rows(path, data)
        row["sha256"] = hashlib.sha256(data).hexdigest()
    tmp = folder / f".{MANIFEST}.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(folder / MANIFEST)
    return rows


def read_manifest(folder: Path) -> list[dict]:
    """A hand-off folder's manifest rows (empty when it has none)."""
    path = folder / MANIFEST
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _partition_value(directory: str) -> str:
    value = unquote(directory.split("=", 1)[1])
    return "" if value == NULL_PARTITION else value


def _count_rows(path: Path, data: bytes) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
    return max(sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"), newline=""))) - 1, 0)  # less the header
