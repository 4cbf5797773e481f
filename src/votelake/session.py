"""The one SparkSession factory used by every job, test and notebook.

Library code receives the session it is given and never builds one.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

from votelake import jars
from votelake.config import SparkSettings
from votelake.logs import LOG4J_CONFIG

logger = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
DELTA_CONF = {"spark.sql.extensions": DELTA_EXTENSION, "spark.sql.catalog.spark_catalog": DELTA_CATALOG}

# Session settings every session gets, each for a reason (also sent over Spark Connect).
RUNTIME_CONF = {
    # Delta and every reader of our tables expect microsecond timestamps, not INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Dates and timestamps mean the same thing on every machine.
    "spark.sql.session.timeZone": "UTC",
    # Split-brain partition overwrites are never what a job wants.
    "spark.sql.sources.partitionOverwriteMode": "static",
    # Adaptive execution coalesces small shuffles, which most of our jobs are,
    # turns joins whose side proves small at run time into broadcasts, and
    # splits skewed partitions (one huge county, one prolific texter).
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.skewJoin.enabled": "true",
    # Delta rebuilds a table's state from its log in this many tasks (default 50).
    # Our logs are small (a state's table has thousands of files, not millions),
    # and every extra task costs scheduling time on each read after a commit.
    "spark.databricks.delta.snapshotPartitions": "2",
}

# Settings fixed when the JVM starts, each for a reason.
BASE_CONF = {
    # Jobs report their own progress; Spark's console bar interleaves with it and logs.
    "spark.ui.showConsoleProgress": "false",
    # Spark's _SUCCESS marker is not part of a Delta table.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    # Wide generated code (the synthetic generator, feature selects) exceeds the
    # JVM's 8 KB JIT limit and would otherwise run interpreted, 2-3x slower. The
    # driver logs warnings, without the known noise (conf/log4j2.properties).
    "spark.driver.extraJavaOptions": f"-XX:-DontCompileHugeMethods -Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}",
    "spark.executor.extraJavaOptions": "-XX:-DontCompileHugeMethods",
}


class JavaNotFoundError(RuntimeError):
    """Spark needs a Java 17+ runtime and none was found."""


def check_java() -> str:
    """Check that a Java 17+ runtime is on the PATH or in JAVA_HOME.

    Returns:
        The ``java -version`` banner line.

    Raises:
        JavaNotFoundError: no java, or a version older than 17.
    """
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise JavaNotFoundError(
            "Java 17 or newer is required by Spark and was not found. "
            "Install it (e.g. `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    banner = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    first = banner.splitlines()[0] if banner else ""
    try:
        version = first.split('"')[1]
        major = int(version.split(".")[0])
    except (IndexError, ValueError):
        return first
    if major < 17:
        raise JavaNotFoundError(f"Spark 4 needs Java 17+, found {first!r} at {java}")
    return first


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by spark-submit (its JVM is up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def metastore_conf(metastore: Path) -> dict[str, str]:
    """The Spark configuration of the embedded Hive metastore: Derby in ``metastore/``.

    Args:
        metastore: the folder of the metastore database and the (unused) warehouse:
            every table is external, at its lakehouse path.

    Returns:
        Spark configuration keys.
    """
    metastore = Path(metastore).resolve()
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true",
        "spark.sql.warehouse.dir": str(metastore / "warehouse"),
    }


def _derby_home(metastore: Path) -> str:
    """The driver Java option that puts Derby's log in the metastore folder, not where the JVM starts."""
    return f" -Dderby.system.home={Path(metastore).resolve()}"


def server_conf(metastore: Path) -> dict[str, str]:
    """What a long-running Spark server (Connect, Thrift) needs to serve the tables as a job sees them.

    Args:
        metastore: the embedded metastore's folder.

    Returns:
        Spark configuration: Delta, the session settings, the metastore (jars not included).
    """
    conf = {**BASE_CONF, **RUNTIME_CONF, **DELTA_CONF, **metastore_conf(metastore)}
    conf["spark.driver.extraJavaOptions"] += _derby_home(metastore)
    return conf


def _uses_own_metastore(conf: dict[str, str]) -> bool:
    """True when the configuration names a metastore or catalog of the cluster's (Hive, Glue, Unity Catalog)."""
    keys = ("spark.hadoop.hive.metastore.uris", "spark.hadoop.javax.jdo.option.ConnectionURL",
            "spark.hadoop.hive.metastore.client.factory.class", "spark.sql.catalogImplementation")
    return any(k in conf for k in keys) or any(k.startswith("spark.sql.catalog.") and k != "spark.sql.catalog.spark_catalog"
                                               for k in conf)


