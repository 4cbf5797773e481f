"""Landing-zone files: listing, fingerprints and layout checks, driver-side.

Uses pyarrow's filesystem layer, so the landing zone may be a local folder or
an object-store URI, without touching Spark's JVM.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import re
from dataclasses import dataclass

import pyarrow.fs as pafs

from votelake.layouts import Layout, LayoutError, header_difference
from votelake.locations import filesystem as _fs
from votelake.locations import is_uri, join

_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
_CHUNK = 1 << 22


@dataclass(frozen=True)
class LandingFile:
    """One landing file: where it is and what identifies its content."""

    uri: str
    size: int
    mtime_ns: int


def list_files(location: str, pattern: str = "*") -> list[LandingFile]:
    """Data files under a landing folder (or the file itself), sorted.

    Hidden and marker files (``.``/``_`` prefixes, ``.crc``) are skipped.

    Args:
        location: a folder or file path or URI.
        pattern: a glob the file *name* must match (e.g. ``???_H_*.txt``).

    Returns:
        The files; empty when the location does not exist.
    """
    fs, root = _fs(location)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return []
    infos = [info] if info.type == pafs.FileType.File else fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = []
    for info in infos:
        name = info.base_name
        if info.type != pafs.FileType.File or name.startswith((".", "_")) or name.endswith(".crc"):
            continue
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        files.append(LandingFile(uri=_named_as(location, root, info.path), size=info.size,
                                 mtime_ns=info.mtime_ns or 0))
    return sorted(files, key=lambda f: f.uri)


def _named_as(location: str, root: str, path: str) -> str:
    """A listed file named as its location was: under a URI, the URI's scheme and host with the file's path.

    pyarrow names a file on a store by its path in the store (``bucket/key``),
    which Spark would read as a local path.
    """
    if not is_uri(location):
        return path
    rest = path[len(root):].strip("/") if path.startswith(root) else path
    return join(location, rest) if rest else location


def listing_key(uri: str) -> str:
    """A listed file's uri without scheme, host marker or leading slashes: how checks match it to Spark's URI."""
    return (uri.split(":", 1)[1] if is_uri(uri) else uri).lstrip("/")


def legacy_fingerprint(files: list[LandingFile]) -> str:
    """The delivery id of loads before content ids: a hash of the files' names, sizes and times.

    Only read to recognise a delivery such a load already holds, so that an
    upgrade does not load it a second time.
    """
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.uri}|{f.size}|{f.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _compression(path: str) -> str | None:
    return next((c for ext, c in _COMPRESSION.items() if path.endswith(ext)), None)


def _unreadable(location: str, compression: str | None, exc: Exception) -> LayoutError:
    what = f"the {compression} stream is truncated or corrupt" if compression else "the file cannot be read"
    return LayoutError(f"{location}: {what} ({exc}); nothing of it was loaded: ask for the file again")


@dataclass(frozen=True)
class Content:
    """What :func:`content_id` learns of a file in its one pass."""

    id: str
    # Whether the (decompressed) text ends with a line break; a file cut short usually does not.
    terminated: bool


def content_id(file: LandingFile) -> Content:
    """What identifies a file's content under any name: a SHA-256 of its bytes and its size.

    A compressed file is also read through decompressed once, so a truncated
    or corrupt stream fails here, naming the file, before anything is loaded.

    Args:
        file: the landing file.

    Returns:
        The id, ``<first 32 hex digits of the SHA-256>.<size in bytes>`` (no
        ``-``: it ends a load id), and whether the text ends with a line break.

    Raises:
        LayoutError: the compressed stream cannot be read to its end.
    """
    fs, path = _fs(file.uri)
    digest = hashlib.sha256()
    last = _read_through(fs, path, None, digest.update)
    compression = _compression(path)
    if compression:
        try:
            last = _read_through(fs, path, compression, lambda _: None)
        except (OSError, ValueError) as exc:
            raise _unreadable(file.uri, compression, exc) from None
    return Content(f"{digest.hexdigest()[:32]}.{file.size}", last in (b"\n", b"\r"))


def _read_through(fs: pafs.FileSystem, path: str, compression: str | None, each) -> bytes:
    """Read a file to its end in chunks, handing each to ``each``; return its last byte."""
    last = b""
    with fs.open_input_stream(path, compression=compression) as stream:
        while chunk := stream.read(_CHUNK):
            each(chunk)
            last = chunk[-1:]
    return last


def first_line(location: str, encoding: str) -> str | None:
    """Read the first line of a (possibly compressed) text file.

    Args:
        location: the file path or URI.
        encoding: the file's text encoding.

    Returns:
        The line without its line ending; ``None`` for an empty file.

    Raises:
        LayoutError: the line is not valid in ``encoding``.
    """
    fs, path = _fs(location)
    compression = _compression(path)
    head = b""
    try:
        with fs.open_input_stream(path, compression=compression) as stream:
            while b"\n" not in head:
                chunk = stream.read(65536)
                if not chunk:
                    break
                head += chunk
    except (OSError, ValueError) as exc:
        raise _unreadable(location, compression, exc) from None
    if not head.strip(b"\r\n"):
        return None
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return line.decode(encoding)
    except UnicodeDecodeError as exc:
        raise LayoutError(
            f"{location}: the first line is not valid {encoding} ({exc.reason} at byte {exc.start}); "
            "is the file in another encoding than its layout says?"
        ) from None


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter))


def _delimiter_hint(layout: Layout, fields: list[str]) -> str:
    if len(fields) > 1:
        return ""
    seen = [d for d in ("\t", ",", "|", ";") if d != layout.delimiter and d in fields[0]]
    return f" (wrong delimiter? the layout says {layout.delimiter!r}, the line contains {seen[0]!r})" if seen else ""


def check_files(layout: Layout, files: list[LandingFile]) -> tuple[str, ...]:
    """Fail before anything is written if any file does not match its layout.

    A header row must name the layout's columns in order (for a layout with
    per-election columns, followed only by columns matching its pattern); a
    file without header must have the layout's column count on its first line.
    Empty files and first lines not valid in the layout's encoding fail too.

    Args:
        layout: the expected layout.
        files: the files to check.

    Returns:
        The per-election column names (empty unless the layout has
        ``wide_history``); every file must have the same ones.

    Raises:
        LayoutError: naming each mismatching file and how it differs.
    """
    problems: list[str] = []
    wide_sets: set[tuple[str, ...]] = set()
    for f in files:
        try:
            line = first_line(f.uri, layout.encoding)
        except LayoutError as exc:
            problems.append(str(exc))
            continue
        if line is None:
            problems.append(f"{f.uri}: the file is empty")
            continue
        if layout.format != "delimited":
            continue
        fields = _split(line, layout.delimiter)
        if not layout.header:
            if len(fields) != len(layout.columns):
                problems.append(
                    f"{f.uri}: layout {layout.name} expects {len(layout.columns)} columns, "
                    f"the first line has {len(fields)}{_delimiter_hint(layout, fields)}"
                )
            continue
        fixed, rest = fields, []
        if layout.wide_history is not None:
            fixed, rest = fields[: len(layout.columns)], fields[len(layout.columns):]
        diff = header_difference(layout, fixed)
        pattern = re.compile(layout.wide_history.pattern) if layout.wide_history else None
        odd = [c for c in rest if pattern is not None and not pattern.match(c.strip())]
        if odd:
            extra = f"columns after the fixed ones that are not election columns: {', '.join(odd)}"
            diff = f"{diff}; {extra}" if diff else f"layout {layout.name}: {extra}"
        if diff:
            problems.append(f"{f.uri}: {diff}{_delimiter_hint(layout, fields)}")
        wide_sets.add(tuple(c.strip() for c in rest))
    if problems:
        raise LayoutError("landing files do not match their layout:\n  " + "\n  ".join(problems))
    if len(wide_sets) > 1:
        raise LayoutError(f"files of layout {layout.name} list different election columns; load them separately")
    return next(iter(wide_sets), ())
