"""Every delivered file loads exactly once: by its content, under any name, in any order, whatever runs at once."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from test_ingest import GOOD_ROWS, _lines, _setup
from votelake.jobs import ingest
from votelake.lakehouse import Lakehouse
from votelake.layouts import LayoutError

VOTELAKE = Path(sys.executable).parent / "votelake"
WEEK_2 = ["AA1\tSMITH\tJO\tA\tDEM\t01/02/2010\t1970", "AA2\tLEE\tKIM\tA\tREP\t03/04/2012\t1980",
          "AA3\tROE\tAL\tA\tUNA\t05/06/2024\t2001"]


def _bronze(spark, settings):
    return Lakehouse.open(spark, settings).read("bronze.t_voters")


def _per_file(spark, settings):
    """``_source_file`` name, ``n`` rows: how often each delivered file's rows are in bronze."""
    return (_bronze(spark, settings).select(F.substring_index("_source_file", "/", -1).alias("file"))
            .groupBy("file").agg(F.count("*").alias("n")))


def test_a_redelivery_under_another_name_is_skipped_and_a_new_snapshot_loads_alone(spark, tmp_path):
    settings = _setup(tmp_path, {"voters_20240105.txt": _lines(*GOOD_ROWS)}, snapshot_date_pattern=r"voters_(\d{8})")
    first = ingest.run(spark, settings)["t_voters"]
    assert first["bronze"] == 2
    landing = Path(settings.landing) / "voters"
    # The same bytes again under a new name, and next week's snapshot beside them.
    (landing / "resent_copy.txt").write_bytes((landing / "voters_20240105.txt").read_bytes())
    (landing / "voters_20240112.txt").write_bytes(_lines(*WEEK_2))
    second = ingest.run(spark, settings)["t_voters"]
    assert second["skipped_files"] == {"voters_20240105.txt": "already loaded", "resent_copy.txt": "already loaded"}
    assert list(second["files"]) == ["voters_20240112.txt"] and second["bronze"] == 3
    assertDataFrameEqual(_per_file(spark, settings), spark.createDataFrame(
        [("voters_20240105.txt", 2), ("voters_20240112.txt", 3)], "file string, n bigint"))
    # Both snapshots are there, each once, each dated by its name.
    dates = _bronze(spark, settings).groupBy("_snapshot_date").count().orderBy("_snapshot_date").collect()
    assert [(str(r[0]), r[1]) for r in dates] == [("2024-01-05", 2), ("2024-01-12", 3)]
    third = ingest.run(spark, settings)["t_voters"]
    assert third["skipped"] == "already loaded" and _bronze(spark, settings).count() == 5


def test_two_files_with_the_same_bytes_in_one_delivery_load_once(spark, tmp_path):
    settings = _setup(tmp_path, {"a.txt": _lines(*GOOD_ROWS), "b.txt": _lines(*GOOD_ROWS)})
    report = ingest.run(spark, settings)["t_voters"]
    assert report["skipped_files"] == {"b.txt": "same content as a.txt"} and report["bronze"] == 2
    assert _bronze(spark, settings).count() == 2


def test_a_run_that_started_before_the_last_commit_still_loads_its_new_files(spark, tmp_path):
    """Run versions order a job's own retries; they never decide whether a delivery loads."""
    settings = _setup(tmp_path, {"voters_20240105.txt": _lines(*GOOD_ROWS)})
    later = settings.model_copy(update={"run": settings.run.model_copy(update={"version": 2_000})})
    assert ingest.run(spark, later)["t_voters"]["bronze"] == 2
    (Path(settings.landing) / "voters" / "voters_20240112.txt").write_bytes(_lines(*WEEK_2))
    earlier = settings.model_copy(update={"run": settings.run.model_copy(update={"version": 1_000})})
    report = ingest.run(spark, earlier)["t_voters"]
    assert list(report["files"]) == ["voters_20240112.txt"] and report["bronze"] == 3
    assert _bronze(spark, settings).count() == 5


@pytest.mark.parametrize("writers", [2, 4])
def test_simultaneous_ingests_load_each_file_exactly_once(spark, tmp_path, writers):
    rows = [f"AB{i}\tNAME{i}\tX\tA\tDEM\t01/02/2010\t1970" for i in range(200)]
    settings = _setup(tmp_path, {"voters_20240105.txt": _lines(*rows[:120]), "voters_20240112.txt": _lines(*rows)})
    reports, errors = [], []
    start = threading.Barrier(writers)

    def one() -> None:
        start.wait()
        try:
            reports.append(ingest.run(spark, settings)["t_voters"])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [str(e)[:300] for e in errors]
    assertDataFrameEqual(_per_file(spark, settings), spark.createDataFrame(
        [("voters_20240105.txt", 120), ("voters_20240112.txt", 200)], "file string, n bigint"))
    assert _bronze(spark, settings).select("voter_id", "_source_file", "_line").distinct().count() == 320
    # Every writer either skipped the files or loaded them; a writer that lost a
    # race replaced the winner's rows (the same rows) rather than adding to them.
    loaded = [r for r in reports if "skipped" not in r]
    assert loaded and all(r["bronze"] == 320 for r in loaded)
    assert sum(r["bronze"] - r["replaced_rows"] for r in loaded) == 320


def test_two_ingest_commands_at_once_both_exit_zero_and_load_once(spark, tmp_path):
    settings = _setup(tmp_path, {"voters_20240105.txt": _lines(*GOOD_ROWS)})
    conf = yaml.safe_load((tmp_path / "conf.yaml").read_text())
    conf["spark"] = {"master": "local[1]", "driver_memory": "1g", "shuffle_partitions": 1,
                     "conf": {"spark.ui.enabled": "false"}}
    conf["storage"]["metastore"] = None
    (tmp_path / "conf.yaml").write_text(yaml.safe_dump(conf))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTELAKE__")}
    runs = [subprocess.Popen([str(VOTELAKE), "run", "ingest", "--conf", str(tmp_path / "conf.yaml")], cwd=tmp_path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=600), p.stderr.read()) for p in runs]
    assert [code for code, _ in outcomes] == [0, 0], [err[-3000:] for _, err in outcomes]
    assert _bronze(spark, settings).count() == 2


def test_a_truncated_gzip_fails_naming_the_file_before_anything_is_written(spark, tmp_path):
    whole = gzip.compress(_lines(*[f"AB{i}\tNAME{i}\tX\tA\tDEM\t01/02/2010\t1970" for i in range(2000)]))
    settings = _setup(tmp_path, {"good.txt": _lines(*GOOD_ROWS), "voters_cut.txt.gz": whole[: len(whole) // 2]})
    with pytest.raises(LayoutError) as err:
        ingest.run(spark, settings)
    assert "voters_cut.txt.gz" in str(err.value) and "truncated or corrupt" in str(err.value)
    assert not (Path(settings.storage.lakehouse) / "bronze").exists()
