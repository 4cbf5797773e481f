"""Shared fixtures: one real local SparkSession for the whole test run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import deltalake
import pytest
import yaml

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
        # Adaptive execution re-plans after every shuffle stage, worth it for real data; on a few thousand
        # rows it is pure overhead (a 6,000-voter pipeline runs 20% faster without it). The notebook, the
        # concurrent ingests and the lakehouse the Connect and Thrift tests serve keep the product's setting.
        "spark.sql.adaptive.enabled": "false",
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


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def headless_dom(url: str, user_dir: Path, *, wait_ms: int = 10_000, offline: bool = True) -> str:
    """The page's DOM after its scripts ran, as headless Chromium sees it.

    Args:
        url: the page (``file://`` or ``http://127.0.0.1``).
        user_dir: an empty folder for the browser's profile (two test workers
            share no profile).
        wait_ms: virtual time the page's scripts get before the DOM is taken.
        offline: resolve no host name, so nothing can load from the network.

    Returns:
        The serialized DOM.
    """
    binary = os.environ.get("CHROME") or next((b for b in BROWSERS if shutil.which(b)), None)
    assert binary, "headless Chromium is needed (apt-get install chromium, or set CHROME)"
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={user_dir}", f"--virtual-time-budget={wait_ms}", "--dump-dom", url]
    if offline:
        args.insert(1, "--host-resolver-rules=MAP * ~NOTFOUND")
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="session")
def served_lakehouse(tmp_path_factory) -> dict[str, Path]:
    """A tiny lakehouse with every gold table, made by ``votelake synth`` and ``votelake pipeline``
    in subprocesses, for servers (Spark Connect, Thrift) to serve afterwards.

    The pipeline's process has exited when this returns: Derby admits one JVM
    per metastore, and the server under test is the next one.

    Returns:
        ``conf`` (the YAML config), ``metastore``, ``lakehouse`` and ``root``.
    """
    root = tmp_path_factory.mktemp("served")
    conf = root / "conf.yaml"
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


# --- the installed command, as a user runs it ------------------------------------------------------------------

VOTELAKE = Path(sys.executable).parent / "votelake"


def cli_config(root: Path, landing: Path, uris: bool = False) -> Path:
    """A config for a tiny state under ``root``, as a user writes one: ``extends: local`` and what differs.

    Args:
        root: the temporary folder (lakehouse, MLflow store, reports, exports).
        landing: the landing folder.
        uris: name the lakehouse and the landing folder by ``file://`` URIs, as a cluster names
            its store's (``s3a://...``): the same folders, through every URI code path.

    Returns:
        The config file's path.
    """
    def located(path: Path) -> str:
        return f"file://{path}" if uris else str(path)

    tree = {
        "extends": "local",
        "storage": {"lakehouse": located(root / "lakehouse"), "metastore": str(root / "metastore")},
        # Sized for a few thousand rows, as the test session is (adaptive execution off); the notebook and
        # the served lakehouse run the product's own settings.
        "spark": {"master": "local[2]", "driver_memory": "2g", "shuffle_partitions": 2,
                  "conf": {"spark.ui.enabled": "false", "spark.default.parallelism": "2",
                           "spark.sql.adaptive.enabled": "false"}},
        "mlflow": {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_root": str(root / "mlartifacts")},
        "quality": {"results_dir": str(root / "quality")},
        "synth": {"partitions": 2, "experiment_share": 0.5},  # enough follow-up IDs for the uplift model
        "landing": located(landing),
        "universes": {"exports": str(root / "exports")},
        # Calibration to precinct results and the default (Splink) resolver are
        # tested in test_e2e.py; here they would only lengthen a run about exit codes.
        "calibration": {"results": None},
        "resolve": {"method": "rules"},
        # One learner, no search: the search and the gate between learners are tested in test_models.py.
        "model": {"learners": ["lr"], "reg_params": [0.01], "tuning": "none",
                  "bootstrap": 50, "uplift_folds": 2, "uplift_learners": ["two_stage"]},
        # One run per fit: the best of several runs and the re-fit's stability are tested in test_segments.py.
        "segments": {"restarts": 1},
    }
    path = root / "votelake.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def votelake_cli(cwd: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run the installed console script in ``cwd``, with no ``VOTELAKE__*`` overrides from this environment.

    Its temporary folder is ``cwd/tmp``, so a test can see what a run leaves there.

    Args:
        cwd: the folder it runs in.
        *args: the command line after ``votelake``.
        timeout: seconds before the run is stopped (and the test fails).

    Returns:
        The finished process, its output captured as text.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTELAKE__")}
    env["PYARROW_IGNORE_TIMEZONE"] = "1"
    (cwd / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(cwd / "tmp")
    return subprocess.run([str(VOTELAKE), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


# Run in its own process after the pipeline has exited (the embedded metastore admits one process).
CATALOG_CHECK = """
import sys
from votelake.config import load_settings
from votelake.jobs.common import session_for

