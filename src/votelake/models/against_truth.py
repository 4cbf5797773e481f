"""Model quality on a synthetic state, against the generator's true probabilities.

For turnout and support: the champion's AUC and calibration error on the
held-out voters, the simple baseline's AUC and the oracle's (the true
probabilities the outcomes were drawn from) on the same voters, and the share
of the baseline-to-oracle gap the model closes. For persuasion: the champion
run's out-of-fold Qini with its bootstrap interval, beside the oracle Qini
(targeting by the true uplift) on the same experiment members.
"""

from __future__ import annotations

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.lakehouse import Lakehouse
from votelake.models import evaluation as ev
from votelake.models import propensity as prop
from votelake.models import tracking
from votelake.models.scoring import apply_model, spec_from_run
from votelake.transforms import features as feat
from votelake.transforms import training_sets


def truth_by_voter_id(truth: DataFrame) -> DataFrame:
    """The generator's true probabilities, one row per ``state_voter_id``.

    Every registration of a person carries the person's true probabilities; a
    mover's registrations share the state voter id, so one row per id is kept
    (joining them all would count the mover twice).
    """
    return (truth.select(F.col("ncid").alias("state_voter_id"), "p_turnout", "p_support", "uplift")
            .dropDuplicates(["state_voter_id"]))


def classifier_quality(settings: Settings, kind: str, labelled: DataFrame) -> dict:
    """Champion, baseline and oracle on the held-out voters of one model type.

    Args:
        settings: the run configuration (held-out split, MLflow store).
        kind: ``turnout`` or ``support``.
        labelled: training rows with ``label``, ``baseline`` and ``oracle``.

    Returns:
        ``auc``, ``ece``, ``baseline_auc``, ``oracle_auc``, ``oracle_ece``,
        ``gap_closed``, ``n``, ``model`` (name/version) and its training seconds.
    """
    cfg = settings.model
    holdout = labelled.where(prop.in_holdout(F.col("person_id"), cfg.test_fraction, cfg.seed)).cache()
    champion = tracking.load_champion(settings.mlflow, kind)
    run = tracking.configure(settings.mlflow).get_run(champion.run_id)
    spec = spec_from_run(run, kind)
    scored = (apply_model(champion.model, spec, holdout, ("person_id", "label", "baseline", "oracle"))
              .select("label", "baseline", "oracle", "p").cache())
    model = prop.evaluate(scored, "p")
    oracle = prop.evaluate(scored.select("label", F.col("oracle").alias("p")), "p")
    baseline = prop.auc(scored, "baseline")
    result = {
        "model": champion.label, "learner": run.data.params.get("learner"), "n": int(model["n"]),
        "auc": model["auc"], "ece": model["ece"], "log_loss": model["log_loss"],
        "baseline_auc": baseline, "oracle_auc": oracle["auc"], "oracle_ece": oracle["ece"],
        "gap_closed": (model["auc"] - baseline) / (oracle["auc"] - baseline),
        "train_seconds": run.data.metrics.get("train_seconds"),
    }
    scored.unpersist()
    holdout.unpersist()
    return result


def persuasion_quality(settings: Settings, rows: DataFrame) -> dict:
    """The champion persuasion run's out-of-fold Qini beside the oracle Qini.

    Args:
        settings: the run configuration.
        rows: :func:`training_sets.persuasion_training_set` output joined to the true ``uplift``.

    Returns:
        ``model``, ``learner``, ``qini``, ``qini_low``, ``qini_high`` (from the run), ``oracle_qini``
        with its interval, ``experiment_rows``, ``observed_ate``, ``true_ate``.
    """
    champion = tracking.load_champion(settings.mlflow, "persuasion")
    run = tracking.configure(settings.mlflow).get_run(champion.run_id)
    metrics = run.data.metrics
    local = rows.select("label", "t", "uplift").toPandas()
    y, t, u = (local[c].to_numpy() for c in ("label", "t", "uplift"))
    low, high = ev.qini_interval(y, t, u, settings.model.bootstrap, settings.model.seed)
    return {
        "model": champion.label, "learner": run.data.params.get("learner"),
        "qini": metrics["qini"], "qini_low": metrics["qini_low"],
        "qini_high": metrics["qini_high"], "oracle_qini": ev.qini_coefficient(y, t, u),
        "oracle_qini_low": low, "oracle_qini_high": high, "experiment_rows": int(len(y)),
        "observed_ate": float(y[t == 1].mean() - y[t == 0].mean()), "true_ate": float(np.mean(u)),
        "train_seconds": metrics.get("train_seconds"),
    }


def model_quality_against_truth(spark: SparkSession, settings: Settings, truth: DataFrame) -> dict:
    """Evaluate the champion turnout, support and persuasion models against the truth.

    Args:
        spark: the session.
        settings: the run configuration of the synthetic state.
        truth: the generator's ``registrations`` truth (``ncid`` with
            ``p_turnout``, ``p_support``, ``uplift``).

    Returns:
        Per model type, the figures of :func:`classifier_quality` or
        :func:`persuasion_quality`, or ``{"skipped": reason}`` for a type
        without a champion.
    """
    lake = Lakehouse.open(spark, settings)
    features = lake.read("gold.voter_features")
    history = lake.read("silver.vote_history")
    contacts = lake.read("silver.contacts")
    truth = truth_by_voter_id(truth)
    score_date = training_sets.feature_dates(features)[-1]
    election = feat.elections_before(feat.known_elections(history), score_date, "GENERAL")[-1]
    # State voter ids are unique per person in the features; the truth of a person's registrations agrees.
    turnout = (training_sets.turnout_training_set(features, history, election)
               .join(truth, "state_voter_id", "inner").select("*", F.col("p_turnout").alias("oracle")))
    arms = lake.read("silver.experiment_assignments").where(F.col("person_id").isNotNull()).select(
        "person_id", (F.col("arm") == "treatment").alias("treated")).dropDuplicates(["person_id"])
    # A treated voter's latest ID is usually the follow-up after treatment, drawn from p_support + uplift.
    support = (training_sets.support_training_set(features, contacts, score_date)
               .join(truth, "state_voter_id", "inner").join(arms, "person_id", "left")
               .select("*", (F.col("p_support") + F.when(F.col("treated"), F.col("uplift")).otherwise(0.0))
                       .alias("oracle")))
    experiment = training_sets.persuasion_training_set(
        features, lake.read("silver.experiment_assignments"), contacts,
        settings.model.persuasion_outcome_program).join(truth, "state_voter_id", "inner")
    evaluations = {
        "turnout": lambda: classifier_quality(settings, "turnout", turnout),
        "support": lambda: classifier_quality(settings, "support", support),
        "persuasion": lambda: persuasion_quality(settings, experiment),
    }
    results = {}
    for kind, evaluate in evaluations.items():
        try:
            results[kind] = evaluate()
        except RuntimeError as exc:  # no champion: the train job skipped this model type
            results[kind] = {"skipped": str(exc)}
    return results
