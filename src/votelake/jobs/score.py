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
        ``person_id`` and ``p`` (probability of the positive class).
    """
    scored = champion.model.transform(prop.model_frame(features, spec, extra=("person_id",)))
    return scored.select("person_id", prop.positive_probability(scored).alias("p"))


def voter_scores(
    features: DataFrame,
    predictions: dict[str, DataFrame],
    models: dict[str, tracking.ChampionModel],
    feature_version: int,
    scored_at: dt.datetime,
) -> DataFrame:
    """Assemble the published scores table from features and predictions.

    Args:
        features: the scoring as-of date's feature rows of active voters.
        predictions: by model kind (``turnout``, ``support``): ``person_id``,
            ``p``; a kind without a champion model is absent and its columns are null.
        models: the champion models by kind (for names, versions, run ids).
        feature_version: Delta version of the features read.
        scored_at: the run's timestamp.

    Returns:
        DataFrame in the ``gold.voter_scores`` schema.
    """
    joined = features
    for kind, preds in predictions.items():
        joined = joined.join(preds.withColumnRenamed("p", f"{kind}_prob"), on="person_id", how="left")

    def model_columns(kind: str) -> list[Column]:
        model = models.get(kind)
        prob = F.col(f"{kind}_prob") if kind in predictions else F.lit(None).cast("double")
        return [
            to_score(prob).alias(f"{kind}_score"),
            prob.alias(f"{kind}_prob"),
            F.lit(model.label if model else None).cast("string").alias(f"{kind}_model"),
            F.lit(model.run_id if model else None).cast("string").alias(f"{kind}_run_id"),
        ]

    turnout, support = model_columns("turnout"), model_columns("support")
    return joined.select(
        "person_id", "state_voter_id", "state", "county_id", "precinct", "cong_dist",
        turnout[0], turnout[1], support[0], support[1], turnout[2], support[2], turnout[3], support[3],
        F.lit(feature_version).cast("bigint").alias("feature_version"),
        "as_of_date",
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )


def run(spark: SparkSession, settings: Settings) -> dict:
    """Score every active voter with the champion models and publish.

    A model type without a champion (e.g. turnout for a voter file without
    vote history) leaves its columns null; with no champion at all the job fails.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Rows written, table version, models used, score means.

    Raises:
        RuntimeError: no model of any type has a champion.
    """
    lake = Lakehouse.open(spark, settings, job="score")
    feature_version = lake.version("gold.voter_features")
    features = lake.read("gold.voter_features", version=feature_version)
    as_of = feature_dates(features)[-1]
    current = features.where((F.col("as_of_date") == F.lit(as_of)) & F.col("is_active"))
    models: dict[str, tracking.ChampionModel] = {}
    missing = {}
    for kind in prop.SPECS:
        try:
            models[kind] = tracking.load_champion(settings.mlflow, kind)
        except RuntimeError as exc:
            missing[kind] = str(exc)
    if not models:
        raise RuntimeError("no champion model to score with: " + "; ".join(missing.values()))
    predictions = {kind: predict(m, prop.SPECS[kind], current) for kind, m in models.items()}
    scores = voter_scores(current, predictions, models, feature_version,
                          dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0))
    result = lake.write(scores, "gold.voter_scores", "overwrite", metadata={"votelake.as_of": str(as_of)})
    means = lake.read("gold.voter_scores").agg(
        F.count("*").alias("rows"), F.avg("turnout_prob").alias("turnout"), F.avg("support_prob").alias("support")
    ).first()
    return {
        "table": lake.table("gold.voter_scores").uri,
        "version": result.version,
        "rows": means["rows"],
        "mean_turnout_prob": None if means["turnout"] is None else round(means["turnout"], 4),
        "mean_support_prob": None if means["support"] is None else round(means["support"], 4),
        "as_of_date": as_of.isoformat(),
        "models": {k: m.label for k, m in models.items()},
        "not_scored": {k: "no champion model" for k in missing},
        "mlflow": settings.mlflow.tracking_uri,
    }


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("score", run, __doc__.splitlines()[0], argv)
