"""The publish gate of a scoring run: its score distributions against the published run's.

A new scoring run replaces ``gold.voter_scores`` only if, for every score,
statewide and in every county large enough to compare, the mean moved by at
most ``publish.max_mean_shift`` standard deviations of the published run and
the standard deviation by at most a factor ``publish.max_spread_ratio``
(:class:`votelake.config.PublishSettings`). Great Expectations checks the
comparison table (:func:`drift_suite`); a run beyond the tolerance is blocked
with a report (:func:`write_report`) unless forced, and a forced publish
records its reason in the commit.

The distribution and comparison are pure DataFrame transforms;
:func:`distribution_gate` collects the (small) comparison table for the report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake import quality
from votelake.config import PublishSettings, Settings

if TYPE_CHECKING:
    from votelake.lakehouse import Lakehouse

# The published scores whose distributions are gated (all 0-100 or percentage points).
SCORES = ("turnout_score", "support_score", "persuasion_score")
STATEWIDE = -1  # county_id of the statewide rows
DRIFT_SUITE = "gold.voter_scores_drift"
# Commit metadata key naming the scoring run a publish of gold.voter_scores holds.
SCORING_RUN_KEY = "votelake.scoring_run"


def fingerprint(inputs: dict) -> str:
    """16 hex digits identifying a run by its inputs (a scoring run, a universe build, a plan, a mart).

    The same inputs always give the same id, so re-publishing an unchanged run can be recognised.
    """
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]


class PublishBlockedError(RuntimeError):
    """A scoring run's scores moved beyond the tolerance; nothing was published."""

    def __init__(self, message: str, report: Path):
        self.report = report
        super().__init__(message)


def score_distribution(scores: DataFrame) -> DataFrame:
    """Count, mean and standard deviation of each score, per county and statewide.

    Args:
        scores: ``gold.voter_scores`` rows (``state``, ``county_id`` and the scores).

    Returns:
        ``state, county_id, score, n, mean, std``: one row per state, county
        (``county_id`` = :data:`STATEWIDE` for the whole state) and score with
        at least one value.
    """
    long = scores.select("state", F.coalesce("county_id", F.lit(STATEWIDE)).alias("county_id"),
                         F.explode(F.array(*[F.struct(F.lit(s).alias("score"), F.col(s).cast("double").alias("v"))
                                             for s in SCORES])).alias("x"))
    stats = [F.count("x.v").alias("n"), F.avg("x.v").alias("mean"), F.stddev_samp("x.v").alias("std")]
    by_county = long.groupBy("state", "county_id", F.col("x.score").alias("score")).agg(*stats)
    statewide = long.groupBy("state", F.col("x.score").alias("score")).agg(*stats).select(
        "state", F.lit(STATEWIDE).alias("county_id"), "score", "n", "mean", "std")
    return by_county.unionByName(statewide).where(F.col("n") > 0)


# Differences of means and standard deviations this small are floating-point rounding.
ROUNDING = 1e-9


def _beyond_rounding(value: Column) -> Column:
    """The value, or 0 where it is within :data:`ROUNDING` of 0 or null."""
    return F.when(F.abs(value) > ROUNDING, value).otherwise(0.0)


def distribution_shift(current: DataFrame, published: DataFrame, min_voters: int) -> DataFrame:
    """Compare two :func:`score_distribution` tables.

    Args:
        current: the new run's distribution.
        published: the published run's.
        min_voters: counties with fewer voters in either run are reported but not gated.

    Returns:
        ``state, county_id, score, n, published_n, mean, published_mean, std,
        published_std, mean_shift, spread_ratio, gated``: ``mean_shift`` is the
        change of the mean in the published run's standard deviations (0 when
        both are constant), ``spread_ratio`` the new standard deviation over the
        published one. Rows in one run only are left out.
    """
    old = published.select("state", "county_id", "score", F.col("n").alias("published_n"),
                           F.col("mean").alias("published_mean"), F.col("std").alias("published_std"))
    joined = current.join(old, on=["state", "county_id", "score"], how="inner")
    # A constant score's mean and standard deviation carry rounding (about 1e-16, from summing equal
    # values in another order), which must not read as a spread out of nothing; scores are whole
    # numbers, so any real spread or move is far above ROUNDING.
    spread = _beyond_rounding(F.col("published_std"))
    moved = _beyond_rounding(F.col("mean") - F.col("published_mean"))
    # A constant published score (spread 0): any move is infinitely many deviations.
    mean_shift = (F.when(spread > 0, moved / spread).when(moved == 0, 0.0)
                  .otherwise(F.lit(float("inf")) * F.signum(moved)))
    new_spread = _beyond_rounding(F.col("std"))
    spread_ratio = F.when(spread > 0, new_spread / spread).when(new_spread == 0, 1.0).otherwise(float("inf"))
    large_enough = (F.col("county_id") == STATEWIDE) | (
        (F.col("n") >= min_voters) & (F.col("published_n") >= min_voters))
    return joined.select("state", "county_id", "score", "n", "published_n", "mean", "published_mean", "std",
                         "published_std", mean_shift.alias("mean_shift"), spread_ratio.alias("spread_ratio"),
                         large_enough.alias("gated"))


def drift_suite(settings: PublishSettings) -> quality.Suite:
    """The Great Expectations checks of the gated rows of :func:`distribution_shift`."""
    r = settings.max_spread_ratio
    entries = [
        {"expect_column_values_to_be_between": {"column": "mean_shift", "min_value": -settings.max_mean_shift,
                                                "max_value": settings.max_mean_shift},
         "notes": "Mean of each score per county and statewide, in standard deviations of the published run."},
        {"expect_column_values_to_be_between": {"column": "spread_ratio", "min_value": 1.0 / r, "max_value": r},
         "notes": "Standard deviation of each score per county and statewide, over the published run's."},
    ]
    return quality.critical_suite(DRIFT_SUITE, entries)


