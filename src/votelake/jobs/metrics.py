"""Metrics job: the campaign metrics mart by county, precinct, program, channel and week.

Inputs: ``silver.contacts``, ``silver.digital_events``, ``silver.persons``,
``silver.vote_history`` (turnout after a program, when the history holds a
later general election), ``gold.voter_scores`` (the modelled value of a
contact made) and the channels' costs and effects (``allocation.channels``).
Outputs: ``gold.campaign_metrics``, published under its data contract
(:mod:`votelake.transforms.metrics` defines every figure).
Launch: ``spark-submit jobs/metrics.py --conf conf/local.yaml`` or
``votelake run metrics``.

The mart is identified by the versions of its inputs and the channel
settings, so re-running it unchanged commits nothing.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import publish
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.transforms import metrics

INPUTS = ("silver.contacts", "silver.digital_events", "silver.persons", "silver.vote_history", "gold.voter_scores")
MART_KEY = "votelake.mart_id"
EMPTY = {
    "silver.contacts": "contact_id string, person_id string, channel string, attempted_at timestamp, "
                       "result_code string, is_contact boolean, support_id int, program string",
    "silver.digital_events": "person_id string, channel string, event_type string, event_ts timestamp, "
                             "campaign string",
    "silver.vote_history": "person_id string, election_date date, election_type string",
    "gold.voter_scores": "person_id string, turnout_prob double, support_prob double, persuasion_uplift double",
}


def run(spark: SparkSession, settings: Settings) -> dict:
    """Build and publish the campaign metrics mart.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        The mart id, the table version and row count, and campaign-wide totals.
    """
    lake = Lakehouse.open(spark, settings, job="metrics")
    versions = lake.current_versions(INPUTS)
    if versions["silver.persons"] is None:
        raise RuntimeError("silver.persons does not exist: run the build job first")
    inputs = {"versions": versions, "channels": settings.allocation.model_dump(mode="json")["channels"]}
    mart_id = publish.fingerprint(inputs)
    latest = lake.latest_metadata("gold.campaign_metrics", MART_KEY)
    if latest is not None and latest[0] == mart_id:
        lake.complete(mart_id, {"gold.campaign_metrics": latest[1]})
        return {"mart_id": mart_id, "published": False, "reason": "the same inputs are already published"}

    def read(name: str) -> DataFrame:
        if versions[name] is None:
            return spark.createDataFrame([], EMPTY[name])
        return lake.read(name, version=versions[name])

    built_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    mart = metrics.campaign_metrics(read("silver.contacts"), read("silver.digital_events"),
                                    lake.read("silver.persons", version=versions["silver.persons"]),
                                    read("silver.vote_history"), read("gold.voter_scores"), settings.allocation)
    written = lake.publish(mart.select("*", F.lit(built_at).cast("timestamp").alias("built_at")),
                           "gold.campaign_metrics", metadata={MART_KEY: mart_id})
    lake.complete(mart_id, {"gold.campaign_metrics": written.version})
    totals = lake.read("gold.campaign_metrics", version=written.version).agg(
        F.count("*").alias("rows"), F.sum("attempts").alias("attempts"), F.sum("contacts_made").alias("made"),
        F.sum("survey_ids").alias("ids"), F.sum("conversions").alias("conversions"), F.sum("cost").alias("cost"),
        F.sum("expected_net_votes").alias("votes")).first()  # one row: the mart's totals the summary reports
    return {"mart_id": mart_id, "published": True, "version": written.version, "rows": totals["rows"],
            "attempts": totals["attempts"], "contacts_made": totals["made"], "survey_ids": totals["ids"],
            "conversions": totals["conversions"], "cost": totals["cost"], "expected_net_votes": totals["votes"],
            "inputs": versions, "quality": lake.quality_report()}


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("metrics", run, __doc__.splitlines()[0], argv)
