"""What every job shares: the lakehouse handle and the thin ``main()`` shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.storagelevel import StorageLevel

from votelake import contracts, quality
from votelake.catalog import Catalog, TableSpec
from votelake.config import ConfigError, QualitySettings, Settings, load_settings
from votelake.session import build_spark
from votelake.storage import DeltaStore, WriteResult


@dataclass
class Lakehouse:
    """The catalog and the Delta store of one job run, addressed by table name.

    When opened for a job, every write records the application id
    ``votelake.<job>[.<step>]`` and the run version in the table's Delta log, so
    re-running the same run version commits nothing new.
    """

    spark: SparkSession
    catalog: Catalog
    store: DeltaStore
    job: str | None = None
    run_version: int | None = None
    quality: QualitySettings | None = None
    gates: list[dict] = field(default_factory=list)
    # Contracts of the published tables, and where their checks are recorded.
    published: dict[str, contracts.Contract] = field(default_factory=dict)
    reports: Path = Path("reports/quality")

    @classmethod
    def open(cls, spark: SparkSession, settings: Settings, job: str | None = None) -> "Lakehouse":
        """Bind the catalog to the session's Delta store.

        Args:
            spark: the job's session.
            settings: the run configuration (``run.version`` fixes the run version).
            job: the job writing through this handle; ``None`` for read-only use.

        Returns:
            The lakehouse.
        """
        published = contracts.load_contracts(settings.storage.contracts)
        catalog = load_catalog(settings, published=published)
        run_version = settings.run.version if settings.run.version is not None else time.time_ns() // 1_000_000
        return cls(spark=spark, catalog=catalog, store=DeltaStore(spark), job=job,
                   run_version=run_version if job else None,
                   quality=settings.quality if job and settings.quality.enabled else None,
                   published=published, reports=settings.quality.results_dir)

    def table(self, name: str) -> TableSpec:
        """The declared table."""
        return self.catalog[name]

    def read(self, name: str, version: int | None = None) -> DataFrame:
        """Read a table (optionally as of a version)."""
        return self.store.read(self.catalog[name], version=version)

    def version(self, name: str) -> int | None:
        """The table's latest committed version."""
        return self.store.version(self.catalog[name])

    def write(self, df: DataFrame, name: str, mode: str, step: str | None = None,
              metadata: dict[str, str] | None = None, gate: bool = True) -> WriteResult:
        """Write a DataFrame into a declared table (schema enforced by the store).

        Args:
            df: the rows.
            name: the table's catalog name.
            mode: ``append`` or ``overwrite``.
            step: distinguishes several writes of one job run to the same table
                (each needs its own application id).
            metadata: extra commit metadata.
            gate: run the table's quality gate first (pass False when the
                caller already ran :meth:`check_quality` on these rows).

        Returns:
            What the store committed (``committed=False`` when this run version
            had already committed this write).

        Raises:
            QualityGateError: the table's quality gate failed; nothing is written.
        """
        if gate:
            self.check_quality(df, name)
        if self.job is None:
            return self.store.write(df, self.catalog[name], mode, metadata=metadata)
        app_id = self.app_id(step)
        tags = {"votelake.job": self.job, **(metadata or {})}
        return self.store.write(
            df, self.catalog[name], mode, app_id=app_id, run_version=self.run_version, metadata=tags
        )

    def app_id(self, step: str | None = None) -> str:
        """The application id this job's writes record: ``votelake.<job>[.<step>]``."""
        return ".".join(p for p in ("votelake", self.job, step) if p)

    def run_already_committed(self, names: Iterable[str]) -> bool:
        """Tell whether this job run (its run version, or a later one) has already written every table.

        Lets a re-run with a committed run version stop before recomputing rows
        that every write would then skip.

        Args:
            names: the tables the job writes (without a step).
        """
        runs = [self.store.committed_run(self.catalog[name], self.app_id()) for name in names]
        return all(run is not None and run >= self.run_version for run in runs)

    def latest_metadata(self, name: str, key: str) -> tuple[str, int] | None:
        """The newest commit metadata value under ``key``, and its table version.

        Returns:
            ``(value, version)``, or None when the table is absent or no commit recorded ``key``.
        """
        if self.version(name) is None:
            return None
        for commit in self.store.history(self.catalog[name]):
            value = (commit.get("metadata") or {}).get(key)
            if value:
                return value, commit["version"]
        return None

    def published_contract(self, name: str) -> contracts.Contract | None:
        """The contract recorded with the table's latest publish (None: never published under one)."""
        found = self.latest_metadata(name, contracts.CONTRACT_METADATA_KEY)
        if found is None:
            return None
        return contracts.parse_contract(json.loads(found[0]), f"{name} v{found[1]} commit metadata")

    def validate(self, df: DataFrame, suite: quality.Suite, run_id: str, previous_rows: int | None = None,
                 persist: bool = True) -> quality.GateResult:
        """Run a Great Expectations suite, record it in ``gates`` and render the Data Docs when it failed.

        Args:
            df: the rows.
            suite: the suite.
            run_id: names the stored result.
            previous_rows: the previous load's row count (for ``row_count_change``).
            persist: cache ``df`` while it is validated.

        Returns:
            The result; the caller decides whether to :func:`votelake.quality.enforce` it.
        """
        result = quality.run_gate(df, suite, previous_rows=previous_rows, results_dir=self.reports, run_id=run_id,
                                  persist=persist)
        self.gates.append(result.summary())
        if not result.success:
            quality.build_data_docs(self.reports)
        return result

    def publish(self, df: DataFrame, name: str, metadata: dict[str, str] | None = None,
                step: str | None = None,
                before_write: Callable[[DataFrame], dict[str, str]] | None = None) -> WriteResult:
        """Publish rows as the table's new version, under its data contract.

        The rows are clustered (range-partitioned and sorted by the contract's
        ``partition_by`` and ``cluster_by``, so each file holds a narrow range
        of counties and precincts and readers skip the rest by file
        statistics) and cached; then, in order: the schema against the
        contract, the contract against the one recorded with the previous
        publish (:func:`votelake.contracts.check_publish`), the contract's
        value expectations in Great Expectations, and the table's own suite if
        it has one. Only then is the table overwritten, in one commit that
        records the contract.

        Args:
            df: the rows.
            name: a published table (one with a contract).
            metadata: extra commit metadata (e.g. the scoring run).
            step: distinguishes several writes of one job run to the same table.
            before_write: a further gate on the clustered, cached rows (e.g. the
                score distributions against the published run's); it raises to
                block the publish and returns commit metadata.

        Returns:
            What the store committed.

        Raises:
            ContractError: the rows or the contract break the contract; nothing is written.
            QualityGateError: a value expectation failed; nothing is written.
        """
        if name not in self.published:
            raise contracts.ContractError(f"{name} has no data contract in conf/contracts; it cannot be published")
        contract = self.published[name]
        allowed = contracts.check_publish(df.schema, contract, self.published_contract(name))
        if contract.cluster_by:
            # As many files as shuffle partitions, each a contiguous range of the
            # clustering columns (an explicit count, so adaptive execution keeps it).
            order = [*contract.partition_by, *contract.cluster_by]
            files = int(self.spark.conf.get("spark.sql.shuffle.partitions"))
            df = df.repartitionByRange(files, *order).sortWithinPartitions(*order)
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            quality.enforce(self.validate(df, contracts.expectation_suite(contract),
                                          f"{self.job}-{self.run_version}-contract", persist=False))
            tags = {contracts.CONTRACT_METADATA_KEY: contract.to_json(),
                    "votelake.contract_version": contract.version, **(metadata or {})}
            if before_write is not None:
                tags.update(before_write(df))
            if allowed:
                tags["votelake.contract_breaking_changes"] = "; ".join(allowed)
            return self.write(df, name, "overwrite", step=step, metadata=tags)
        finally:
            df.unpersist()

    def check_quality(self, df: DataFrame, name: str, persist: bool = True) -> None:
        """Run the table's quality gate (``conf/expectations/<name>.yaml``) on rows about to be written.

        Does nothing for a table without a suite, or when gates are off or the
        lakehouse was opened read-only. The result is recorded in ``gates``.

        Args:
            df: the rows.
            name: the table's catalog name.
            persist: cache ``df`` while it is validated (pass False when it is
                cheap to recompute, e.g. derived from a cached DataFrame).

        Raises:
            QualityGateError: a critical expectation failed; nothing is written.
                The Data Docs are rendered first, so the failure can be read there.
        """
        if self.quality is None:
            return
        suite = quality.load_suite(self.quality.expectations, name)
        if suite is None:
            return
        previous = quality.previous_row_count(self.quality.results_dir, name)
        quality.enforce(self.validate(df, suite, f"{self.job}-{self.run_version}", previous, persist))

    def render_quality_docs(self) -> str | None:
        """Render the stored validation results as Data Docs; the index page, or None without gates."""
        if self.quality is None or not self.gates:
            return None
        return str(quality.build_data_docs(self.quality.results_dir))

    def replace_where(self, df: DataFrame, name: str, predicate: str, step: str | None = None) -> WriteResult:
        """Atomically replace the rows matching ``predicate`` with ``df`` (replaceWhere).

        Args:
            df: the new rows (each must match ``predicate``).
            name: the table's catalog name.
            predicate: a Spark SQL condition over the table's columns.
            step: distinguishes several writes of one job run to the same table.

        Returns:
            What the store committed.
        """
        app_id = self.app_id(step)
        tags = {"votelake.job": str(self.job)}
        return self.store.overwrite_where(df, self.catalog[name], predicate, app_id=app_id if self.job else None,
                                          run_version=self.run_version, metadata=tags)


    def quality_report(self) -> dict:
        """The gates this job ran (table, pass/fail, warnings) and the Data Docs page."""
        gates = [{"table": g["table"], "success": g["success"], "rows": g["rows"],
                  "warnings": g["warnings"], "seconds": g["seconds"]} for g in self.gates]
        return {"gates": gates, "data_docs": self.render_quality_docs()}


