"""Train job: fit the turnout and support models, track and register them in MLflow.

Inputs: ``gold.voter_features``, ``silver.vote_history`` (turnout labels),
``silver.contacts`` (support IDs).
Outputs: one MLflow run per model in the experiments ``<prefix>-turnout`` and
``<prefix>-support`` (parameters, feature-table version, metrics on held-out
voters, the fitted Spark pipeline with its signature) and a new registered
model version carrying the ``champion`` alias.
Launch: ``spark-submit jobs/train.py --conf conf/local.yaml`` or
``votelake run train``.

Turnout: label = voted in the latest general in the history; features are as
of that election's date, so only earlier events are used. Without a general
election in the history (e.g. a voter file without vote history) the turnout
model is skipped, and says so. Support: label = survey ID 1-2 (support) vs 4-5
(oppose); features as of the scoring date. With fewer than ``model.min_labels``
survey IDs, the partisanship proxy (registered with ``model.our_party`` vs the
other main party, party features left out) is trained instead.
"""

from __future__ import annotations

import datetime as dt

import mlflow
from mlflow.models import infer_signature
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import __version__
from votelake.config import Settings
from votelake.jobs.build import known_elections
from votelake.jobs.common import Lakehouse, job_main
from votelake.models import propensity as prop
from votelake.models import tracking
from votelake.transforms import features as feat

SIGNATURE_ROWS = 5


def feature_dates(features: DataFrame) -> list[dt.date]:
    """The as-of dates present in the feature table, oldest first."""
    return sorted(r[0] for r in features.select("as_of_date").distinct().collect())


def turnout_training_set(features: DataFrame, history: DataFrame, election: feat.Election) -> DataFrame:
    """Voters eligible for ``election`` with features as of its date and the label.

    Args:
        features: ``gold.voter_features``.
        history: ``silver.vote_history``.
        election: the target general election.

    Returns:
        Feature rows with ``label`` 1.0 (voted) or 0.0.
    """
    at_election = features.where(F.col("as_of_date") == F.lit(election.date))
    adult = F.coalesce(F.col("age") >= 18, F.lit(True))
    labels = feat.turnout_labels(history, election)
    return at_election.where(adult).join(labels, on="person_id", how="left").fillna(0.0, subset=["label"])


def support_training_set(features: DataFrame, contacts: DataFrame, as_of: dt.date) -> DataFrame:
    """Voters with a support ID before ``as_of``, with features as of ``as_of``."""
    current = features.where(F.col("as_of_date") == F.lit(as_of))
    return current.join(feat.support_labels(contacts, as_of), on="person_id", how="inner")


def party_training_set(features: DataFrame, as_of: dt.date, our_party: str) -> DataFrame:
    """Registrants of the two main parties, labelled 1.0 for ``our_party``, as of ``as_of``.

    Args:
        features: ``gold.voter_features``.
        as_of: the feature date.
        our_party: ``DEM`` or ``REP``.

    Returns:
        Feature rows with ``label``; other parties and unaffiliated voters are left out.
    """
    other = "REP" if our_party == "DEM" else "DEM"
    current = features.where((F.col("as_of_date") == F.lit(as_of)) & F.col("party").isin(our_party, other))
    return current.select("*", (F.col("party") == our_party).cast("double").alias("label"))


