"""Shared fixtures: one real local SparkSession for the whole test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from votelake.config import Settings, SparkSettings, load_settings
from votelake.session import build_spark

# The repository checkout (tests import it as ``from conftest import REPO``); its
# sibling ``shared/data`` holds the real voter files of the opt-in tests.
REPO = Path(__file__).resolve().parents[1]

# pandas-on-Spark warns at import unless this is set before Spark starts.
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")

# Each setting is tuned for tiny test data; the reason is beside it.
TEST_SPARK = SparkSettings(
    master="local[2]",  # the CI machine has 2 cores
    app_name="votelake-tests",
    shuffle_partitions=2,  # default 200 makes every tiny shuffle take seconds
    # Larger states (the opt-in resolution test at 200k voters) need more.
    driver_memory=os.environ.get("VOTELAKE_TEST_DRIVER_MEMORY", "3g"),
    conf={
        "spark.ui.enabled": "false",  # no UI port to bind, faster start
        "spark.ui.showConsoleProgress": "false",  # keeps pytest output readable
        "spark.sql.adaptive.coalescePartitions.initialPartitionNum": "2",
        "spark.default.parallelism": "2",  # tiny inputs need no more tasks
        # JIT-compile Spark's large generated methods too; parallel GC suits short runs
        "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods -XX:+UseParallelGC",
    },
)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """A real local SparkSession shared by every test: delta-spark, and a Hive
    metastore of its own (Derby admits one process, and xdist runs two)."""
    session = build_spark(TEST_SPARK, tmp_path_factory.mktemp("metastore"))
    yield session
    session.stop()


def synthetic_state_settings(root: Path, voters: int, *overrides: str) -> Settings:
    """Settings for a synthetic state generated and processed entirely under ``root``.

    Args:
        root: a temporary folder (synth output, landing, lakehouse, MLflow store).
        voters: persons in the state.
        *overrides: further ``key=value`` overrides.

    Returns:
        The validated settings (environment variables ignored).
    """
    return load_settings(
        None,
        [
            f"synth.voters={voters}",
            f"synth.out={root / 'synth'}",
            f"landing={root / 'synth' / 'landing'}",
            f"storage.lakehouse={root / 'lakehouse'}",
            f"quality.results_dir={root / 'quality'}",
            f"storage.metastore={root / 'metastore'}",
            f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
            f"mlflow.artifact_root={root / 'mlartifacts'}",
            *overrides,
        ],
        environ={},
    )
