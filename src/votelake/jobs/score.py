"""Score job: per-voter turnout and support scores for every active voter.

Inputs: ``gold.voter_features`` (the latest as-of date) and the MLflow models
``<prefix>-turnout@champion`` and ``<prefix>-support@champion``.
Output: ``gold.voter_scores`` (one row per active voter; no names, addresses,
phones, e-mails or birth dates), overwritten in one commit per run; earlier
runs stay readable by Delta time travel.
Launch: ``spark-submit jobs/score.py --conf conf/local.yaml`` or
``votelake run score``.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.jobs.common import Lakehouse, job_main
from votelake.jobs.train import feature_dates
from votelake.models import propensity as prop
from votelake.models import tracking


def to_score(prob: Column) -> Column:
    """A probability as a 0-100 integer score."""
    return F.round(prob * 100).cast("int")


def predict(champion: tracking.ChampionModel, spec: prop.ModelSpec, features: DataFrame) -> DataFrame:
    """Apply one champion model.

    Args:
        champion: the loaded model.
        spec: its feature spec.
        features: ``gold.voter_features`` rows.

    Returns:
        ``voter_key`` and ``p`` (probability of the positive class).
    """
    scored = champion.model.transform(prop.model_frame(features, spec, extra=("voter_key",)))
    return scored.select("voter_key", prop.positive_probability(scored).alias("p"))


def voter_scores(
    features: DataFrame,
    turnout: DataFrame,
    support: DataFrame,
    models: dict[str, tracking.ChampionModel],
    feature_version: int,
    scored_at: dt.datetime,
) -> DataFrame:
    """Assemble the published scores table from features and predictions.

    Args:
        features: the scoring as-of date's feature rows of active voters.
        turnout: ``voter_key``, ``p`` from the turnout model.
        support: ``voter_key``, ``p`` from the support model.
        models: the champion models by kind (for names, versions, run ids).
        feature_version: Delta version of the features read.
        scored_at: the run's timestamp.

    Returns:
        DataFrame in the ``gold.voter_scores`` schema.
    """
    joined = (
        features.join(turnout.withColumnRenamed("p", "turnout_prob"), on="voter_key", how="inner")
        .join(support.withColumnRenamed("p", "support_prob"), on="voter_key", how="inner")
    )
    return joined.select(
        "voter_key",
        F.element_at(F.split("voter_key", ":"), -1).alias("state_voter_id"),
        "state",
        "county_id",
        "precinct",
        "cong_dist",
        to_score(F.col("turnout_prob")).alias("turnout_score"),
        "turnout_prob",
        to_score(F.col("support_prob")).alias("support_score"),
        "support_prob",
        F.lit(models["turnout"].label).alias("turnout_model"),
        F.lit(models["support"].label).alias("support_model"),
        F.lit(models["turnout"].run_id).alias("turnout_run_id"),
        F.lit(models["support"].run_id).alias("support_run_id"),
        F.lit(feature_version).cast("bigint").alias("feature_version"),
        "as_of_date",
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )


def run(spark: SparkSession, settings: Settings) -> dict:
    """Score every active voter with the champion models and publish.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Rows written, table version, models used, score means.
    """
    lake = Lakehouse.open(spark, settings, job="score")
    feature_version = lake.version("gold.voter_features")
    features = lake.read("gold.voter_features", version=feature_version)
    as_of = feature_dates(features)[-1]
    current = features.where((F.col("as_of_date") == F.lit(as_of)) & F.col("is_active"))
    models = {kind: tracking.load_champion(settings.mlflow, kind) for kind in prop.SPECS}
    scores = voter_scores(
        current,
        predict(models["turnout"], prop.TURNOUT, current),
        predict(models["support"], prop.SUPPORT, current),
        models,
        feature_version,
        dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0),
    )
    result = lake.write(scores, "gold.voter_scores", "overwrite", metadata={"votelake.as_of": str(as_of)})
    means = lake.read("gold.voter_scores").agg(
        F.count("*").alias("rows"), F.avg("turnout_prob").alias("turnout"), F.avg("support_prob").alias("support")
    ).first()
    return {
        "table": lake.table("gold.voter_scores").uri,
        "version": result.version,
        "rows": means["rows"],
        "mean_turnout_prob": round(means["turnout"], 4),
        "mean_support_prob": round(means["support"], 4),
        "as_of_date": as_of.isoformat(),
        "models": {k: m.label for k, m in models.items()},
        "mlflow": settings.mlflow.tracking_uri,
    }


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("score", run, __doc__.splitlines()[0], argv)
