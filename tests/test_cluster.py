"""The whole pipeline on a real 2-worker standalone cluster (infra/cluster-pipeline.sh).

Slow (10-20 minutes on 2 cores): packs the environment when its archive is
absent, starts a master and two workers on free ports, runs every job with its
own spark-submit and checks that the executors ran the shipped Python.
Run it with ``pytest -m slow tests/test_cluster.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_pipeline_runs_on_a_two_worker_cluster_with_the_shipped_environment():
    done = subprocess.run(
        ["bash", str(REPO / "infra" / "cluster-pipeline.sh"), "3000"],
        cwd=REPO, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    print(done.stdout)
    assert done.returncode == 0, f"{done.stdout[-5000:]}\n{done.stderr[-3000:]}"
    # Every job and the check are in the summary, each with exit 0.
    for step in ("ingest", "build", "train", "score", "segment", "universes", "allocate", "metrics", "maintain",
                 "check"):
        assert any(line.startswith(step) and "exit 0 " in line for line in done.stdout.splitlines()), step
    assert "cluster check: OK" in done.stdout
    assert "tasks ran in 2 executor folder(s)" in done.stdout