def build_spark(spark_settings: SparkSettings, metastore: Path | None = None) -> SparkSession:
    """Create (or return the running) SparkSession for a job: Delta Lake and a table catalog.

    Three ways to run, one factory:

    * in-process (``local[*]`` or a ``spark://`` master): delta-spark's jars come
      from the environment's fetched folder or Spark's resolver
      (:func:`votelake.jars.spark_jar_conf`); the tables are registered in the
      embedded Derby metastore under ``metastore``, unless ``spark.conf`` names
      the cluster's own (Hive metastore URIs, Glue, Unity Catalog);
    * under ``spark-submit``: its ``--master``, ``--driver-memory`` and
      ``--jars``/``--packages`` stand (the JVM is already up);
    * over Spark Connect (``spark.remote``): the server owns jars, catalog and
      memory; only session settings are sent.

    Args:
        spark_settings: master or remote, app name, shuffle partitions, memory and extra conf.
        metastore: the embedded metastore's folder; None for the cluster's own (or none).

    Returns:
        The SparkSession.

    Raises:
        RuntimeError: under spark-submit without delta-spark's jars.
    """
    if spark_settings.remote:
        session = SparkSession.builder.remote(spark_settings.remote).appName(spark_settings.app_name).getOrCreate()
        for key, value in {**RUNTIME_CONF, "spark.sql.shuffle.partitions": str(spark_settings.shuffle_partitions)
                           }.items():
            session.conf.set(key, value)
        return session
    builder = SparkSession.builder.appName(spark_settings.app_name)
    conf = {**BASE_CONF, **RUNTIME_CONF, **DELTA_CONF,
            "spark.sql.shuffle.partitions": str(spark_settings.shuffle_partitions)}
    embedded = metastore is not None and not _uses_own_metastore(spark_settings.conf)
    if embedded:
        conf.update(metastore_conf(metastore))
    if launched_by_spark_submit():
        # Its --master, --driver-memory and --jars stand: the JVM is already up.
        submitted = _submitted_conf()
        if "delta-spark" not in submitted.get("spark.jars", "") + "," + submitted.get("spark.jars.packages", ""):
            raise RuntimeError("delta-spark's jars are not on this spark-submit's classpath; add "
                               f"`{' '.join(jars.submit_args())}` (`python -m votelake.jars submit-args` prints it)")
        _warn_of_small_local_driver(submitted, spark_settings.driver_memory)
    else:
        check_java()
        builder = builder.master(spark_settings.master)
        conf["spark.driver.memory"] = spark_settings.driver_memory
        # Python workers must run the driver's interpreter (the venv, with pyarrow),
        # not whatever `python3` is first on the PATH. PySpark reads the variable
        # when the context starts; the conf key alone is only honoured by spark-submit.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf["spark.pyspark.python"] = os.environ["PYSPARK_PYTHON"]
        if not {"spark.jars", "spark.jars.packages"} & set(spark_settings.conf):
            conf.update(jars.spark_jar_conf())
        if spark_settings.master.startswith("local") and "spark.local.dir" not in spark_settings.conf:
            # In-process only: a cluster's executors use their workers' own local dirs.
            conf["spark.local.dir"] = private_scratch()
    conf.update(spark_settings.conf)
    if embedded and not launched_by_spark_submit():
        conf["spark.driver.extraJavaOptions"] += _derby_home(metastore)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


SCRATCH_PREFIX = "votelake-spark-"


def private_scratch(parent: str | None = None) -> str:
    """A scratch folder for Spark's shuffle and spill files that only this user can open, removed at exit.

    Spark's default (``/tmp/blockmgr-*``) is readable by anyone on the machine
    and is left behind by a killed job, with rows of the tables in it. This
    folder is created 0700; folders of earlier runs whose process is gone are
    removed here, and this run's at its exit.

    Args:
        parent: where to create it (default: the system's temporary folder).

    Returns:
        The folder's path.
    """
    root = Path(parent or tempfile.gettempdir())
    for stale in root.glob(f"{SCRATCH_PREFIX}*"):
        pid = stale.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)) and stale.stat().st_uid == os.getuid():
            shutil.rmtree(stale, ignore_errors=True)
    folder = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=root)  # mode 0700
    atexit.register(shutil.rmtree, folder, True)
    return folder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache  # one spark-submit, one JVM: read once, and still known after the JVM died
