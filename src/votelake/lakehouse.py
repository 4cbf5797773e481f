"""The lakehouse handle: the catalog and the Delta store of a run, addressed by table name.

Every job and tool reads and writes tables only through :class:`Lakehouse`;
:func:`load_catalog` is the catalog it binds, and :func:`canonical_sources`
reads the landed sources through their layouts.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
import time
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Callable, Iterable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from votelake import contracts, progress, quality, readers
from votelake.canonical import FIELDS
from votelake.catalog import Catalog, TableSpec
from votelake.config import QualitySettings, Settings
from votelake.layouts import Layout, load_layout
from votelake.storage import DeltaStore, WriteResult
from votelake.storage.retry import RetryPolicy
from votelake.transforms.canonicalize import CANONICAL_META, canonical_records, spark_type, wide_vote_history
from votelake.transforms.identifiers import identifier_hits, known_identifiers


PUBLISHES = "audit.publishes"
MANIFEST = readers.MANIFEST
PERSONS = "silver.persons"  # whose names, addresses and birth dates no publish may carry


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
    # Tables a manifest lists, as far as this handle has seen: a table once
    # listed stays listed, so staged writes need not read the manifest again.
    listed: set[str] = field(default_factory=set)
    # The manifest as last read, with the version of ``audit.runs`` it was read at.
    _manifest: tuple[int, dict[str, dict]] | None = field(default=None, repr=False, compare=False)

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

    def current(self, name: str) -> int | None:
        """The version readers use: the newest complete run's (:func:`votelake.readers.current_version`).

        Jobs read the tables other jobs made at this version, so a run killed
        between its commits is not seen until a re-run completes it.

        Returns:
            The version, or None when the table is absent.
        """
        return self.current_versions([name])[name]

    def current_versions(self, names: Iterable[str]) -> dict[str, int | None]:
        """:meth:`current` of several tables, reading the manifest once."""
        manifest = self.manifest()
        # exists() is a look at the table's folder; the history alone says the rest.
        return {name: self._current(name, manifest, self.store.history(self.catalog[name]))
                if self.store.exists(self.catalog[name]) else None for name in names}

    @staticmethod
    def _current(name: str, manifest: dict[str, dict], history: list[dict]) -> int | None:
        listed = manifest.get(name)
        return readers.current_version(None if listed is None else listed["version"], history)

    def read_current(self, name: str) -> DataFrame:
        """Read a table at its :meth:`current` version."""
        return self.read(name, version=self.current(name))

    def manifest(self) -> dict[str, dict]:
        """The newest ``audit.runs`` row of every table listed there (``run_id``, ``job``, ``version``)."""
        at = self.version(MANIFEST) if MANIFEST in self.catalog else None
        if at is None:
            return {}
        # Read again only when a run has completed since (a look at the Delta log): jobs ask before
        # their reads and writes, and each read of the rows is a Spark job of seconds.
        if self._manifest is None or self._manifest[0] != at:
            # One row per table per completed run.
            rows = self.read(MANIFEST, version=at).select("table_name", "version", "completed_at", "job",
                                                          "run_id").collect()
            self._manifest = (at, readers.manifest_versions(r.asDict() for r in rows))
        return dict(self._manifest[1])

    def complete(self, run_id: str, versions: dict[str, int]) -> bool:
        """Record a run's tables as the current complete set: one ``audit.runs`` commit, after its last table.

        Args:
            run_id: the run (a scoring run, a universe build, a run version).
            versions: each table the run published, and the version it made.

        Returns:
            False when the newest manifest already lists this run at these
            versions (a re-run of a complete run), else True.
        """
        listed = self.manifest()
        if all(name in listed and listed[name]["run_id"] == run_id and listed[name]["version"] == version
               for name, version in versions.items()):
            return False
        table = self.catalog[MANIFEST]
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        rows = [(run_id, str(self.job), name, int(version), now, self.run_version, operator())
                for name, version in sorted(versions.items())]
        self.store.write(self.spark.createDataFrame(rows, table.schema), table, "append")
        return True

    def baseline(self, names: Iterable[str]) -> None:
        """List the tables no manifest lists yet at their latest version, creating absent ones empty.

        Readers read a table no manifest lists at its latest version; once
        listed, they keep to the listed version until a job's manifest moves
        it. A job that publishes through the manifest calls this before its
        first write, so every write of it is staged (:meth:`write`): until
        its first run completes, readers see the tables as they were, or
        empty, never a version its gates have not passed.

        Args:
            names: the tables the job writes.
        """
        self.listed |= set(self.manifest())
        todo = [name for name in names if name not in self.listed]
        if not todo:
            return
        for name in todo:
            self.store.create(self.catalog[name])
        self.complete(f"baseline-{self.run_version}", {name: self.version(name) for name in todo})
        self.listed |= set(todo)

    def incomplete(self, names: Iterable[str]) -> dict[str, str]:
        """The tables a run has changed without completing: their latest version is past the current one.

        Returns:
            Table name to the job whose commit is pending.
        """
        manifest, pending = self.manifest(), {}
        for name in names:
            if not self.store.exists(self.catalog[name]):
                continue
            history = self.store.history(self.catalog[name])  # newest first
            if self._current(name, manifest, history) != history[0]["version"]:
                pending[name] = history[0]["metadata"].get(readers.JOB_KEY, "?")
        return pending

    def write(self, df: DataFrame, name: str, mode: str, step: str | None = None,
              metadata: dict[str, str] | None = None, gate: bool = True, staged: bool = False) -> WriteResult:
        """Write a DataFrame into a declared table (schema enforced by the store).

        Args:
            df: the rows.
            name: the table's catalog name.
            mode: ``append`` or ``overwrite``.
            step: distinguishes several writes of one job run to the same table
                (each needs its own application id).
            metadata: extra commit metadata.
            gate: run the table's quality gate (pass False when the
                caller already ran :meth:`check_quality` on these rows).
            staged: the job makes the write current through the run manifest
                (:meth:`complete`), so readers do not see it before then. When
                the manifest lists the table (:meth:`baseline`), the gate
                validates the table as written (a Delta read of the columns
                it checks) instead of the rows before the write, which would
                compute their whole plan once more; a failure raises before
                the job's manifest, and readers stay on the listed version. A
                table no manifest lists is read at its latest version, so
                there the rows are validated before they are written.

        Returns:
            What the store committed (``committed=False`` when this run version
            had already committed this write).

        Raises:
            QualityGateError: the table's quality gate failed; nothing is
                written, or (staged) the version written is not made current.
        """
        # Spark computes a table's rows when they are written: this is where the job's time goes.
        progress.stage(f"writing {name}")
        if staged and name not in self.listed:
            self.listed |= set(self.manifest())
        after = gate and staged and name in self.listed
        if gate and not after:
            self.check_quality(df, name)
        if self.job is None:
            result = self.store.write(df, self.catalog[name], mode, metadata=metadata)
        else:
            tags = {"votelake.job": self.job, **(metadata or {})}
            result = self.store.write(df, self.catalog[name], mode, app_id=self.app_id(step),
                                      run_version=self.run_version, metadata=tags)
        if after:
            # A write this run version had already committed is validated too:
            # a job killed between its write and the gate re-runs to here.
            self.check_quality(self.read(name, version=result.version), name, persist=False)
        return result

    def merge(self, df: DataFrame, name: str) -> WriteResult:
        """Upsert rows into a table by its primary key (Delta MERGE), recorded as this job's commit.

        The table's quality gate then validates the table as merged: its
        checks (unique keys, a row count that may only grow) are about the
        whole table, which only exists once merged.

        Args:
            df: the rows (keys unique).
            name: the table's catalog name.

        Returns:
            What the store committed.

        Raises:
            QualityGateError: the merged table fails its gate (the job stops there).
        """
        progress.stage(f"merging into {name}")
        result = self.store.merge(df, self.catalog[name], metadata={"votelake.job": self.job} if self.job else None)
        self.check_quality(self.read(name, version=result.version), name, persist=False)
        return result

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

    def latest_metadata(self, name: str, key: str, at: int | None = None) -> tuple[str, int] | None:
        """The newest commit metadata value under ``key``, and its table version.

        Args:
            name: the table.
            key: the metadata key.
            at: look at commits up to this version only (default: all).

        Returns:
            ``(value, version)``, or None when the table is absent or no commit recorded ``key``.
        """
        if self.version(name) is None:
            return None
        for commit in self.store.history(self.catalog[name]):
            value = (commit.get("metadata") or {}).get(key)
            if value and (at is None or commit["version"] <= at):
                return value, commit["version"]
        return None

    def run_versions(self, names: Iterable[str], key: str, run_id: str) -> dict[str, int | None]:
        """Per table, the version whose commit recorded ``run_id`` under ``key``, or None when it is still to do.

        A job run that writes several tables one after the other and is
        stopped between them is finished by a re-run, which writes only the
        tables still on another run.
        """
        found = {name: self.latest_metadata(name, key) for name in names}
        return {name: f[1] if f is not None and f[0] == run_id else None for name, f in found.items()}

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
            self._refuse_known_identifiers(df, contract)
            tags = {contracts.CONTRACT_METADATA_KEY: contract.to_json(),
                    "votelake.contract_version": contract.version, **(metadata or {})}
            if before_write is not None:
                tags.update(before_write(df))
            if allowed:
                tags["votelake.contract_breaking_changes"] = "; ".join(allowed)
            result = self.write(df, name, "overwrite", step=step, metadata=tags)
        finally:
            df.unpersist()
        if result.committed:
            self._record_publish(name, result.version, tags)
        return result

    def _refuse_known_identifiers(self, df: DataFrame, contract: contracts.Contract) -> None:
        """Block a publish whose free-text values hold a voter's full name, street address or birth date.

        The identifiers are those of ``silver.persons`` (nothing to check
        against before a build). The error names columns and counts, never a value.

        Raises:
            ContractError: some value holds one.
        """
        if PERSONS not in self.catalog or self.version(PERSONS) is None:
            return
        # A few rows: per column and kind of identifier found.
        hits = identifier_hits(df, contracts.free_text_columns(contract),
                               known_identifiers(self.read(PERSONS))).orderBy("column", "kind").collect()
        if hits:
            found = "; ".join(f"{h['values']} value(s) of {h['column']} hold a voter's {h['kind']}" for h in hits)
            raise contracts.ContractError(f"{contract.table} not published: {found} (values not shown)")

    def _record_publish(self, name: str, version: int, tags: dict[str, str]) -> None:
        """Append the publish to ``audit.publishes``: who, which run, the version, what was forced."""
        table = self.catalog[PUBLISHES]
        row = (dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0), name, int(version), self.job,
               self.run_version, operator(), tags.get("votelake.contract_version"),
               "votelake.forced_reason" in tags, tags.get("votelake.forced_reason"),
               tags.get("votelake.contract_breaking_changes"))
        self.store.write(self.spark.createDataFrame([row], table.schema), table, "append")

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
        progress.stage(f"checking {name}")
        previous = quality.previous_row_count(self.quality.results_dir, name)
        quality.enforce(self.validate(df, suite, f"{self.job}-{self.run_version}", previous, persist))

    def render_quality_docs(self) -> str | None:
        """Render the stored validation results as Data Docs; the index page, or None without gates."""
        if self.quality is None or not self.gates:
            return None
        return str(quality.build_data_docs(self.quality.results_dir))

    def replace_where(self, df: DataFrame, name: str, predicate: str, attempts: int | None = None) -> WriteResult:
        """Atomically replace the rows matching ``predicate`` with ``df`` (replaceWhere), whichever run does it.

        No run-version skip: the predicate names what the rows are (e.g. the
        files a load holds), so writing them twice leaves one copy, and two
        writers that race conflict in Delta and the retry replaces the other's rows.

        Args:
            df: the new rows (each must match ``predicate``).
            name: the table's catalog name.
            predicate: a Spark SQL condition over the table's columns.
            attempts: commit attempts when racing writers keep winning (default: the store's).

        Returns:
            What the store committed.
        """
        policy = RetryPolicy(attempts=attempts) if attempts else None
        progress.stage(f"writing {name}")
        return self.store.overwrite_where(df, self.catalog[name], predicate, retry_policy=policy,
                                          metadata={"votelake.job": str(self.job)})

    def quality_report(self) -> dict:
        """The gates this job ran (table, pass/fail, warnings) and the Data Docs page."""
        gates = [{"table": g["table"], "success": g["success"], "rows": g["rows"],
                  "warnings": g["warnings"], "seconds": g["seconds"]} for g in self.gates]
        return {"gates": gates, "data_docs": self.render_quality_docs()}


def operator() -> str:
    """Who is running this: ``user@host`` (recorded in the audit tables)."""
    return f"{getpass.getuser()}@{socket.gethostname()}"


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


def _empty_canonical(lake: Lakehouse, kind: str) -> DataFrame:
    """No records of a kind, in its canonical columns (for kinds no source delivered)."""
    cols = [F.lit(None).cast(spark_type(t)).alias(f) for f, t in FIELDS[kind].items()]
    meta_types = {"_snapshot_date": "date"}
    meta = [F.lit(None).cast(meta_types.get(c, "string")).alias(c) for c in CANONICAL_META]
    return lake.spark.range(0).select(*cols, *meta)


def canonical_sources(lake: Lakehouse, settings: Settings) -> dict[str, DataFrame]:
    """Every loaded source read through its layout, unioned by canonical kind.

    Args:
        lake: the lakehouse.
        settings: the run configuration (``sources``, ``layouts``).

    Returns:
        ``voters``, ``vote_history``, ``contacts``, ``digital``,
        ``experiments``: canonical records (empty DataFrames for kinds no
        source delivered). A voter file with per-election columns adds its
        votes to ``vote_history``.
    """
    parts: dict[str, list[DataFrame]] = {kind: [] for kind in FIELDS}
    for src in settings.sources:
        table = f"bronze.{src.name}"
        if lake.version(table) is None:
            continue
        layout: Layout = load_layout(settings.layouts, src.layout)
        records = canonical_records(lake.read(table), layout)
        if layout.wide_history is not None:
            parts["vote_history"].append(wide_vote_history(records, layout))
            records = records.drop(layout.wide_history.column)
        parts[layout.kind].append(records)
    return {kind: reduce(DataFrame.unionByName, dfs) if dfs else _empty_canonical(lake, kind)
            for kind, dfs in parts.items()}
