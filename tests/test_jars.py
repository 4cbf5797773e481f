"""Which delta-spark jars the session factory asks Spark for."""

from __future__ import annotations

from importlib import metadata

from votelake import jars
from votelake.logs import LOG4J_CONFIG


def test_coordinate_matches_the_installed_packages():
    spark = ".".join(metadata.version("pyspark").split(".")[:2])
    assert jars.delta_coordinate() == f"io.delta:delta-spark_{spark}_2.13:{metadata.version('delta-spark')}"


def test_fetched_jars_are_used_and_spark_resolves_them_otherwise(tmp_path):
    assert jars.spark_jar_conf(tmp_path) == {"spark.jars.packages": jars.delta_coordinate()}
    log_settings = ["--driver-java-options", f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}"]
    assert jars.submit_args(tmp_path) == ["--packages", jars.delta_coordinate(), *log_settings]
    _, artifact, version = jars.delta_coordinate().split(":")
    for name in (f"{artifact}-{version}.jar", f"delta-storage-{version}.jar"):
        (tmp_path / name).write_bytes(b"PK")
    conf = jars.spark_jar_conf(tmp_path)
    assert sorted(conf["spark.jars"].split(",")) == sorted(str(p) for p in tmp_path.glob("*.jar"))
    assert jars.submit_args(tmp_path) == ["--jars", conf["spark.jars"], *log_settings]
    assert jars.submit_args(tmp_path, "3g")[-2:] == ["--driver-memory", "3g"]


def test_make_setup_fetched_the_jars_into_this_environment():
    # `make setup` (and so CI) fetches them with Maven: the tests then never hit the registry.
    assert jars.local_jars(), f"no delta-spark jars in {jars.jar_dir()}: run `python -m votelake.jars fetch`"
