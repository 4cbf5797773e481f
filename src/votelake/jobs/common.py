"""What every job shares: the lakehouse handle and the thin ``main()`` shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from pyspark.sql import DataFrame, SparkSession

from votelake.catalog import Catalog, TableSpec
from votelake.config import ConfigError, Settings, load_settings
from votelake.session import DELTA_EXTENSION, build_spark, resolve_backend
from votelake.storage import DeltaStore, WriteResult, open_store


@dataclass
class Lakehouse:
    """The catalog and the Delta store of one run, addressed by table name."""

    spark: SparkSession
    catalog: Catalog
    store: DeltaStore

    @classmethod
    def open(cls, spark: SparkSession, settings: Settings) -> "Lakehouse":
        """Bind the catalog to the session's Delta backend.

        A session started with delta-spark's extension (e.g. by ``spark-submit
        --packages``) uses delta-spark; otherwise delta-rs.

        Args:
            spark: the job's session.
            settings: the run configuration.

        Returns:
            The lakehouse.
        """
        backend = settings.storage.backend
        if backend == "auto":
            extensions = spark.conf.get("spark.sql.extensions", "") or ""
            backend = "delta-spark" if DELTA_EXTENSION in extensions else "delta-rs"
        catalog = Catalog.load(settings.storage.catalog, settings.storage.lakehouse, settings.layouts)
        return cls(spark=spark, catalog=catalog, store=open_store(spark, backend))

    def table(self, name: str) -> TableSpec:
        """The declared table."""
        return self.catalog[name]

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """Read a table (optionally as of a version)."""
        return self.store.read(self.catalog[name], version=version)

    def version(self, name: str) -> int | None:
        """The table's latest committed version."""
        return self.store.version(self.catalog[name])

    def write(self, df: DataFrame, name: str, mode: str, **kwargs) -> WriteResult:
        """Write a DataFrame into a declared table (schema enforced by the store)."""
        return self.store.write(df, self.catalog[name], mode, **kwargs)


JobRun = Callable[[SparkSession, Settings], dict]


def parse_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments every job takes: ``--conf FILE`` and repeatable ``--set key=value``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf", default=None, help="YAML config (default: conf/local.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set synth.voters=5000 (repeatable)",
    )
    return parser.parse_args(argv)


def session_for(settings: Settings) -> SparkSession:
    """Build the job's SparkSession from the configuration (the one factory)."""
    return build_spark(settings.spark, resolve_backend(settings.spark, settings.storage))


def run_jobs(settings: Settings, jobs: Sequence[tuple[str, JobRun]]) -> dict[str, dict]:
    """Run jobs in order on one session, timing each.

    Args:
        settings: the validated configuration.
        jobs: ``(name, run)`` pairs.

    Returns:
        Each job's summary, with ``seconds`` added.
    """
    spark = session_for(settings)
    results: dict[str, dict] = {}
    for name, run in jobs:
        started = time.perf_counter()
        summary = run(spark, settings)
        summary["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = summary
        print(f"[votelake] {name}: " + json.dumps(summary, default=str), flush=True)
    return results


def job_main(name: str, run: JobRun, description: str, argv: Sequence[str] | None = None) -> dict:
    """The thin shell of every job: parse, load config, build the session, run.

    Args:
        name: the job's name (for messages).
        run: the job's ``run(spark, settings)``.
        description: the ``--help`` text.
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The job's summary.
    """
    args = parse_args(description, argv)
    try:
        settings = load_settings(args.conf, args.overrides)
    except ConfigError as exc:
        print(f"votelake {name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return run_jobs(settings, [(name, run)])[name]
