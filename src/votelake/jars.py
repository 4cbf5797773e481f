"""delta-spark's JVM jars: which ones match the installed packages, and where they are.

The ``delta-spark`` Python package holds only the Python API; its engine is a
set of jars on Maven Central. Two ordinary ways bring them to Spark:

* ``spark.jars.packages`` (what ``delta.configure_spark_with_delta_pip`` sets):
  Spark's own resolver downloads them when the session starts. Nothing to
  install, but every new session asks the registry, and two sessions resolving
  at once can trip over each other's Ivy cache.
* ``spark.jars``: the same jars fetched once with Maven into the environment
  (``python -m votelake.jars fetch``, run by ``make setup``), then passed by path.
  No registry at run time; Spark ships them to executors itself.

:func:`spark_jar_conf` picks the folder when it holds the jars and falls back
to the resolver otherwise, so an environment installed from the wheel alone
still works.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Sequence

from votelake.logs import LOG4J_CONFIG

SCALA_VERSION = "2.13"
# Groups that Spark itself ships: copying them again would put two versions on the classpath.
PROVIDED_GROUPS = ("org.scala-lang", "org.slf4j", "org.apache.logging.log4j", "com.google.code.findbugs")


def delta_coordinate() -> str:
    """The Maven coordinate of the delta-spark jar matching the installed packages.

    Named as delta-spark's own ``configure_spark_with_delta_pip`` names it:
    ``io.delta:delta-spark_<spark major.minor>_<scala>:<delta-spark version>``.

    Returns:
        The ``group:artifact:version`` coordinate.
    """
    spark = ".".join(metadata.version("pyspark").split(".")[:2])
    return f"io.delta:delta-spark_{spark}_{SCALA_VERSION}:{metadata.version('delta-spark')}"


def jar_dir() -> Path:
    """Where ``fetch`` puts the jars: inside the Python environment, so it goes where the environment goes."""
    return Path(sys.prefix) / "share" / "votelake" / "jars"


def local_jars(folder: Path | None = None) -> list[Path]:
    """The fetched jars, when the folder holds the delta-spark jar of the installed version.

    Args:
        folder: where to look (default :func:`jar_dir`).

    Returns:
        Every jar in the folder, sorted; empty when the matching delta-spark jar is absent.
    """
    folder = folder or jar_dir()
    _, artifact, version = delta_coordinate().split(":")
    if not (folder / f"{artifact}-{version}.jar").is_file():
        return []
    return sorted(folder.glob("*.jar"))


def spark_jar_conf(folder: Path | None = None) -> dict[str, str]:
    """The Spark configuration that puts delta-spark on the classpath.

    Args:
        folder: the fetched jars' folder (default :func:`jar_dir`).

    Returns:
        ``{"spark.jars": ...}`` for fetched jars, else ``{"spark.jars.packages": ...}``.
    """
    jars = local_jars(folder)
    if jars:
        return {"spark.jars": ",".join(str(j) for j in jars)}
    return {"spark.jars.packages": delta_coordinate()}


def submit_args(folder: Path | None = None, driver_memory: str | None = None) -> list[str]:
    """The ``spark-submit`` arguments that bring delta-spark and the driver's log settings, and its memory when given.

    Args:
        folder: the fetched jars' folder (default :func:`jar_dir`).
        driver_memory: a config's ``spark.driver_memory``: under spark-submit only
            ``--driver-memory`` can set it, and in local mode it is all the job has.

    Returns:
        ``--jars A,B`` or ``--packages C``, ``--driver-java-options`` naming the
        packaged Spark log settings (warnings, without the known noise: spark-submit's
        own default is every INFO line), then ``--driver-memory M`` when asked.
    """
    conf = spark_jar_conf(folder)
    args = ["--jars", conf["spark.jars"]] if "spark.jars" in conf else ["--packages", conf["spark.jars.packages"]]
    args += ["--driver-java-options", f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}"]
    return args + (["--driver-memory", driver_memory] if driver_memory else [])


def fetch(folder: Path | None = None, mvn: str = "mvn") -> list[Path]:
    """Download delta-spark and its runtime dependencies with Maven into ``folder``.

    Maven resolves the dependency tree from delta-spark's own POM; the groups
    Spark already ships are left out. Does nothing when the jars are there.

    Args:
        folder: destination (default :func:`jar_dir`).
        mvn: the Maven executable.

    Returns:
        The jars in the folder.

    Raises:
        RuntimeError: Maven is missing or failed.
    """
    folder = folder or jar_dir()
    if local_jars(folder):
        return local_jars(folder)
    if shutil.which(mvn) is None:
        raise RuntimeError(f"{mvn!r} not found: install Maven, or let Spark resolve {delta_coordinate()} "
                           "itself (spark.jars.packages) by not fetching")
    group, artifact, version = delta_coordinate().split(":")
    pom = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>votelake</groupId><artifactId>delta-jars</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version></dependency>
  </dependencies>
</project>
"""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "pom.xml").write_text(pom)
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(Path(work) / "pom.xml"), "dependency:copy-dependencies",
             f"-DoutputDirectory={folder}", "-DincludeScope=runtime",
             f"-DexcludeGroupIds={','.join(PROVIDED_GROUPS)}"],
            capture_output=True, text=True,
        )
    if done.returncode or not local_jars(folder):
        raise RuntimeError(f"Maven could not fetch {delta_coordinate()}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return local_jars(folder)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m votelake.jars fetch|conf|submit-args [--dir DIR] [--conf FILE] [--set KEY=VALUE]``."""
    parser = argparse.ArgumentParser(prog="python -m votelake.jars", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["fetch", "conf", "submit-args"])
    parser.add_argument("--dir", type=Path, default=None, help=f"jar folder (default {jar_dir()})")
    parser.add_argument("--conf", default=None,
                        help="submit-args: also print --driver-memory, the spark.driver_memory of this YAML config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="submit-args: a config override, as a job takes it (implies the packaged config "
                             "without --conf)")
    args = parser.parse_args(argv)
    if args.action == "fetch":
        for jar in fetch(args.dir):
            print(jar)
    elif args.action == "conf":
        for key, value in spark_jar_conf(args.dir).items():
            print(f"{key}={value}")
    else:
        memory = None
        if args.conf is not None or args.overrides:
            # Imported here: fetching the jars (make setup) needs no config.
            from votelake.config import ConfigError, load_settings

            try:
                memory = load_settings(args.conf, args.overrides).spark.driver_memory
            except ConfigError as exc:
                print(f"python -m votelake.jars: {exc}", file=sys.stderr)
                return 2
        print(" ".join(submit_args(args.dir, memory)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
