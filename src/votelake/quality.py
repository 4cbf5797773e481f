"""Data-quality gates: Great Expectations suites run inside the jobs.

Each table may have a suite in ``conf/expectations/<table>.yaml`` (for example
``bronze.ncvoter.yaml``), written in a small format of our own::

    table: silver.vote_history
    expectations:
      - expect_column_values_to_not_be_null: {column: person_id}
        severity: critical
      - expect_column_values_to_be_in_set: {column: election_type, value_set: [GENERAL, PRIMARY]}
        severity: warning
        notes: why this expectation exists (optional, shown in Data Docs)
    row_count_change: {max_drop: 0.10, max_growth: 0.50, min_rows: 1, severity: critical}

Every ``expect_*`` key is a Great Expectations 1.x core expectation and its
mapping holds that expectation's arguments (``mostly`` included); an unknown
key, expectation type or argument fails when the suite is loaded, naming it.
``row_count_change`` bounds this load's row count against the previous load's
(``ExpectTableRowCountToBeBetween``).

A job validates a DataFrame before it writes it (:func:`run_gate`), then calls
:func:`enforce`: a failed ``critical`` expectation raises
:class:`QualityGateError`, so nothing is published; failed ``warning``
expectations are only recorded. Every validation is stored as one JSON file
(Great Expectations' own result format, with the gate's summary in its
``meta``) under ``<results_dir>/validations/<table>/`` and as one line of the
append-only ``<results_dir>/index.jsonl``; :func:`build_data_docs` renders the
stored results as Great Expectations Data Docs under
``<results_dir>/data_docs/``.

Great Expectations is imported only when a suite is parsed or run: the import
takes seconds, and jobs without gates should not pay for it.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from votelake import webassets

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

Severity = Literal["critical", "warning"]

VALIDATIONS_DIR = "validations"
DOCS_DIR = "data_docs"
INDEX_FILE = "index.jsonl"
# Data Docs pages already rendered, so a build renders only new results.
_RENDERED_FILE = ".rendered"
_DATASOURCE = "votelake"
_SITE = "local_site"
# Unexpected values fetched per failed expectation (see run_gate), and how many
# distinct ones a message quotes.
SAMPLE_SIZE = 20
_QUOTED_SAMPLES = 5
# Checks whose unexpected values are personal data (the e-mail and phone scans):
# never sampled, so no message, result file or Data Docs page quotes them.
UNQUOTED = ("expect_column_values_to_not_match_regex", "expect_column_values_to_not_match_regex_list")
# Keys of an expectation entry besides its one ``expect_*`` key.
_ENTRY_KEYS = ("severity", "notes")


class SuiteError(ValueError):
    """A suite file is malformed: unknown key, unknown expectation type, bad arguments."""


class QualityGateError(RuntimeError):
    """A critical expectation failed; the job must stop before publishing.

    Attributes:
        result: the gate's full result.
    """

    def __init__(self, result: "GateResult"):
        self.result = result
        super().__init__(result.failure_message())


@functools.cache
def expectation_types() -> dict[str, type]:
    """Every Great Expectations core expectation, by its snake_case type.

    Returns:
        ``{"expect_column_values_to_not_be_null": ExpectColumnValuesToNotBeNull, ...}``.
    """
    import great_expectations.expectations as gxe
    from great_expectations.expectations.expectation import Expectation

    types: dict[str, type] = {}
    for name in dir(gxe):
        obj = getattr(gxe, name)
        if isinstance(obj, type) and issubclass(obj, Expectation) and getattr(obj, "expectation_type", ""):
            types[obj.expectation_type] = obj
    return types


class _Strict(BaseModel):
    # A misspelt key must fail, never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectationSpec(_Strict):
    """One expectation of a suite: its type, arguments, severity and notes."""

    type: str
    kwargs: dict[str, Any]
    severity: Severity
    notes: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_entry(cls, entry: Any) -> Any:
        # The file says {expect_x: {args}, severity: ..., notes: ...}; the model
        # keeps the type and its arguments apart.
        if not isinstance(entry, dict):
            raise ValueError("an expectation is a mapping {expect_...: {arguments}, severity: critical|warning}")
        types = expectation_types()
        named = [k for k in entry if k not in _ENTRY_KEYS]
        known = [k for k in named if k in types]
        unknown = [k for k in named if k not in types]
        if unknown:
            if not known and len(unknown) == 1 and str(unknown[0]).startswith("expect_"):
                raise ValueError(f"unknown expectation type {unknown[0]!r}")
            raise ValueError(f"unknown key(s) {unknown}; an entry holds one expect_* key, severity and notes")
        if len(known) != 1:
            raise ValueError(f"an entry holds exactly one expect_* key, found {known or 'none'}")
        args = entry[known[0]]
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ValueError(f"{known[0]}: arguments must be a mapping, got {args!r}")
        out = {"type": known[0], "kwargs": args}
        out.update({k: entry[k] for k in _ENTRY_KEYS if k in entry})
        return out

    @model_validator(mode="after")
    def _arguments_valid(self) -> "ExpectationSpec":
        # Great Expectations validates the arguments (unknown or missing ones,
        # bad types); its message names the argument.
        try:
            self.to_gx()
        except Exception as exc:
            # Its pydantic message spans lines; one line reads better in a job log.
            detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ValueError(f"{self.type}: {detail}") from None
        return self

    def to_gx(self, extra_meta: dict | None = None) -> Any:
        """Build the Great Expectations expectation.

        Args:
            extra_meta: the expectation's ``meta``.

        Returns:
            A ``gx.expectations.Expect...`` instance with ``severity`` set.
        """
        # Data Docs render notes but not the severity field, so the notes carry it too.
        notes = f"Severity: {self.severity}." + (f" {self.notes}" if self.notes else "")
        return expectation_types()[self.type](
            **copy.deepcopy(self.kwargs), severity=self.severity, notes=notes, meta=dict(extra_meta or {})
        )


class RowCountChange(_Strict):
    """How much a load's row count may differ from the previous load's."""

    # Fraction of the previous row count that may disappear (0.1: at least 90% remain).
    max_drop: float = Field(ge=0.0, le=1.0)
    # Fraction it may grow by; null: no upper bound.
    max_growth: float | None = Field(ge=0.0)
    # Floor on every load, the first included.
    min_rows: int = Field(0, ge=0)
    severity: Severity

    def bounds(self, previous_rows: int | None) -> tuple[int, int | None]:
        """The allowed row count given the previous load's.

        Args:
            previous_rows: the previous load's row count, or ``None`` on the first load.

        Returns:
            ``(min_rows, max_rows)``; ``max_rows`` is ``None`` when unbounded (no
            previous load, an empty previous load, or no ``max_growth``).
        """
        if previous_rows is None:
            return self.min_rows, None
        # Rounded before ceil/floor so that 1000 * 0.9 is 900, not 900.0000000001 → 901.
        low = max(self.min_rows, math.ceil(round(previous_rows * (1.0 - self.max_drop), 6)))
        high = None
        if self.max_growth is not None and previous_rows > 0:
            high = math.floor(round(previous_rows * (1.0 + self.max_growth), 6))
        return low, high


class Suite(_Strict):
    """A table's suite as written in ``conf/expectations/<table>.yaml``."""

    table: str = Field(pattern=r"^(bronze|silver|gold)\.[a-z][a-z0-9_]*$")
    expectations: list[ExpectationSpec] = Field(min_length=1)
    row_count_change: RowCountChange

    def to_gx(self, previous_rows: int | None) -> Any:
        """Build the Great Expectations suite for one load.

        Args:
            previous_rows: the previous load's row count (``None``: first load).

        Returns:
            A ``gx.ExpectationSuite`` named after the table: the suite's
            expectations, then ``expect_table_row_count_to_be_between`` with the
            bounds of ``row_count_change``.
        """
        import great_expectations as gx
        import great_expectations.expectations as gxe

        low, high = self.row_count_change.bounds(previous_rows)
        change = self.row_count_change
        row_count = gxe.ExpectTableRowCountToBeBetween(
            min_value=low,
            max_value=high,
            severity=change.severity,
            notes=f"Severity: {change.severity}. Row count against the previous load"
            + ("" if previous_rows is None else f" ({previous_rows:,} rows)")
            + f": at most {change.max_drop * 100:g}% fewer"
            + ("" if change.max_growth is None else f", at most {change.max_growth * 100:g}% more")
            + (f", at least {change.min_rows:,}" if change.min_rows else "")
            + ".",
            meta={"row_count_change": {**change.model_dump(), "previous_rows": previous_rows}},
        )
        expectations = [e.to_gx() for e in self.expectations] + [row_count]
        return gx.ExpectationSuite(name=self.table, expectations=expectations)


