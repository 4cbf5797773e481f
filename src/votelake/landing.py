"""Landing-zone files: listing, fingerprints and layout checks, driver-side.

Uses pyarrow's filesystem layer, so the landing zone may be a local folder or
an object-store URI, without touching Spark's JVM.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow.fs as pafs

from votelake.layouts import Layout, LayoutError, header_difference

_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


@dataclass(frozen=True)
class LandingFile:
    """One landing file: where it is and what identifies its content."""

    uri: str
    size: int
    mtime_ns: int


def _fs(location: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)


def list_files(location: str) -> list[LandingFile]:
    """Data files under a landing folder, sorted; hidden and marker files skipped.

    Args:
        location: a folder path or URI.

    Returns:
        The files; empty when the folder does not exist.
    """
    fs, root = _fs(location)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = []
    for info in infos:
        name = info.base_name
        if info.type != pafs.FileType.File or name.startswith((".", "_")) or name.endswith(".crc"):
            continue
        uri = info.path if "://" in location else info.path
        files.append(LandingFile(uri=uri, size=info.size, mtime_ns=info.mtime_ns or 0))
    return sorted(files, key=lambda f: f.uri)


def fingerprint(files: list[LandingFile]) -> str:
    """A short hash of the files' names, sizes and modification times.

    The same delivery always has the same fingerprint, so a re-load is detected.
    """
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.uri}|{f.size}|{f.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def first_line(location: str, encoding: str) -> str:
    """Read the first line of a (possibly compressed) text file.

    Args:
        location: the file path or URI.
        encoding: the file's text encoding.

    Returns:
        The line without its line ending.
    """
    fs, path = _fs(location)
    compression = next((c for ext, c in _COMPRESSION.items() if path.endswith(ext)), None)
    with fs.open_input_stream(path, compression=compression) as stream:
        head = b""
        while b"\n" not in head:
            chunk = stream.read(65536)
            if not chunk:
                break
            head += chunk
    return head.split(b"\n", 1)[0].decode(encoding).rstrip("\r")


def check_headers(layout: Layout, files: list[LandingFile]) -> None:
    """Fail before anything is written if any file's header differs from its layout.

    Args:
        layout: the expected layout (must have a header row).
        files: the files to check.

    Raises:
        LayoutError: naming each mismatching file and how it differs.
    """
    problems = []
    for f in files:
        header = first_line(f.uri, layout.encoding).split(layout.delimiter)
        diff = header_difference(layout, header)
        if diff:
            problems.append(f"{f.uri}: {diff}")
    if problems:
        raise LayoutError("landing files do not match their layout:\n  " + "\n  ".join(problems))
