"""The gold tables over JDBC: Spark's Thrift server (HiveServer2 protocol) with
Delta and the project's metastore, queried with the wheel's beeline.

Slow: the served lakehouse is made by a whole (tiny) pipeline run first.
Run it with ``pytest -m slow tests/test_thrift.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyspark
import pytest
from deltalake import DeltaTable

from conftest import REPO, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def jdbc_url(served_lakehouse, tmp_path_factory):
    """A Thrift JDBC server on a free port over the served lakehouse's metastore; stopped afterwards."""
    port = free_port()
    env = {**os.environ, "PYTHON": sys.executable,
           "VOTELAKE_SERVER_DIR": str(tmp_path_factory.mktemp("thrift-server"))}
    script = str(REPO / "infra" / "thrift-server.sh")
    started = subprocess.run(["bash", script, "start", str(served_lakehouse["metastore"]), str(port)],
                             env=env, capture_output=True, text=True, timeout=400)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield f"jdbc:hive2://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=120)


def test_count_of_gold_scores_over_jdbc_matches_the_delta_folder(jdbc_url, served_lakehouse):
    beeline = Path(pyspark.__file__).parent / "bin" / "beeline"
    done = subprocess.run(
        [str(beeline), "-u", jdbc_url, "-n", "votelake", "--silent=true", "--outputformat=csv2",
         "-e", "SELECT count(*) AS voter_rows FROM gold.voter_scores"],
        env={**os.environ, "SPARK_HOME": str(beeline.parent.parent)},
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # csv2 output: the header (after beeline's prompt, which --silent keeps), then the value.
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    assert lines[-2].endswith("voter_rows"), done.stdout
    on_disk = DeltaTable(str(served_lakehouse["lakehouse"] / "gold" / "voter_scores")).to_pyarrow_dataset().count_rows()
    assert int(lines[-1]) == on_disk > 0