JobRun = Callable[[SparkSession, Settings], dict]


class JobFailed(Exception):
    """A job raised; carries the job's name (the cause is ``__cause__``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and the start of its message.

    Args:
        exc: the exception.
        limit: the most characters of message kept.

    Returns:
        ``Type: message``, with the message's lines joined and cut at ``limit``.
    """
    # Spark and layout errors run over many lines; the first few say what went wrong.
    message = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(message) > limit:
        message = message[:limit].rstrip() + " ..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def report_failure(error: BaseException, what: str, settings: Settings | None = None) -> None:
    """Print the traceback, then one last line saying what failed and why (what a scheduler's log shows).

    A Spark JVM that died (out of memory, killed by a signal) is named as such,
    with the setting to change, instead of the bare Py4J error it surfaces as.

    Args:
        error: the exception.
        what: what failed, e.g. ``job ingest``.
        settings: the run's configuration, to quote its memory setting.
    """
    traceback.print_exception(error, file=sys.stderr)
    death = jvm_death(error, settings)
    print(f"votelake: {what} failed: {death or one_line(error)}", file=sys.stderr)


# How a dead JVM reaches Python: Py4J loses its socket, or the JVM's own error text arrives.
_LOST_JVM = ("Answer from Java side is empty", "Error while sending or receiving",
             "Error while receiving", "Connection refused", "Broken pipe", "Connection reset")


