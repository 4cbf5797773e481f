"""The one SparkSession factory used by every job, test and notebook.

Library code receives the session it is given and never builds one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from votelake.config import SparkSettings, StorageSettings

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# The Maven coordinate to pass to --packages where Maven Central is reachable.
DELTA_PACKAGE = "io.delta:delta-spark_4.1_2.13:4.1.0"

# Settings every session gets, each for a reason.
BASE_CONF = {
    # Delta and every reader of our tables expect microsecond timestamps, not INT96.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Dates and timestamps mean the same thing on every machine.
    "spark.sql.session.timeZone": "UTC",
    # Split-brain partition overwrites are never what a job wants.
    "spark.sql.sources.partitionOverwriteMode": "static",
    # Spark's _SUCCESS marker is not part of a Delta table.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    # Adaptive execution coalesces small shuffles, which most of our jobs are.
    "spark.sql.adaptive.enabled": "true",
    # Wide generated code (the synthetic generator, feature selects) exceeds the
    # JVM's 8 KB JIT limit and would otherwise run interpreted, 2-3x slower.
    "spark.driver.extraJavaOptions": "-XX:-DontCompileHugeMethods",
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


def delta_spark_jars_present(spark_settings: SparkSettings) -> bool:
    """Tell whether delta-spark's JVM classes will be on the session's classpath.

    Decided without starting a JVM: Databricks runtimes ship Delta; elsewhere a
    ``delta-spark`` jar must be in Spark's jars folder or named in ``spark.jars``
    / ``spark.jars.packages``.

    Args:
        spark_settings: the Spark section of the configuration.

    Returns:
        True when delta-spark can be used.
    """
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return True
    conf = spark_settings.conf
    named = conf.get("spark.jars", "") + "," + conf.get("spark.jars.packages", "")
    if "delta-spark" in named or "delta-core" in named:
        return True
    import pyspark

    homes = [os.environ.get("SPARK_HOME", ""), str(Path(pyspark.__file__).parent)]
    return any(glob.glob(str(Path(h) / "jars" / "delta-spark*.jar")) for h in homes if h)


def resolve_backend(spark_settings: SparkSettings, storage: StorageSettings) -> str:
    """Pick the Delta backend: ``delta-spark`` when its jars are present, else ``delta-rs``.

    Args:
        spark_settings: the Spark section of the configuration.
        storage: the storage section (``backend`` may force one).

    Returns:
        ``"delta-spark"`` or ``"delta-rs"``.

    Raises:
        RuntimeError: delta-spark was asked for but its jars are not present.
    """
    # Under spark-submit the jars may come from --packages, which only the JVM knows.
    present = delta_spark_jars_present(spark_settings) or (
        storage.backend == "delta-spark" and launched_by_spark_submit()
    )
    if storage.backend == "delta-spark" and not present:
        raise RuntimeError(
            "storage.backend=delta-spark but no delta-spark jar is on the classpath; "
            f"add `--packages {DELTA_PACKAGE}` (needs Maven Central) or use backend auto/delta-rs"
        )
    if storage.backend == "auto":
        return "delta-spark" if present else "delta-rs"
    return storage.backend


def launched_by_spark_submit() -> bool:
    """True when this Python driver was started by spark-submit (its JVM is up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark(spark_settings: SparkSettings, backend: str) -> SparkSession:
    """Create (or return the running) SparkSession for a job.

    Args:
        spark_settings: master, app name, shuffle partitions, memory and extra conf.
        backend: the resolved Delta backend; ``delta-spark`` adds Delta's
            session extension and catalog.

    Returns:
        The SparkSession.
    """
    builder = SparkSession.builder.appName(spark_settings.app_name)
    conf = dict(BASE_CONF)
    conf["spark.sql.shuffle.partitions"] = str(spark_settings.shuffle_partitions)
    if not launched_by_spark_submit():
        # Under spark-submit the JVM is already running: its --master and
        # --driver-memory stand, and setting them here would be ignored or wrong.
        check_java()
        builder = builder.master(spark_settings.master)
        conf["spark.driver.memory"] = spark_settings.driver_memory
        # Python workers must run the driver's interpreter (the venv, with pyarrow),
        # not whatever `python3` is first on the PATH. PySpark reads the variable
        # when the context starts; the conf key alone is only honoured by spark-submit.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf["spark.pyspark.python"] = os.environ["PYSPARK_PYTHON"]
    if backend == "delta-spark":
        conf["spark.sql.extensions"] = DELTA_EXTENSION
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    conf.update(spark_settings.conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