def critical_suite(table: str, entries: list[dict]) -> Suite:
    """A suite built in code: every entry critical, the row count unbounded.

    Args:
        table: the suite's name (``layer.name``).
        entries: expectation entries as a suite file writes them
            (``{expect_...: {arguments}, notes: ...}``).

    Returns:
        The suite.
    """
    return Suite(
        table=table,
        expectations=[ExpectationSpec.model_validate({**e, "severity": "critical"}) for e in entries],
        row_count_change=RowCountChange(max_drop=1.0, max_growth=None, min_rows=0, severity="warning"),
    )


def _error_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse_suite(raw: Any, source: str = "<suite>") -> Suite:
    """Validate a suite read from YAML.

    Args:
        raw: the parsed YAML document.
        source: where it came from, for messages.

    Returns:
        The suite.

    Raises:
        SuiteError: naming the unknown key, unknown expectation type or bad argument.
    """
    if not isinstance(raw, dict):
        raise SuiteError(f"{source}: a suite is a mapping with table, expectations, row_count_change")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(f"{source}: {_error_text(exc)}") from None


def load_suite(expectations_dir: Path, table: str) -> Suite | None:
    """Load the suite of a table, if it has one.

    Args:
        expectations_dir: the suites' folder (``conf/expectations``).
        table: the table's catalog name, e.g. ``silver.vote_history``.

    Returns:
        The suite, or ``None`` when ``<expectations_dir>/<table>.yaml`` does not exist.

    Raises:
        SuiteError: the file is malformed or names another table.
    """
    path = Path(expectations_dir) / f"{table}.yaml"
    if not path.is_file():
        return None
    suite = parse_suite(yaml.safe_load(path.read_text()), str(path))
    if suite.table != table:
        raise SuiteError(f"{path}: names table {suite.table!r}; the file name says {table!r}")
    return suite