def jvm_death(error: BaseException, settings: Settings | None = None) -> str | None:
    """Say so when an error means the Spark JVM died, and which setting to change.

    Args:
        error: the exception a job raised.
        settings: the run's configuration (for the memory it asked for).

    Returns:
        One line naming the cause and the setting, or None when the JVM did not die.
    """
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    texts = [f"{type(e).__module__}.{type(e).__name__}: {e}" for e in chain]
    memory = settings.spark.driver_memory if settings is not None else "its default"
    if any("java.lang.OutOfMemoryError" in t for t in texts):
        return (f"the Spark JVM ran out of memory (java.lang.OutOfMemoryError): raise spark.driver_memory "
                f"(now {memory}), e.g. --set spark.driver_memory=12g; on a cluster, "
                "spark.conf.spark.executor.memory")
    status = _jvm_exit_status()
    lost = status is not None or any(type(e).__name__ == "Py4JNetworkError" for e in chain) \
        or any(t.startswith("py4j.") and any(m in t for m in _LOST_JVM) for t in texts)
    if not lost:
        return None
    how = ("was killed by SIGKILL, most often the kernel's out-of-memory killer" if status == -9
           else f"was killed by signal {-status}" if status is not None and status < 0
           else f"exited with status {status}" if status is not None else "stopped answering")
    return (f"the Spark JVM {how}: if memory ran out, spark.driver_memory (now {memory}) must fit in the "
            "machine's free memory with room for Python workers (lower it, or raise it for a larger state "
            "on a larger machine); its own log above says more")


def _jvm_exit_status() -> int | None:
    """The local Spark JVM's exit status, when this process launched it and it has exited."""
    # Only for this report: PySpark keeps the launched JVM's process on its gateway;
    # there is no public API for it. Absent under spark-submit and Spark Connect.
    from pyspark import SparkContext

    process = getattr(getattr(SparkContext, "_gateway", None), "proc", None)
    return process.poll() if process is not None else None


def load_catalog(settings: Settings, lakehouse: Path | None = None,
                 published: dict[str, contracts.Contract] | None = None) -> Catalog:
    """The catalog the jobs use: ``tables.yaml``, a bronze table per landing source, the contracts' tables.

    Args:
        settings: the run configuration.
        lakehouse: the lakehouse root (default ``storage.lakehouse``).
        published: the contracts, when the caller already loaded them.

    Returns:
        The catalog.
    """
    if published is None:
        published = contracts.load_contracts(settings.storage.contracts)
    return Catalog.load(settings.storage.catalog, settings.storage.lakehouse if lakehouse is None else lakehouse,
                        settings.layouts, [(s.name, s.layout) for s in settings.sources],
                        contracts.catalog_entries(published))


def parse_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments every job takes: ``--conf FILE`` and repeatable ``--set key=value``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--conf", default=None, help="YAML config (default: the packaged conf/local.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set synth.voters=5000 (repeatable)",
    )
    return parser.parse_args(argv)


def session_for(settings: Settings) -> SparkSession:
    """Build the job's SparkSession from the configuration (the one factory)."""
    return build_spark(settings.spark, settings.storage.metastore)


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
        try:
            summary = run(spark, settings)
        except Exception as exc:
            raise JobFailed(name) from exc
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
    try:
        return run_jobs(settings, [(name, run)])[name]
    except Exception as exc:
        # spark-submit passes the 1 on to the scheduler.
        report_failure((exc.__cause__ or exc) if isinstance(exc, JobFailed) else exc, f"job {name}", settings)
        raise SystemExit(1) from None
