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
    driver_memory=os.environ.get("VOTELAKE_TEST_DRIVER_MEMORY", "4g"),
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



def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the kernel picks it), so servers of parallel runs never collide."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def served_lakehouse(tmp_path_factory) -> dict[str, Path]:
    """A tiny lakehouse with every gold table, made by ``votelake synth`` and ``votelake pipeline``
    in subprocesses, for servers (Spark Connect, Thrift) to serve afterwards.

    The pipeline's process has exited when this returns: Derby admits one JVM
    per metastore, and the server under test is the next one.

    Returns:
        ``conf`` (the YAML config), ``metastore``, ``lakehouse`` and ``root``.
    """
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("served")
    conf = root / "conf.yaml"
    import yaml

    # conf/local.yaml (its universes, allocation and rules, so every job has work
    # to do) with every path under root, a tiny state and a tiny model.
    settings = yaml.safe_load((REPO / "conf" / "local.yaml").read_text())
    settings["spark"].update(master="local[2]", shuffle_partitions=2, driver_memory="2g")
    settings["spark"].setdefault("conf", {}).update({"spark.ui.enabled": "false",
                                                     "spark.ui.showConsoleProgress": "false"})
    settings["storage"].update(lakehouse=str(root / "lakehouse"), metastore=str(root / "metastore"))
    settings.setdefault("mlflow", {}).update(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                                             artifact_root=str(root / "mlartifacts"))
    settings.setdefault("synth", {}).update(voters=2000, out=str(root / "synth"), partitions=2)
    settings["landing"] = str(root / "synth" / "landing")
    settings.setdefault("quality", {})["results_dir"] = str(root / "quality")
    settings["universes"]["exports"] = str(root / "exports")
    settings.setdefault("model", {}).update(gbt_max_iter=5, xgb_n_estimators=20, bootstrap=50, uplift_folds=2)
    conf.write_text(yaml.safe_dump(settings, sort_keys=False))
    for command in (["synth"], ["pipeline"]):
        done = subprocess.run([sys.executable, "-m", "votelake.cli", *command, "--conf", str(conf)],
                              cwd=REPO, capture_output=True, text=True, timeout=3600)
        assert done.returncode == 0, f"votelake {command[0]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return {"root": root, "conf": conf, "metastore": root / "metastore", "lakehouse": root / "lakehouse"}
