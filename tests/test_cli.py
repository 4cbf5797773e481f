"""The installed ``votelake`` command: exit codes, the pipeline summary, and the wheel's packaged configuration.

The commands run as a user runs them: the console script in a subprocess,
started in a temporary folder, with a config file written there.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import REPO, VOTELAKE, cli_config, votelake_cli
from votelake.cli import PIPELINE
from votelake.config import CONF_DIR, load_settings

KINDS = ("turnout", "support", "persuasion")


@pytest.mark.e2e
def test_pipeline_exits_zero_and_names_each_champion_run(cli_project):
    synth, done = cli_project["synth"], cli_project["pipeline"]
    assert synth.returncode == 0, synth.stderr[-3000:]
    assert (cli_project["root"] / "synth" / "landing" / "ncvoter").is_dir()
    assert done.returncode == 0, done.stderr[-3000:]
    settings = load_settings(cli_project["conf"], environ={})
    # What the run wrote is its owner's alone, and Spark's scratch folder went with the process.
    modes = cli_project["modes"]
    assert all(m is not None and m & 0o077 == 0 for m in modes.values()), {p: m and oct(m) for p, m in modes.items()}
    assert cli_project["scratch"] == []
    out = done.stdout
    assert re.search(r"^\[votelake\] scores: \S*" + re.escape(str(settings.storage.lakehouse)) + r"\S* \(\d+ rows",
                     out, re.M), out[-3000:]
    # Each kind's line names the version holding the champion alias and the run that trained it.
    client = MlflowClient(settings.mlflow.tracking_uri, settings.mlflow.tracking_uri)
    for kind in KINDS:
        name = f"{settings.mlflow.experiment_prefix}-{kind}"
        champion = client.get_model_version_by_alias(name, "champion")
        line = re.search(rf"^\[votelake\]   {kind} champion: (.*)$", out, re.M)
        assert line is not None, out[-3000:]
        assert line.group(1).startswith(f"{name}/{champion.version}, run {champion.run_id}, learner "), line.group(0)

    # Maintenance ran on what the pipeline wrote, and kept every row.
    maintained = cli_project["maintain"]
    assert maintained.returncode == 0, maintained.stderr[-3000:]

    # A fresh process, a session from the factory: the tables by name, their history and changes.
    checked = cli_project["check"]
    assert checked.returncode == 0, checked.stderr[-3000:]
    found = dict(line.split("=", 1) for line in checked.stdout.splitlines() if "=" in line)
    rows = cli_project["scores"]
    assert int(found["by_name"]) == rows > 0
    assert int(found["history"]) >= 2
    assert int(found["inserted_by_last_publish"]) == rows


# Known noise: each used to print on every run (or once per Spark task), and is now fixed or filtered.
NOISE = ("WindowExec", "ObjectStore", "replaced a previously registered function", "Successfully registered model",
         "Created version", "Downloading artifacts", "regParam is zero", "Broadcasting large task binary",
         "Using Spark's default log4j profile", "NativeCodeLoader", "locally checkpointed")


@pytest.mark.e2e
def test_pipeline_prints_a_short_log_and_a_table_of_its_jobs(cli_project):
    done = cli_project["pipeline"]
    assert done.returncode == 0, done.stderr[-3000:]
    out, err = done.stdout.splitlines(), done.stderr.splitlines()
    header = next(i for i, line in enumerate(out) if line.startswith("job "))
    assert out[header].split() == ["job", "seconds", "rows", "written", "tables"]
    table = [line.split() for line in out[header + 1:header + 1 + len(PIPELINE)]]
    assert [row[0] for row in table] == list(PIPELINE)
    assert all(int(row[2].replace(",", "")) > 0 for row in table if row[0] != "train"), out
    # Every log line has the one format (ours, or the JVM's warnings), and each job says when it finished.
    dated = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|WARN|ERROR) \S+: ")
    assert [line for line in err if not dated.match(line)] == ["WARNING: Using incubator modules: "
                                                               "jdk.incubator.vector"], done.stderr[-3000:]
    for job in PIPELINE:
        assert any(re.match(rf"^\S+ INFO {job}: finished in ", line) for line in err), job
    assert not [noise for noise in NOISE if noise in done.stderr], done.stderr[-3000:]
    # Progress: a line per 30 s of a job, no more (how many depends on the machine's speed); the rest is short.
    beats = [re.match(r"^\S+ INFO (\w+): \d+:\d\d so far, ", line) for line in err]
    seconds = {row[0]: float(row[1].replace(",", "")) for row in table}
    for job in PIPELINE:
        assert sum(1 for b in beats if b and b.group(1) == job) <= seconds[job] // 30 + 1, job
    assert len(out) + len([line for line, b in zip(err, beats) if not b]) <= 35, done.stdout + done.stderr


def test_version_and_help_read_as_plain_words():
    version = subprocess.run([str(VOTELAKE), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.strip() == f"votelake {metadata.version('votelake')}"
    for args in ([], ["run"], ["pipeline"], ["forget"]):
        shown = subprocess.run([str(VOTELAKE), *args, "--help"], capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr
        assert not re.search(r"``|:func:|:class:", shown.stdout), shown.stdout
        if args:
            assert "--log-level" in shown.stdout and "--json-logs" in shown.stdout
    listed = subprocess.run([str(VOTELAKE), "run", "--help"], capture_output=True, text=True, timeout=120).stdout
    assert all(re.search(rf"^  {job} +\S", listed, re.M) for job in PIPELINE), listed


@pytest.mark.e2e
def test_training_for_another_target_than_the_build_fails_naming_the_rebuild(cli_project):
    trained = cli_project.get("other_target")
    assert trained is not None, "the pipeline did not complete"
    assert trained.returncode == 1, trained.stderr[-3000:]
    last = trained.stderr.strip().splitlines()[-1]
    assert last.startswith("votelake: job train failed: ValueError: gold.voter_features holds no features"), last
    assert "run build with this configuration" in last


def test_a_failing_job_exits_non_zero_naming_the_job_and_the_error(tmp_path: Path):
    landing = tmp_path / "landing"
    landing.mkdir()  # a delivery folder with nothing in it
    conf = cli_config(tmp_path, landing)
    failed = votelake_cli(tmp_path, "run", "ingest", "--conf", str(conf), timeout=600)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("votelake: job ingest failed: LayoutError: nothing was loaded"), failed.stderr[-3000:]
    assert "ncvoter" in last  # the missing required source is named on the same line
    assert not (tmp_path / "lakehouse" / "bronze").exists()
    # For a log collector: JSON records, the traceback in the failure's, and the same last line.
    failed = votelake_cli(tmp_path, "run", "ingest", "--json-logs", "--conf", str(conf), timeout=600)
    lines = failed.stderr.strip().splitlines()
    assert failed.returncode == 1 and lines[-1] == last
    records = [json.loads(line) for line in lines if line.startswith("{")]
    error = next(r for r in records if r["level"] == "ERROR" and r["logger"] == "votelake")
    assert error["message"] == last.removeprefix("votelake: ") and "Traceback" in error["error"]


def test_a_jvm_that_dies_is_reported_as_such_with_the_memory_setting(tmp_path: Path):
    conf = cli_config(tmp_path, tmp_path / "synth" / "landing")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTELAKE__")}
    job = subprocess.Popen([str(VOTELAKE), "synth", "--voters", "200000", "--out", str(tmp_path / "synth"),
                            "--conf", str(conf)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        java = _wait_for_java_under(job.pid, timeout=300)
        time.sleep(5)  # into the job's first Spark work
        os.kill(java, signal.SIGKILL)  # what the kernel's out-of-memory killer does
        _, err = job.communicate(timeout=300)
    finally:
        job.kill()
    assert job.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    # Killed once the job runs ("job synth failed"), or while the session starts ("synth failed"): on a
    # loaded machine the kill can land before PySpark connects, when no signal can be read.
    assert re.match(r"votelake: (job )?synth failed: the Spark JVM (was killed by SIGKILL|exited while starting)",
                    last), err[-3000:]
    assert "spark.driver_memory (now 2g)" in last


def test_a_jvm_that_dies_before_pyspark_connects_is_reported_too():
    from pyspark.errors import PySparkRuntimeError

    from votelake.jobs.common import jvm_death

    error = PySparkRuntimeError(errorClass="JAVA_GATEWAY_EXITED", messageParameters={})
    assert jvm_death(error).startswith("the Spark JVM exited while starting: if memory ran out, spark.driver_memory")


def test_a_broadcast_without_memory_names_the_memory_setting():
    from votelake.jobs.common import jvm_death

    settings = load_settings(None, ["spark.driver_memory=3g"], environ={})
    cause = RuntimeError("org.apache.spark.SparkException: Not enough memory to build and broadcast the table")
    assert jvm_death(cause, settings) == ("the Spark driver had too little memory to broadcast a table to the join: "
                                          "raise spark.driver_memory (now 3g), e.g. --set spark.driver_memory=12g")


def _spark_submit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the wheel's ``spark-submit`` in ``cwd`` as docs/cluster.md does, with no ``VOTELAKE__*`` overrides."""
    import pyspark

    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTELAKE__")}
    env.update(PYSPARK_PYTHON=sys.executable, PYARROW_IGNORE_TIMEZONE="1", TMPDIR=str(cwd / "tmp"))
    (cwd / "tmp").mkdir(exist_ok=True)
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    return subprocess.run([str(submit), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_spark_submit_gets_the_configs_driver_memory_from_submit_args(tmp_path: Path):
    conf = cli_config(tmp_path, tmp_path / "synth" / "landing")  # spark.driver_memory: 2g
    job = [str(REPO / "jobs" / "synth.py"), "--conf", str(conf), "--set", "synth.voters=300"]
    printed = subprocess.run([sys.executable, "-m", "votelake.jars", "submit-args", "--conf", str(conf)],
                             cwd=tmp_path, capture_output=True, text=True, check=True).stdout.split()
    assert printed[-2:] == ["--driver-memory", "2g"] and printed[0] in ("--jars", "--packages")
    done = _spark_submit(tmp_path, *printed, *job)
    assert done.returncode == 0, done.stderr[-3000:]
    # spark-submit runs the Python driver with its stderr joined to stdout.
    assert "--driver-memory" not in done.stdout + done.stderr
    # The driver logs warnings only (spark-submit's own default is every INFO line of Spark).
    assert not re.search(r" INFO (SparkContext|SparkSubmit|DAGScheduler|Executor):", done.stdout + done.stderr)
    assert re.search(r"^\d\d:\d\d:\d\d INFO synth: finished in ", done.stdout + done.stderr, re.M)
    # Without it, spark-submit's driver has Spark's 1g, which no config key can raise: the job says so.
    jars_only = printed[:-2]
    done = _spark_submit(tmp_path, *jars_only, *job, "--set", f"synth.out={tmp_path / 'again'}")
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert "started this local-mode driver with 1g" in said and "add `--driver-memory 2g`" in said, said[-3000:]


def _is_spark_jvm(pid: int) -> bool:
    """The driver JVM itself, not the short-lived launcher JVM that spark-class runs first to build its command."""
    try:
        return b"org.apache.spark.deploy.SparkSubmit" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # the process ended meanwhile
        return False


def _wait_for_java_under(pid: int, timeout: float) -> int:
    """The pid of the driver JVM started under ``pid`` (PySpark's), once it is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        todo, found = [pid], []
        while todo:
            parent = todo.pop()
            children = Path(f"/proc/{parent}/task/{parent}/children")
            try:
                kids = [int(k) for k in children.read_text().split()]
            except OSError:  # no such process (any more)
                kids = []
            todo += kids
            found += [k for k in kids if _is_spark_jvm(k)]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError("no JVM started")


def test_spark_scratch_is_private_and_a_killed_runs_is_removed_by_the_next(tmp_path: Path):
    from votelake.session import private_scratch

    killed = tmp_path / "votelake-spark-999999999-x"  # no such process
    killed.mkdir()
    mine = Path(private_scratch(str(tmp_path)))
    assert not killed.exists() and mine.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("job, override, named", [
    ("build", "synth.voterz=5", ["synth.voterz"]),
    # A universe rule that would read a file through Spark SQL is refused by name.
    ("universes", "universes.definitions.gotv.where=(SELECT max(value) FROM text.`/etc/passwd`) IS NOT NULL",
     ["universes.definitions.gotv.where", "subquery"]),
    # Outputs in system folders or outside the project's roots.
    ("ingest", "storage.lakehouse=/etc", ["storage.lakehouse", "system folder /etc"]),
    ("universes", "universes.exports=/etc/cron.d", ["universes.exports", "system folder /etc"]),
    ("score", "mlflow.artifact_root=/opt/elsewhere", ["mlflow.artifact_root", "outside the project roots",
                                                      "storage.allow_outside"]),
])
def test_a_bad_config_exits_two_before_spark(tmp_path: Path, job, override, named):
    done = votelake_cli(tmp_path, "run", job, "--set", override, timeout=120)
    assert done.returncode == 2
    assert all(n in done.stderr for n in named)


def test_wheel_ships_the_default_configuration(tmp_path: Path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = tmp_path.glob("votelake-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"votelake/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*")
               if p.suffix in (".yaml", ".md")}
    assert {"votelake/conf/local.yaml", "votelake/conf/tables.yaml"} <= shipped
    for folder in ("contracts", "expectations", "layouts"):
        assert any(n.startswith(f"votelake/conf/{folder}/") for n in shipped), folder
    assert shipped <= names, sorted(shipped - names)


def test_default_configuration_paths_are_absolute_package_data(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # far from the checkout
    settings = load_settings(environ={})
    for path in (settings.storage.catalog, settings.storage.contracts, settings.quality.expectations,
                 settings.layouts):
        assert path.is_absolute() and path.exists() and path.is_relative_to(CONF_DIR), path


def test_relative_paths_in_a_config_file_resolve_against_the_current_directory(tmp_path: Path, monkeypatch):
    (tmp_path / "mine" / "layouts").mkdir(parents=True)
    conf = tmp_path / "mine" / "conf.yaml"
    conf.write_text("layouts: mine/layouts\nstorage:\n  contracts: mine/contracts\n  catalog: mine/tables.yaml\n"
                    "quality:\n  expectations: mine/expectations\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(conf, environ={})
    assert settings.layouts == tmp_path.resolve() / "mine" / "layouts"
    assert settings.storage.contracts == tmp_path.resolve() / "mine" / "contracts"
    assert settings.storage.catalog == tmp_path.resolve() / "mine" / "tables.yaml"
    assert settings.quality.expectations == tmp_path.resolve() / "mine" / "expectations"