def load_suites(expectations_dir: Path) -> dict[str, Suite]:
    """Load every suite of a folder (to check them all before a job starts).

    Args:
        expectations_dir: the suites' folder.

    Returns:
        Suites by table name.

    Raises:
        SuiteError: a file is malformed or its name is not its table's.
    """
    suites = {}
    for path in sorted(Path(expectations_dir).glob("*.yaml")):
        suite = load_suite(path.parent, path.stem)
        if suite is not None:
            suites[suite.table] = suite
    return suites


@dataclass(frozen=True)
class Outcome:
    """One expectation's result, as the gate reports it."""

    expectation: str  # type and arguments, e.g. "expect_column_values_to_not_be_null(column=ncid)"
    type: str
    severity: str
    success: bool
    observed: str  # e.g. "3 of 1,000 rows unexpected (0.3%), e.g. None" or "observed 950"
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None


@dataclass(frozen=True)
class GateResult:
    """What a gate found.

    ``success`` is False only when a critical expectation failed; failed
    warnings are in ``warnings``.
    """

    table: str
    run_id: str
    success: bool
    rows: int | None
    previous_rows: int | None
    row_count_bounds: tuple[int, int | None]
    outcomes: tuple[Outcome, ...]
    path: Path
    validated_at: str
    seconds: float

    @property
    def critical_failures(self) -> tuple[Outcome, ...]:
        """Failed critical expectations."""
        return tuple(o for o in self.outcomes if not o.success and o.severity == "critical")

    @property
    def warnings(self) -> tuple[Outcome, ...]:
        """Failed warning expectations."""
        return tuple(o for o in self.outcomes if not o.success and o.severity != "critical")

    def summary(self) -> dict:
        """A short JSON-able summary for a job's report and the index."""
        return {
            "table": self.table,
            "run_id": self.run_id,
            "success": self.success,
            "rows": self.rows,
            "previous_rows": self.previous_rows,
            "row_count_bounds": list(self.row_count_bounds),
            "evaluated": len(self.outcomes),
            "critical_failures": [f"{o.expectation}: {o.observed}" for o in self.critical_failures],
            "warnings": [f"{o.expectation}: {o.observed}" for o in self.warnings],
            "validated_at": self.validated_at,
            "seconds": self.seconds,
            "path": str(self.path),
        }

    def failure_message(self) -> str:
        """The failed expectations, one per line, with their observed values."""
        lines = [
            f"quality gate failed for {self.table} (run {self.run_id}): "
            f"{len(self.critical_failures)} critical expectation(s) failed"
        ]
        lines += [f"  - {o.expectation}: {o.observed}" for o in self.critical_failures]
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  - {o.expectation}: {o.observed}" for o in self.warnings]
        lines.append(f"results: {self.path}")
        return "\n".join(lines)


