"""Where data lives: a local folder, or a URI of a file system every node reaches.

A cluster keeps its lakehouse and landing zone on shared storage
(``s3a://bucket/lake``, ``abfss://...``, ``hdfs:///...``, ``file:///...``).
:class:`pathlib.Path` folds ``s3a://bucket`` into ``s3a:/bucket``, so a URI is
kept as a string (one without a host as Hadoop writes it, see :func:`as_location`)
and joined with ``/``; a local folder stays a :class:`~pathlib.Path`. Spark and delta-rs take either as text.
Driver-side file access (landing listings, the erasure salt, scratch folders)
goes through pyarrow's file systems, which never touch Spark's JVM.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Union
from urllib.parse import unquote

from pydantic import BeforeValidator

if TYPE_CHECKING:
    import pyarrow.fs as pafs

Location = Union[str, Path]

# Hadoop's names for the stores pyarrow knows by another: s3a:// and s3n:// are S3 to pyarrow.
_PYARROW_SCHEMES = {"s3a": "s3", "s3n": "s3"}


# A scheme of two or more letters, then ":/" (a one-letter scheme would be a Windows drive).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_uri(location: Location) -> bool:
    """True for ``scheme://...`` and ``scheme:/...``, False for a local path."""
    return _URI.match(str(location)) is not None


def local_path(location: Location) -> Path | None:
    """The folder of this machine a location names: a path, or a ``file:`` URI's path; None on a store.

    Args:
        location: a local path or a URI.
    """
    text = str(location)
    if not is_uri(text):
        return Path(text)
    scheme, rest = text.split(":", 1)
    if scheme != "file" or (rest.startswith("//") and not rest.startswith("///")):
        return None  # a store's, or file://host/a, another host's
    return Path(unquote("/" + rest.lstrip("/")))


def as_location(value: Location) -> Location:
    """A URI as a string, anything else as a :class:`~pathlib.Path`.

    A URI without a host (``file:///a``, ``hdfs:///a``) is written as Hadoop
    names it (``file:/a``): Delta compares the location a table is created at
    with Hadoop's name for it, and refuses the two spellings as two places.

    Args:
        value: a path or URI, as configured.

    Returns:
        The string (URI) or Path (local).
    """
    text = str(value)
    if not is_uri(text):
        return Path(text)
    scheme, rest = text.split(":", 1)
    return f"{scheme}:{rest[2:]}" if rest.startswith("///") else text


# A configuration field that holds a location (a URI stays a string; see :func:`as_location`).
LocationSetting = Annotated[Union[str, Path], BeforeValidator(as_location)]


def join(location: Location, *parts: str | Path) -> Location:
    """``location / part / ...``: with ``/`` for a URI, as a Path for a local folder.

    Args:
        location: the base folder or URI.
        *parts: relative parts (an absolute local part replaces the base, as with Path).

    Returns:
        The joined URI (str) or Path.
    """
    if not is_uri(location):
        return Path(location).joinpath(*parts)
    text = str(location).rstrip("/")
    for part in parts:
        part = str(part)
        text = part if is_uri(part) else f"{text}/{part.strip('/')}"
    return text


def filesystem(location: Location) -> tuple[pafs.FileSystem, str]:
    """pyarrow's file system for a location, and the path within it.

    Args:
        location: a local path or a URI (``s3a://`` and ``s3n://`` are read as ``s3://``).

    Returns:
        ``(file system, path)``.
    """
    import pyarrow.fs as pafs  # here: configuration imports this module, and needs no pyarrow

    text = str(location)
    if not is_uri(text):
        return pafs.LocalFileSystem(), text
    scheme, rest = text.split(":", 1)
    return pafs.FileSystem.from_uri(f"{_PYARROW_SCHEMES.get(scheme, scheme)}:{rest}")


def kind(location: Location) -> str:
    """What is at a location: ``"file"``, ``"dir"`` or ``"missing"``.

    Args:
        location: a local path or a URI.
    """
    import pyarrow.fs as pafs

    fs, path = filesystem(location)
    found = fs.get_file_info(path).type
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(found, "missing")


def read_bytes(location: Location) -> bytes:
    """A whole file's bytes (local or URI)."""
    fs, path = filesystem(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def remove_tree(location: Location) -> None:
    """Delete a folder and everything under it, if it exists (local folder or URI).

    Args:
        location: the folder.
    """
    if not is_uri(location):
        shutil.rmtree(location, ignore_errors=True)
        return
    import pyarrow.fs as pafs

    fs, path = filesystem(location)  # one client for the look and the delete
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