def fit_and_log(
    settings: Settings,
    spec: prop.ModelSpec,
    labelled: DataFrame,
    feature_version: int,
    params: dict,
    baseline_col: str | None = None,
) -> dict:
    """Fit one model, evaluate on held-out voters, log and register it in MLflow.

    Args:
        settings: the run configuration.
        spec: the model.
        labelled: feature rows with ``person_id`` and ``label``.
        feature_version: Delta version of ``gold.voter_features`` used.
        params: extra parameters to log (label definition, dates).
        baseline_col: a feature to report as a baseline score (its AUC).

    Returns:
        Metrics, run id and registered version.
    """
    cfg = settings.model
    extra = ("person_id", "label") + ((baseline_col,) if baseline_col and baseline_col not in spec.features else ())
    frame = prop.model_frame(labelled, spec, extra=extra)
    holdout = prop.in_holdout(F.col("person_id"), cfg.test_fraction, cfg.seed)
    train, test = frame.where(~holdout), frame.where(holdout)
    spec, empty = prop.informative(spec, train)

    client = tracking.configure(settings.mlflow)
    experiment = tracking.experiment_id(settings.mlflow, spec.kind)
    name = tracking.registered_name(settings.mlflow, spec.kind)
    with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.kind}-{spec.learner}") as run:
        mlflow.log_params(
            {
                "learner": spec.learner,
                "features": ",".join(spec.features),
                "empty_features_dropped": ",".join(empty) or "none",
                "feature_table": "gold.voter_features",
                "feature_table_version": feature_version,
                **cfg.model_dump(),
                **params,
            }
        )
        mlflow.set_tags({"votelake.model": spec.kind, "votelake.version": __version__})
        model = prop.build_pipeline(spec, cfg).fit(train)
        scored = model.transform(test)
        scored = scored.select("*", prop.positive_probability(scored).alias("p")).cache()
        metrics = {f"test_{k}": v for k, v in prop.evaluate(scored).items()}
        metrics["train_rows"] = float(train.count())
        if baseline_col:
            baseline = scored.select("label", F.coalesce(F.col(baseline_col), F.lit(0.0)).cast("double").alias("b"))
            metrics["baseline_auc"] = prop.evaluate(baseline, "b")["auc"]
        mlflow.log_metrics(metrics)
        signature = infer_signature(
            test.select(*spec.features).limit(SIGNATURE_ROWS).toPandas(),
            scored.select("p").limit(SIGNATURE_ROWS).toPandas(),
        )
        info = mlflow.spark.log_model(model, artifact_path="model", signature=signature, registered_model_name=name)
        scored.unpersist()
        version = info.registered_model_version
        client.set_registered_model_alias(name, tracking.CHAMPION, version)
    return {"run_id": run.info.run_id, "model": f"{name}/{version}", **{k: round(v, 4) for k, v in metrics.items()}}


def run(spark: SparkSession, settings: Settings) -> dict:
    """Train, evaluate, log and register the turnout and support models.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Per model: run id, registered version, held-out metrics.
    """
    lake = Lakehouse.open(spark, settings, job="train")
    cfg = settings.model
    feature_version = lake.version("gold.voter_features")
    features = lake.read("gold.voter_features")
    history = lake.read("silver.vote_history")
    contacts = lake.read("silver.contacts")
    score_date = feature_dates(features)[-1]
    results: dict = {}

    generals = feat.elections_before(known_elections(history), score_date, "GENERAL")
    if not generals:
        print("[votelake] train: the vote history holds no general election; turnout model skipped", flush=True)
        results["turnout"] = {"skipped": "no general election in the vote history"}
    else:
        election = generals[-1]
        results["turnout"] = fit_and_log(
            settings, prop.TURNOUT,
            turnout_training_set(features, history, election),
            feature_version,
            {"label": f"voted in the {election.date} general", "as_of_date": str(election.date)},
            baseline_col="general_rate",
        )

    survey = support_training_set(features, contacts, score_date).cache()
    survey_labels = survey.count()
    if survey_labels >= cfg.min_labels:
        results["support"] = fit_and_log(
            settings, prop.SUPPORT, survey, feature_version,
            {"label": "support ID 1-2 vs 4-5", "as_of_date": str(score_date)},
        )
    elif cfg.support_proxy == "party":
        print(f"[votelake] train: {survey_labels} survey IDs (< {cfg.min_labels}); "
              f"support learnt from party registration ({cfg.our_party} vs the other main party)", flush=True)
        results["support"] = fit_and_log(
            settings, prop.PARTISANSHIP, party_training_set(features, score_date, cfg.our_party),
            feature_version,
            {"label": f"registered {cfg.our_party} vs the other main party (partisanship proxy)",
             "as_of_date": str(score_date), "survey_labels": survey_labels},
        )
    else:
        results["support"] = {"skipped": f"{survey_labels} survey IDs (< {cfg.min_labels}) and no proxy"}
    survey.unpersist()
    return results


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("train", run, __doc__.splitlines()[0], argv)