def _short(value: Any, limit: int = 6) -> str:
    if isinstance(value, (list, tuple, set)) and len(value) > limit:
        return f"[{len(value)} values]"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict) and "pass_through_filter" in value:
        # A row_condition as Great Expectations stores it.
        return repr(value["pass_through_filter"])
    return repr(value) if isinstance(value, str) else str(value)


def _sample(value: Any) -> str:
    # Unexpected values as a reader wants them: quoted strings, plain dates and numbers.
    return repr(value) if isinstance(value, str) or value is None else str(value)


def describe(expectation_config: Any) -> str:
    """Name an expectation by its type and arguments (long value lists abbreviated).

    Args:
        expectation_config: a Great Expectations ``ExpectationConfiguration``.

    Returns:
        e.g. ``expect_column_values_to_be_between(column=birth_year, min_value=1900, max_value=2010)``.
    """
    args = ", ".join(
        f"{k}={_short(v) if not isinstance(v, str) else v}"
        for k, v in expectation_config.kwargs.items()
        if k != "batch_id" and v is not None
    )
    name = f"{expectation_config.type}({args})"
    change = (expectation_config.meta or {}).get("row_count_change")
    if change is not None:
        previous = change.get("previous_rows")
        against = "(first load)" if previous is None else f"(previous load {previous:,} rows)"
        name = f"row count change {against}: {name}"
    return name


def _exception_message(info: Any) -> str | None:
    # exception_info is either one {"raised_exception": ...} record or a mapping
    # of metric id to such records.
    if not isinstance(info, dict):
        return None
    records = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for record in records:
        if record.get("raised_exception"):
            message = str(record.get("exception_message") or "exception").strip().splitlines()
            return message[0] if message else "exception"
    return None


def _observed(validation_result: Any) -> str:
    error = _exception_message(validation_result.exception_info)
    if error is not None:
        return f"error: {error}"
    res = validation_result.result or {}
    if res.get("unexpected_count") is not None and res.get("element_count") is not None:
        text = f"{res['unexpected_count']:,} of {res['element_count']:,} rows unexpected"
        if res.get("unexpected_percent") is not None:
            text += f" ({res['unexpected_percent']:.3g}%)"
        # Distinct values of the sample (the first unexpected rows found), not of the table.
        distinct = list(dict.fromkeys(_sample(v) for v in res.get("partial_unexpected_list") or []))
        if distinct:
            text += ", e.g. " + ", ".join(distinct[:_QUOTED_SAMPLES])
        return text
    if "observed_value" in res:
        return f"observed {_short(res['observed_value'])}"
    return "no observed value"


def _outcome(validation_result: Any) -> Outcome:
    config = validation_result.expectation_config
    res = validation_result.result or {}
    severity = getattr(config.severity, "value", config.severity) or "critical"
    return Outcome(
        expectation=describe(config),
        type=config.type,
        severity=str(severity),
        success=bool(validation_result.success),
        observed=_observed(validation_result),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        observed_value=res.get("observed_value"),
    )