def offending(shift: pd.DataFrame, settings: PublishSettings) -> pd.DataFrame:
    """The gated rows beyond the tolerance, largest mean shift first."""
    r = settings.max_spread_ratio
    beyond = shift["gated"] & ((shift["mean_shift"].abs() > settings.max_mean_shift)
                               | (shift["spread_ratio"] > r) | (shift["spread_ratio"] < 1.0 / r))
    return shift[beyond].reindex(shift[beyond]["mean_shift"].abs().sort_values(ascending=False).index)


def write_report(shift: pd.DataFrame, settings: PublishSettings, folder: Path, scoring_run: str,
                 published_run: str | None, verdict: str) -> Path:
    """Write the comparison as Markdown (offending rows first) and JSON; return the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{scoring_run}.md"
    bad = offending(shift, settings)
    fmt = shift.assign(county_id=shift["county_id"].map(lambda c: "statewide" if c == STATEWIDE else str(c)))
    lines = [f"# Publish gate of scoring run {scoring_run}", "",
             f"Against the published run {published_run or '(none)'}: **{verdict}**.",
             f"Tolerance: mean shift within ±{settings.max_mean_shift:g} published standard deviations, "
             f"spread ratio within {1 / settings.max_spread_ratio:.2f}-{settings.max_spread_ratio:g}; counties "
             f"with fewer than {settings.min_county_voters:,} voters in either run are not gated.", "",
             f"{len(bad)} of {int(shift['gated'].sum())} gated rows beyond the tolerance.", "",
             "| state | county | score | n | published n | mean | published mean | std | published std | "
             "mean shift (sd) | spread ratio | gated |", "|" + "---|" * 12]
    ordered = pd.concat([fmt.loc[bad.index], fmt.drop(index=bad.index)])
    for row in ordered.itertuples(index=False):
        lines.append(f"| {row.state} | {row.county_id} | {row.score} | {row.n:,} | {row.published_n:,} | "
                     f"{row.mean:.2f} | {row.published_mean:.2f} | {row.std:.2f} | {row.published_std:.2f} | "
                     f"{row.mean_shift:+.3f} | {row.spread_ratio:.3f} | {'yes' if row.gated else 'no'} |")
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(
        {"scoring_run": scoring_run, "published_run": published_run, "verdict": verdict,
         "settings": settings.model_dump(), "rows": shift.to_dict(orient="records")}, indent=1, default=str))
    return path


def published_run(lake: Lakehouse) -> dict | None:
    """The scoring run of the latest publish of ``gold.voter_scores``: ``scoring_run`` and ``version``.

    None when the table was never published under a contract (absent, or
    written before contracts: its rows cannot be compared column for column).
    """
    if lake.published_contract("gold.voter_scores") is None:
        return None
    # The run readers see: a later run killed before its manifest is not published yet.
    found = lake.latest_metadata("gold.voter_scores", SCORING_RUN_KEY, at=lake.current("gold.voter_scores"))
    return None if found is None else {"scoring_run": found[0], "version": found[1]}


def distribution_gate(lake: Lakehouse, settings: Settings, scores: DataFrame, scoring_run: str,
                      published: dict | None, summary: dict) -> dict[str, str]:
    """Compare a run's score distributions with the published run's (Great Expectations) and report.

    Args:
        lake: the lakehouse.
        settings: the run configuration (``publish``).
        scores: the run's rows (cached by the publish).
        scoring_run: this run's id.
        published: :func:`published_run` (None: nothing to compare with).
        summary: filled with the verdict and the report path, for the job's summary.

    Returns:
        Commit metadata: the verdict, the report, and a forced publish's reason.

    Raises:
        PublishBlockedError: beyond the tolerance and not forced; nothing is published.
    """
    cfg = settings.publish
    if published is None:
        summary.update(verdict="first publish under the contract: nothing to compare with")
        return {"votelake.publish_gate": summary["verdict"]}
    # The table as readers see it: the published run, less anyone erased since
    # (an erasure rewrites the table and may vacuum the publish's own version).
    previous = lake.read_current("gold.voter_scores")
    shift = distribution_shift(score_distribution(scores), score_distribution(previous),
                                cfg.min_county_voters).localCheckpoint()  # per county and score: read twice
    result = lake.validate(shift.where(F.col("gated")), drift_suite(cfg), f"score-{scoring_run}",
                           persist=False)
    verdict = ("within tolerance" if result.success
               else f"forced beyond tolerance: {cfg.force_reason}" if cfg.force else "blocked: beyond tolerance")
    # Per county and score: the report's table.
    report = write_report(shift.toPandas(), cfg, Path(lake.reports) / "publish", scoring_run,
                          published["scoring_run"], verdict)
    summary.update(verdict=verdict, report=str(report), compared_with=published["scoring_run"])
    if not result.success and not cfg.force:
        raise PublishBlockedError(
            f"scoring run {scoring_run} not published: its score distributions moved beyond the tolerance "
            f"against the published run {published['scoring_run']} (set publish.force with publish.force_reason "
            f"to publish anyway). Report: {report}\n" + result.failure_message(), report)
    tags = {"votelake.publish_gate": verdict, "votelake.publish_report": str(report)}
    if not result.success:
        tags["votelake.forced_reason"] = str(cfg.force_reason)
    return tags
