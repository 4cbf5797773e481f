"""Allocate job: spend the configured contact capacity where it wins the most expected net votes.

Inputs: ``gold.voter_scores`` (the published scoring run) and ``allocation.*``
(channels with contact rates, costs, weekly capacity per county or budgets,
turnout effects and persuasion shares; weeks).
Outputs: ``gold.allocation_plan`` (one row per voter contacted: channel, order
within the county, expected net votes, cost) and ``gold.allocation_summary``
(attempts, expected contacts, expected net votes, cost and cost per net vote
by county and channel, statewide and in total, beside the naive plan that
fills the same capacity by support score alone), both published under their
data contracts.
Launch: ``spark-submit jobs/allocate.py --conf conf/local.yaml`` or
``votelake run allocate``.

The plan is identified by the allocation settings and the scoring run, so
re-running it unchanged commits nothing; a run stopped between its two
publishes is finished by the next, and its run manifest (``audit.runs``),
written last, moves readers to both tables at once.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import publish
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.transforms import allocation as alloc

SUMMARY_KEYS = ["state", "county_id", "channel"]
PLAN_KEY = "votelake.plan_id"  # commit metadata: the plan a publish holds
TABLES = ("gold.allocation_plan", "gold.allocation_summary")  # published in this order


def plan_id_of(settings: Settings, scoring_run: str) -> str:
    """A plan's id: a hash of the allocation settings and the scoring run."""
    inputs = {"allocation": settings.allocation.model_dump(mode="json"), "scoring_run": scoring_run}
    return publish.fingerprint(inputs)


def summary_rows(plan: DataFrame, naive: DataFrame, plan_id: str, planned_at: dt.datetime) -> DataFrame:
    """``gold.allocation_summary`` rows: the plan's figures beside the naive plan's."""
    theirs = alloc.summarize(naive).select(*SUMMARY_KEYS, F.col("attempts").alias("naive_attempts"),
                                           F.col("expected_net_votes").alias("naive_expected_net_votes"))
    return (alloc.summarize(plan).join(theirs, on=SUMMARY_KEYS, how="left")
            .select(F.lit(plan_id).alias("plan_id"), *SUMMARY_KEYS, "attempts", "expected_contacts",
                    "expected_net_votes", "cost", "cost_per_net_vote", "naive_attempts", "naive_expected_net_votes",
                    F.lit(planned_at).cast("timestamp").alias("planned_at")))


def naive_order(name, channel):
    """The naive plan's ranking: support score alone."""
    return F.col("support_prob")


def run(spark: SparkSession, settings: Settings) -> dict:
    """Make, publish and summarise the allocation plan.

    Args:
        spark: the session.
        settings: the run configuration (``allocation``).

    Returns:
        The plan id, the tables' versions, and statewide attempts, cost and
        expected net votes of the plan and of the naive plan.
    """
    lake = Lakehouse.open(spark, settings, job="allocate")
    if lake.version("gold.voter_scores") is None:
        raise RuntimeError("gold.voter_scores does not exist: run the score job first")
    all_scores = lake.read_current("gold.voter_scores")
    scores = all_scores.where(F.col("turnout_prob").isNotNull() & F.col("support_prob").isNotNull())
    scoring_run = all_scores.select("scoring_run_id").limit(1).collect()[0][0]  # one value: the scores' run
    plan_id = plan_id_of(settings, scoring_run)
    done = lake.run_versions(TABLES, PLAN_KEY, plan_id)
    if all(v is not None for v in done.values()):
        recorded = lake.complete(plan_id, done)  # a run killed after its last publish gets its manifest now
        return {"plan_id": plan_id, "published": False,
                "reason": f"plan {plan_id} (the same settings and scoring run) is already published"
                          + ("; its run manifest is recorded now" * recorded)}
    planned_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    # A run stopped between its two publishes left the plan on this run: publish what is left.
    plan_version = done["gold.allocation_plan"]
    if plan_version is None:
        plan = alloc.allocate(scores, settings.allocation)
        rows = plan.select(F.lit(plan_id).alias("plan_id"), *alloc.VOTER_COLUMNS, "channel", "county_rank",
                           "contact_rate", "expected_net_votes", "cost", F.lit(scoring_run).alias("scoring_run_id"),
                           F.lit(planned_at).cast("timestamp").alias("planned_at"))
        plan_version = lake.publish(rows, "gold.allocation_plan", metadata={PLAN_KEY: plan_id}).version
    published = lake.read("gold.allocation_plan", version=plan_version)
    if done["gold.allocation_plan"] is not None:  # finishing a stopped run: the summary keeps its plan's time
        planned_at = published.agg(F.max("planned_at")).first()[0] or planned_at
    naive = alloc.allocate(scores, settings.allocation, order=naive_order)
    # Per county and channel: published, then its statewide row read below.
    summary = summary_rows(published, naive, plan_id, planned_at).localCheckpoint()
    summary_version = lake.publish(summary, "gold.allocation_summary", metadata={PLAN_KEY: plan_id}).version
    # Written last: readers move to this plan's tables together.
    lake.complete(plan_id, {"gold.allocation_plan": plan_version, "gold.allocation_summary": summary_version})
    # One row: the statewide totals returned.
    total = summary.where((F.col("county_id") == alloc.STATEWIDE) & (F.col("channel") == "all")).first()
    return {
        "plan_id": plan_id, "published": True, "scoring_run": scoring_run,
        "tables": {"gold.allocation_plan": plan_version, "gold.allocation_summary": summary_version},
        "attempts": total["attempts"], "cost": round(total["cost"], 2),
        "expected_net_votes": round(total["expected_net_votes"], 2),
        "naive_expected_net_votes": round(total["naive_expected_net_votes"], 2),
        "cost_per_net_vote": None if total["cost_per_net_vote"] is None else round(total["cost_per_net_vote"], 2),
        "quality": lake.quality_report(),
    }


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("allocate", run, __doc__.splitlines()[0], argv)