spark = session_for(load_settings(sys.argv[1]))
history = spark.sql("DESCRIBE HISTORY gold.voter_scores").orderBy("version").collect()
# Maintenance ran after the publish: the publish is the last WRITE.
last = [h for h in history if h["operation"] == "WRITE"][-1]
inserted = spark.sql(f"SELECT count(*) FROM table_changes('gold.voter_scores', {last['version']}, "
                     f"{last['version']}) WHERE _change_type = 'insert'").first()[0]
print(f"by_name={spark.table('gold.voter_scores').count()}")
print(f"history={len(history)}")
print(f"inserted_by_last_publish={inserted}")
"""


@pytest.fixture(scope="session")
def cli_project(tmp_path_factory) -> dict:
    """A user's project made with the installed command: ``votelake synth`` (3,000 voters), ``votelake pipeline``,
    ``votelake run maintain``, then its tables read by name in a fresh process.

    The CLI's tests check the run; erasure's tests go on to change the lake. So what the CLI's tests check is
    recorded here, as the run left it, before anything else touches it. Both files run on one worker
    (:data:`FILES_SHARING_FIXTURES`), so the project is made once.

    Returns:
        ``root`` and ``conf`` (the config file); the finished ``synth``, ``pipeline``, ``maintain`` and ``check``
        processes (None after a step that failed); ``modes``, the permission bits of what the
        pipeline wrote; ``scratch``, the Spark folders left in the run's temporary folder; ``scores``, the rows of
        ``gold.voter_scores`` after maintenance, read with deltalake; ``other_target``, ``votelake run train``
        for a target election the build wrote no features for.
    """
    root = tmp_path_factory.mktemp("cli_project")
    conf = cli_config(root, root / "synth" / "landing", uris=True)
    made = {"root": root, "conf": conf, "pipeline": None, "maintain": None, "check": None}
    made["synth"] = votelake_cli(root, "synth", "--voters", "3000", "--seed", "1", "--out", str(root / "synth"),
                                 "--conf", str(conf))
    if made["synth"].returncode != 0:
        return made  # the CLI's test reports it
    made["pipeline"] = votelake_cli(root, "pipeline", "--conf", str(conf))
    # What the run wrote is its owner's alone (its folders, and the files Python writes),
    # and Spark's scratch folder went with the process.
    wrote = [root / "lakehouse", root / "exports", root / "quality", root / "mlartifacts", root / "mlflow.db",
             *(root / "quality").rglob("*.json")]
    made["modes"] = {str(p): p.stat().st_mode if p.exists() else None for p in wrote}
    made["scratch"] = [*(root / "tmp").glob("votelake-spark-*"), *(root / "tmp").glob("blockmgr-*")]
    if made["pipeline"].returncode == 0:
        # Maintenance runs on what the pipeline wrote, and keeps every row.
        made["maintain"] = votelake_cli(root, "run", "maintain", "--conf", str(conf), timeout=900)
        check = root / "check.py"
        check.write_text(CATALOG_CHECK)
        made["check"] = subprocess.run([sys.executable, str(check), str(conf)], cwd=root, capture_output=True,
                                       text=True, timeout=900)
        # The rows a Spark-free reader sees, to compare with what Spark read by name.
        scores = deltalake.DeltaTable(str(root / "lakehouse" / "gold" / "voter_scores"))
        made["scores"] = scores.to_pyarrow_table().num_rows
        # A target election the build did not write features for: train stops before fitting anything.
        made["other_target"] = votelake_cli(root, "run", "train", "--conf", str(conf),
                                            "--set", "model.target_election.date=2027-03-16", timeout=900)
    return made


# The slowest files (each takes a small state through the pipeline), run first: `make test` keeps this
# order (--no-loadscope-reorder), so the two workers start on the long ones and end about together.
SLOWEST_FIRST = ("tests/test_e2e.py", "tests/test_cli.py", "tests/test_erasure.py", "tests/test_notebooks.py",
                 "tests/test_models.py")


def pytest_collection_modifyitems(config, items):
    """Put the files of :data:`SLOWEST_FIRST` first, in that order; the rest keep theirs."""
    rank = {file: i for i, file in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# Test files sharing a session fixture, each set one unit of `make test`'s scheduling: file to unit.
FILES_SHARING_FIXTURES = {"tests/test_cli.py": "cli_project", "tests/test_erasure.py": "cli_project"}


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: plain pytest runs without xdist too
def pytest_xdist_make_scheduler(config, log):
    """`make test`'s ``--dist loadfile``, with the files of :data:`FILES_SHARING_FIXTURES` as one unit.

    Each xdist worker makes its own session fixtures, so files sharing an expensive one go to one worker.
    (xdist's own ``loadgroup`` marks would do it, but 3.8 cannot rename pytest 9's node ids to group them.)
    """
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesSharingFixtures(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = super()._split_scope(nodeid)
            return FILES_SHARING_FIXTURES.get(file, file)

    return FilesSharingFixtures(config, log)
