"""The gold tables over Spark Connect: the wheel's Connect server with Delta and
the project's metastore, and a client session from the project's factory.

Slow: the served lakehouse is made by a whole (tiny) pipeline run first.
Run it with ``pytest -m slow tests/test_connect.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from deltalake import DeltaTable

from conftest import REPO, free_port
from votelake.config import SparkSettings
from votelake.session import build_spark

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def connect_url(served_lakehouse, tmp_path_factory):
    """A Spark Connect server on a free port over the served lakehouse's metastore; stopped afterwards."""
    port = free_port()
    env = {**os.environ, "PYTHON": sys.executable,
           "VOTELAKE_SERVER_DIR": str(tmp_path_factory.mktemp("connect-server"))}
    script = str(REPO / "infra" / "connect-server.sh")
    started = subprocess.run(["bash", script, "start", str(served_lakehouse["metastore"]), str(port)],
                             env=env, capture_output=True, text=True, timeout=400)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"sc://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=120)


def test_gold_scores_read_over_connect_match_the_delta_folder(connect_url, served_lakehouse):
    spark = build_spark(SparkSettings(remote=connect_url))
    try:
        rows = spark.table("gold.voter_scores").count()
        history = spark.sql("DESCRIBE HISTORY gold.voter_scores").collect()
    finally:
        spark.stop()
    # deltalake reads the table's folder without Spark: an independent count.
    on_disk = DeltaTable(str(served_lakehouse["lakehouse"] / "gold" / "voter_scores")).to_pyarrow_dataset().count_rows()
    assert rows == on_disk > 0
    assert len(history) >= 1
    assert {"version", "operation"} <= set(history[0].asDict())


# Every job first asks DeltaTable.isDeltaTable, which delta-spark's Python API sends
# over Connect as a Delta extension relation; the wheel's server has no handler for
# it without the Delta Connect server plugin ("No handler found for extension").
# Strict: the day this passes, docs/cluster.md and this mark must change.
@pytest.mark.xfail(strict=True, reason="Delta Connect server plugin not loaded (docs/cluster.md)")
@pytest.mark.parametrize("job", ["score", "universes"])
def test_job_runs_over_connect(connect_url, served_lakehouse, job):
    done = subprocess.run(
        [sys.executable, "-m", "votelake.cli", "run", job, "--conf", str(served_lakehouse["conf"]),
         "--set", f"spark.remote={connect_url}"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