def _context(docs_dir: Path | None = None) -> Any:
    """A throw-away (in-memory) Great Expectations context.

    Args:
        docs_dir: where the Data Docs site goes; ``None`` for a context without one.

    Returns:
        An ``EphemeralDataContext`` with progress bars and analytics off.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[_SITE] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        # Progress bars would print a tqdm line per metric batch into job logs.
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites=sites,
    )
    return gx.get_context(project_config=config, mode="ephemeral")


def _detached(expectation_config: Any) -> Any:
    # An expectation that belongs to a suite cannot join another; a copy without
    # its id can.
    expectation = expectation_config.to_domain_obj()
    expectation.id = None
    return expectation


def _config_key(expectation_config: Any) -> str:
    kwargs = {k: v for k, v in expectation_config.kwargs.items() if k != "batch_id"}
    return json.dumps([expectation_config.type, kwargs], sort_keys=True, default=str)


def _validate(df: "DataFrame", suite: Suite, previous_rows: int | None, run_name: str,
              run_time: dt.datetime, sample_size: int) -> Any:
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = _context()
    # persist=False: Great Expectations would otherwise persist the DataFrame and
    # never release it; run_gate decides about caching.
    batch_definition = (
        context.data_sources.add_spark(name=_DATASOURCE, persist=False)
        .add_dataframe_asset(name=suite.table)
        .add_batch_definition_whole_dataframe("whole")
    )
    gx_suite = context.suites.add(suite.to_gx(previous_rows))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.table, data=batch_definition, suite=gx_suite)
    )
    # BASIC with no unexpected samples: counts and observed values only. A
    # sample costs one more Spark job per column expectation (a filtered scan
    # that reads everything when nothing is unexpected; a limit of 0 costs
    # none), so samples are taken below only for the expectations that failed.
    # SUMMARY would add index lists and counts of the sample only: not worth
    # its extra jobs.
    result = definition.run(
        batch_parameters={"dataframe": df},
        result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
        run_id=RunIdentifier(run_name=run_name, run_time=run_time),
    )
    failed = [r for r in result.results if not r.success and (r.result or {}).get("unexpected_count")
              and r.expectation_config.type not in UNQUOTED]
    if failed and sample_size > 0:
        sampler = gx.ExpectationSuite(
            name=f"{suite.table}.samples", expectations=[_detached(r.expectation_config) for r in failed]
        )
        samples = batch_definition.get_batch(batch_parameters={"dataframe": df}).validate(
            sampler, result_format={"result_format": "BASIC", "partial_unexpected_count": sample_size}
        )
        by_key = {_config_key(r.expectation_config): r.result for r in samples.results}
        for r in failed:
            r.result = by_key.get(_config_key(r.expectation_config), r.result)
    return result


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_gate(df: "DataFrame", suite: Suite, *, previous_rows: int | None, results_dir: Path,
             run_id: str, sample_size: int = SAMPLE_SIZE, persist: bool = True) -> GateResult:
    """Validate a DataFrame against a table's suite and store the result.

    Does not raise on failed expectations; pass the result to :func:`enforce`.

    Args:
        df: the rows about to be published (e.g. one load's bronze rows, or a
            silver table before its overwrite).
        suite: the table's suite (:func:`load_suite`).
        previous_rows: the previous load's row count, ``None`` on the first load.
        results_dir: where results are stored (``quality.results_dir``).
        run_id: the job run, e.g. ``"ingest-1767000000000"``; names the result
            file and the Data Docs run.
        sample_size: unexpected values fetched per failed expectation (0: none);
            messages quote up to five distinct ones. Costs one more Spark job
            per failed column expectation, none when everything passes.
        persist: cache ``df`` (memory and disk) while it is validated and release
            it afterwards, so the validation's Spark jobs do not each recompute
            its plan. A DataFrame the caller already cached is left cached.

    Returns:
        The gate's result; its JSON file is ``result.path``.
    """
    from pyspark.storagelevel import StorageLevel

    started = time.perf_counter()
    run_time = dt.datetime.now(dt.timezone.utc)
    run_name = _safe(run_id)
    cache_here = persist and not df.is_cached
    if cache_here:
        df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        result = _validate(df, suite, previous_rows, run_name, run_time, sample_size)
    finally:
        if cache_here:
            df.unpersist()

    outcomes = tuple(_outcome(r) for r in result.results)
    row_counts = [o.observed_value for o in outcomes
                  if o.type == "expect_table_row_count_to_be_between" and isinstance(o.observed_value, int)]
    results_dir = Path(results_dir)
    path = results_dir / VALIDATIONS_DIR / suite.table / f"{run_time:%Y%m%dT%H%M%S%fZ}_{run_name}.json"
    gate = GateResult(
        table=suite.table,
        run_id=run_id,
        success=not any(not o.success and o.severity == "critical" for o in outcomes),
        rows=row_counts[-1] if row_counts else None,
        previous_rows=previous_rows,
        row_count_bounds=suite.row_count_change.bounds(previous_rows),
        outcomes=outcomes,
        path=path,
        validated_at=run_time.isoformat(),
        seconds=round(time.perf_counter() - started, 2),
    )
    summary = gate.summary()
    result.meta["votelake_gate"] = {**summary, "outcomes": [asdict(o) for o in outcomes]}
    _write_atomic(path, json.dumps(result.to_json_dict(), indent=1, default=str))
    index_entry = {**summary, "path": path.relative_to(results_dir).as_posix()}
    line = (json.dumps(index_entry, default=str) + "\n").encode("utf-8")
    # One O_APPEND write per line, so lines of concurrent jobs never interleave.
    fd = os.open(results_dir / INDEX_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return gate


def enforce(result: GateResult) -> GateResult:
    """Stop the job when a critical expectation failed.

    Args:
        result: a gate's result.

    Returns:
        The same result, when no critical expectation failed (warnings may have).

    Raises:
        QualityGateError: naming the table, each failed critical expectation and
            its observed value, and the stored result.
    """
    if not result.success:
        raise QualityGateError(result)
    return result


def read_index(results_dir: Path) -> list[dict]:
    """Every validation recorded in the index, oldest first.

    Args:
        results_dir: the results folder.

    Returns:
        The index entries (see :meth:`GateResult.summary`; ``path`` relative to ``results_dir``).
    """
    index = Path(results_dir) / INDEX_FILE
    if not index.is_file():
        return []
    return [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]


def previous_row_count(results_dir: Path, table: str) -> int | None:
    """The row count of the table's latest validation that passed its gate.

    A convenience for ``previous_rows`` when the job has no better source (the
    previous load's committed row count is the exact one: a gate that passed
    does not prove its load was published).

    Args:
        results_dir: the results folder.
        table: the table's catalog name.

    Returns:
        That row count, or ``None`` when the table never passed a gate.
    """
    for entry in reversed(read_index(results_dir)):
        if entry.get("table") == table and entry.get("success") and entry.get("rows") is not None:
            return int(entry["rows"])
    return None


def _result_key(result: Any) -> Any:
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run = result.meta.get("run_id") or {}
    batch = result.meta.get("active_batch_definition") or {}
    batch_id = "-".join(str(batch.get(k)) for k in ("datasource_name", "data_asset_name") if batch.get(k))
    return ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=RunIdentifier(run_name=run.get("run_name"), run_time=run.get("run_time")),
        batch_identifier=batch_id or "batch",
    )


def build_data_docs(results_dir: Path, *, rebuild: bool = False) -> Path:
    """Render the stored validation results as Great Expectations Data Docs.

    Pages are rendered only for results not rendered before (``rebuild``
    renders all); the index always lists every stored result. Each table's
    suite page shows the suite of its latest validation. The pages load their
    scripts and styles from the site itself (:mod:`votelake.webassets`), so the
    site reads the same offline.

    Args:
        results_dir: the results folder (``quality.results_dir``).
        rebuild: render every page again.

    Returns:
        ``<results_dir>/data_docs/index.html``.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    results_dir = Path(results_dir)
    docs_dir = results_dir / DOCS_DIR
    index_page = docs_dir / "index.html"
    marker = docs_dir / _RENDERED_FILE
    rendered = set() if rebuild or not marker.is_file() else set(marker.read_text().split())
    files = sorted((results_dir / VALIDATIONS_DIR).glob("*/*.json"))
    context = _context(docs_dir)
    schema = ExpectationSuiteValidationResultSchema()
    latest: dict[str, Any] = {}
    new_keys: list[Any] = []
    new_suites: set[str] = set()
    names: list[str] = []
    for path in files:
        result = schema.load(json.loads(path.read_text()))
        key = _result_key(result)
        # Every result goes into the store: the index lists only pages whose
        # result is in the store, and deletes the others.
        context.validation_results_store.set(key, result)
        name = path.relative_to(results_dir).as_posix()
        names.append(name)
        if name not in rendered:
            new_keys.append(key)
            new_suites.add(result.suite_name)
        # File names start with the validation time, so the last one per table is the latest.
        latest[result.suite_name] = result
    for suite_name, result in latest.items():
        context.suites.add(gx.ExpectationSuite(
            name=suite_name, expectations=[_detached(r.expectation_config) for r in result.results]
        ))
    if new_keys or not index_page.is_file():
        # An empty list would mean "render everything" to Great Expectations.
        targets = new_keys + [ExpectationSuiteIdentifier(name=s) for s in sorted(new_suites)]
        # A second early: file times come from a coarser clock than time_ns.
        started = time.time_ns() - 1_000_000_000
        context.build_data_docs(site_names=[_SITE], resource_identifiers=targets or None)
        # Great Expectations' pages load their scripts and styles from CDNs; the
        # site serves its own copies, so it reads the same offline. Only the pages
        # this build wrote need it, unless the site never had them (older pages too).
        written = None
        if (docs_dir / webassets.VENDOR_DIR).is_dir():
            written = [p for p in docs_dir.rglob("*.html") if p.stat().st_mtime_ns >= started]
        webassets.localize(docs_dir, written)
        _write_atomic(marker, "\n".join(names) + "\n")
    return index_page