def _submitted_conf() -> dict[str, str]:
    """What spark-submit resolved from its command line: spark.jars, spark.master, spark.driver.memory..."""
    # spark-submit hands its resolved options to the Python driver through the JVM's
    # system properties; the Python side sees them as the SparkConf defaults, but
    # only once it is connected to that JVM: before the gateway is up, SparkConf()
    # is an empty Python dict. Connecting first is what getOrCreate() does anyway.
    from pyspark.conf import SparkConf
    from pyspark.context import SparkContext

    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


# What Spark gives the driver when nothing sets spark.driver.memory.
SPARK_DEFAULT_DRIVER_MEMORY = "1g"


def submitted_driver_memory() -> str | None:
    """The driver memory this spark-submit started the JVM with, or None when not under spark-submit.

    Returns:
        Its ``--driver-memory`` (``spark.driver.memory``), else Spark's default, 1g.
    """
    if not launched_by_spark_submit():
        return None
    try:
        return _submitted_conf().get("spark.driver.memory", SPARK_DEFAULT_DRIVER_MEMORY)
    except Exception:  # the JVM died before the session read its settings
        return "unknown"


def mebibytes(size: str) -> float:
    """A JVM memory size (``512m``, ``8g``, ``2048``: MiB without a unit, as Spark reads driver memory) in MiB."""
    units = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}
    size = size.strip().lower()
    return float(size[:-1]) * units[size[-1]] if size[-1] in units else float(size)


def _warn_of_small_local_driver(submitted: dict[str, str], wanted: str) -> None:
    """Warn when spark-submit gave a local-mode driver less memory than the config asks for.

    In local mode the driver is also the executor, so its heap is all the job
    has; under spark-submit only ``--driver-memory`` sets it, and the config's
    ``spark.driver_memory`` cannot (the JVM is up before the config is read).
    """
    given = submitted.get("spark.driver.memory", SPARK_DEFAULT_DRIVER_MEMORY)
    if submitted.get("spark.master", "local[*]").startswith("local") and mebibytes(given) < mebibytes(wanted):
        logger.warning(
            "spark-submit started this local-mode driver with %s of memory (--driver-memory) and the config "
            "asks for %s (spark.driver_memory), which under spark-submit only --driver-memory can give: add "
            "`--driver-memory %s` (`python -m votelake.jars submit-args --conf FILE` prints it with the jars)",
            given, wanted, wanted)


def task_slots(spark: SparkSession) -> int:
    """The tasks the session can run at the same moment, as its configuration states them.

    A barrier stage (XGBoost's training) needs all its tasks running at once,
    or it waits for slots that never free. Read from the configuration, not
    the cluster's live state: library code does not reach into the JVM.

    Args:
        spark: the session.

    Returns:
        :func:`slots_of` the session's configuration.
    """
    return slots_of(_slot_conf(spark))


def stated_task_slots(spark: SparkSession) -> int | None:
    """:func:`task_slots`, or None when the session's configuration does not state them.

    Args:
        spark: the session.

    Returns:
        :func:`stated_slots` of the session's configuration.
    """
    return stated_slots(_slot_conf(spark))


def _slot_conf(spark: SparkSession) -> dict[str, str | None]:
    """The session's values of :data:`SLOT_KEYS` (None where unset)."""
    return {key: spark.conf.get(key, None) for key in SLOT_KEYS}


SLOT_KEYS = ("spark.master", "spark.cores.max", "spark.executor.instances", "spark.executor.cores",
             "spark.task.cpus")


def slots_of(conf: dict[str, str | None]) -> int:
    """Concurrent tasks a configuration states.

    Args:
        conf: values of :data:`SLOT_KEYS` (None where unset).

    Returns:
        :func:`stated_slots`, or 1 when the configuration does not say.
    """
    return stated_slots(conf) or 1


def stated_slots(conf: dict[str, str | None]) -> int | None:
    """Concurrent tasks a configuration states, if it does.

    Args:
        conf: values of :data:`SLOT_KEYS` (None where unset).

    Returns:
        ``local[N]``'s N (``local[*]``: this machine's cores), else
        ``spark.cores.max`` or executors × cores when set, divided by
        ``spark.task.cpus`` (at least 1); None when the configuration does not say.
    """
    master = conf.get("spark.master") or ""
    local = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\d+)?\])?", master)
    if local:
        cores = (os.cpu_count() or 1) if local.group(1) == "*" else int(local.group(1) or 1)
    elif conf.get("spark.cores.max"):
        cores = int(conf["spark.cores.max"])
    elif conf.get("spark.executor.instances") and conf.get("spark.executor.cores"):
        cores = int(conf["spark.executor.instances"]) * int(conf["spark.executor.cores"])
    else:
        return None
    return max(1, cores // int(conf.get("spark.task.cpus") or 1))
