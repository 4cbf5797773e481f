"""Locations: a local folder stays a Path, a URI stays the string it was written as."""

from __future__ import annotations

from pathlib import Path

import pytest

from votelake import locations
from votelake.landing import list_files, listing_key


@pytest.mark.parametrize("base, parts, joined", [
    ("s3a://bucket/lake/", ("silver", "persons"), "s3a://bucket/lake/silver/persons"),
    ("hdfs://namenode:8020/lake", ("gold",), "hdfs://namenode:8020/lake/gold"),
    ("file:///tmp/lake", ("_private/erasure.salt",), "file:///tmp/lake/_private/erasure.salt"),
    ("s3a://bucket/landing", ("s3a://other/list.csv",), "s3a://other/list.csv"),  # a URI part replaces
    (Path("/data/lake"), ("silver",), Path("/data/lake/silver")),
])
def test_join_keeps_a_uri_a_uri_and_a_path_a_path(base, parts, joined):
    assert locations.join(base, *parts) == joined


def test_a_file_uri_names_a_folder_of_this_machine_and_a_store_does_not():
    assert locations.local_path("file:///tmp/a%20b") == Path("/tmp/a b") == locations.local_path("file:/tmp/a%20b")
    assert locations.as_location("file:///tmp/x") == "file:/tmp/x" and locations.as_location("x") == Path("x")
    assert locations.as_location("s3a://bucket/x") == "s3a://bucket/x" and not locations.is_uri("C:/data")
    assert locations.local_path("/tmp/x") == Path("/tmp/x")
    assert locations.local_path("s3a://bucket/x") is None and locations.local_path("file://host/x") is None


def test_a_landing_uri_lists_files_by_uri_and_a_folder_is_removed_through_it(tmp_path: Path):
    landing = tmp_path / "landing" / "ncvoter" / "snapshot_20260901"
    landing.mkdir(parents=True)
    (landing / "ncvoter_1.txt").write_text("a\tb\n")
    (landing / "_SUCCESS").write_text("")
    uri = f"file://{tmp_path}/landing/ncvoter"
    listed = list_files(uri)
    # Spark reads what the listing names, so it keeps the scheme the config gave.
    assert [f.uri for f in listed] == [f"{uri}/snapshot_20260901/ncvoter_1.txt"]
    assert listing_key(listed[0].uri) == str(landing / "ncvoter_1.txt").lstrip("/")
    assert locations.kind(listed[0].uri) == "file" and locations.kind(uri) == "dir"
    assert locations.read_bytes(listed[0].uri) == b"a\tb\n"
    locations.remove_tree(f"file://{tmp_path}/landing")
    assert not (tmp_path / "landing").exists() and locations.kind(uri) == "missing"
