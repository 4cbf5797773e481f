"""Model quality on a synthetic state, against the generator's true probabilities.

For turnout and support: the champion's AUC and calibration error on the
held-out voters, the simple baseline's AUC and the oracle's (the true
probabilities the outcomes were drawn from) on the same voters, and the share
of the baseline-to-oracle gap the model closes. For turnout also, for the next
midterm and the next presidential general, the calibration of the scores against
the true probabilities at that level; for support also, the Spearman rank
correlation of every active voter's score with the true support probability
(the published score, calibrated to precinct results, and the model's alone),
beside that of party registration alone. For persuasion: the champion
run's out-of-fold Qini with its bootstrap interval, beside the oracle Qini
(targeting by the true uplift) on the same experiment members.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.lakehouse import Lakehouse
from votelake.models import evaluation as ev
from votelake.models import propensity as prop
from votelake.models.scoring import apply_model, load_champion, turnout_horizon
from votelake.synth.rand import logit, sigmoid
from votelake.synth.voters import turnout_age_term, turnout_tenure_term
from votelake.transforms import features as feat
from votelake.transforms import training_sets


def truth_by_voter_id(truth: DataFrame) -> DataFrame:
    """The generator's true probabilities, one row per ``state_voter_id``.

    Every registration of a person carries the person's true probabilities; a
    mover's registrations share the state voter id, so one row per id is kept
    (joining them all would count the mover twice).
    """
    return (truth.select(F.col("ncid").alias("state_voter_id"), "p_turnout", "p_presidential", "p_support", "uplift")
            .dropDuplicates(["state_voter_id"]))


# The generator's NC status codes that the canonical model reads as active
# (votelake.canonical.ACTIVE_STATUSES): A(CTIVE) and S (TEMPORARY).
TRUE_ACTIVE_CODES = ("A", "S")


def active_ids_scored(scores: DataFrame, truth: DataFrame) -> dict:
    """The share of the truth's active registrations whose voter id a score row answers for.

    A person merged from several registrations answers for each of its ids
    (``gold.voter_scores.state_voter_ids``); a registration absorbed into a
    stranger would be missing here.

    Args:
        scores: ``gold.voter_scores``.
        truth: the generator's ``registrations`` truth (``ncid``, ``status_cd``).

    Returns:
        ``active_ids``, ``scored``, ``share``; ``multi_id_rows``: score rows answering for several ids.
    """
    active = truth.where(F.col("status_cd").isin(*TRUE_ACTIVE_CODES)).select(
        F.col("ncid").alias("state_voter_id")).distinct()
    answered = scores.select(F.explode("state_voter_ids").alias("state_voter_id")).distinct()
    # One row: the active ids and how many of them are scored.
    counts = active.join(answered.select("state_voter_id", F.lit(True).alias("_scored")), "state_voter_id",
                         how="left").agg(F.count("*").alias("n"), F.count("_scored").alias("scored")).first()
    multi = scores.where(F.size("state_voter_ids") > 1).count()  # a figure reported: score rows with several ids
    return {"active_ids": int(counts["n"]), "scored": int(counts["scored"]),
            "share": counts["scored"] / counts["n"] if counts["n"] else None, "multi_id_rows": int(multi)}


def _true_turnout(level: Column) -> Column:
    """The generator's turnout probability at an election's level: its generals alternate, a
    presidential year at ``p_presidential``, the others (the next general, a midterm) at ``p_turnout``.

    Both are at the snapshot's age and tenure; a past general drew at the voter's
    age then, so for past generals this oracle is close, not exact.
    """
    return F.when(level == "presidential", F.col("p_presidential")).otherwise(F.col("p_turnout"))


def next_of_each_level(as_of: dt.date) -> list[feat.Target]:
    """The next midterm and the next presidential general on or after ``as_of``, in date order."""
    targets: dict[str, feat.Target] = {}
    day = feat.next_general(as_of)
    while len(targets) < 2:
        if feat.general_level(day) != "off_year":
            targets.setdefault(feat.general_level(day), feat.Target(day, feat.general_level(day)))
        day = feat.next_general(dt.date(day.year + 1, 1, 1))
    return sorted(targets.values(), key=lambda t: t.date)


def target_quality(settings: Settings, current: DataFrame, truth: DataFrame, target: feat.Target) -> dict:
    """The turnout champion's scores for an election ahead against the true probabilities at its level.

    There is no outcome yet, so calibration is measured against the truth: the
    mean true probability in each bin of predicted probability.

    Args:
        settings: the run configuration (MLflow store).
        current: the scoring date's feature rows of active voters.
        truth: :func:`truth_by_voter_id`.
        target: the election predicted.

    Returns:
        ``date``, ``type``, ``n``, ``mean_p``, ``mean_true``, ``ece`` (against
        the true probabilities) and ``auc`` against outcomes drawn from them;
        ``mean_true_aged`` and ``ece_aged``: the same against the truth moved
        to the voters' age and tenure on the election's day.
    """
    champion, _, spec = load_champion(settings, "turnout")
    now = current.select("person_id", F.col("age").alias("age_now"), F.col("reg_tenure_years").alias("tenure_now"))
    rows = (feat.with_target_election(current, target).join(truth, "state_voter_id", "inner")
            .join(now, "person_id", "inner")
            .select("*", _true_turnout(F.lit(target.level)).alias("oracle")))
    # The generator draws each past general at the voter's age and tenure then
    # (synth.history.vote_events); the same law gives the truth at a general ahead.
    then = (turnout_age_term(F.col("age")) - turnout_age_term(F.col("age_now"))
            + turnout_tenure_term(F.col("reg_tenure_years")) - turnout_tenure_term(F.col("tenure_now")))
    rows = rows.select("*", sigmoid(logit(F.col("oracle")) + F.coalesce(then, F.lit(0.0))).alias("oracle_aged"))
    scored = apply_model(champion.model, spec, rows, ("person_id", "oracle", "oracle_aged")).cache()
    # One row: the means and count reported (cached rows).
    means = scored.agg(F.avg("p").alias("p"), F.avg("oracle").alias("t"), F.avg("oracle_aged").alias("ta"),
                       F.count("*").alias("n")).first()
    # One draw of outcomes from the true probabilities, for a ranking figure beside the calibration.
    drawn = scored.select("p", (F.rand(settings.model.seed) < F.col("oracle")).cast("double").alias("label"))
    result = {"date": target.date.isoformat(), "type": target.level, "n": int(means["n"]),
              "mean_p": float(means["p"]), "mean_true": float(means["t"]),
              "ece": ev.expected_calibration_error(ev.reliability(
                  scored.select("p", F.col("oracle").alias("label")), "p")),
              "mean_true_aged": float(means["ta"]),
              "ece_aged": ev.expected_calibration_error(ev.reliability(
                  scored.select("p", F.col("oracle_aged").alias("label")), "p")),
              "auc": prop.auc(drawn, "p")}
    scored.unpersist()
    return result


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
    champion, run, spec = load_champion(settings, kind)
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


def support_ranking(settings: Settings, current: DataFrame, truth: DataFrame, scores: DataFrame | None) -> dict:
    """Spearman correlation of support scores with the true support probability.

    Args:
        settings: the run configuration (MLflow store).
        current: the scoring date's feature rows of active voters.
        truth: :func:`truth_by_voter_id`.
        scores: ``gold.voter_scores``, or None before the score job has run.

    Returns:
        Over ``n`` active voters: ``model_spearman`` of the support champion
        alone, ``published_spearman`` of the published ``support_prob``
        (calibrated to precinct results; None without ``scores``) and
        ``party_spearman`` of party registration alone (DEM 1, REP 0, others 0.5).
    """
    champion, _, spec = load_champion(settings, "support")
    rows = current.join(truth, "state_voter_id", "inner").select(
        "*", training_sets.party_baseline().alias("party_p"))
    scored = apply_model(champion.model, spec, rows, ("person_id", "p_support", "party_p"))
    if scores is not None:
        scored = scored.join(scores.select("person_id", F.col("support_prob").alias("published")), "person_id",
                             how="left")
    # A few numbers per voter: ranks are computed locally (Spark has no rank correlation).
    ranks = scored.drop("person_id").toPandas().rank()
    model = float(ranks["p"].corr(ranks["p_support"]))
    published = float(ranks["published"].corr(ranks["p_support"])) if scores is not None else None
    return {"n": int(len(ranks)), "model_spearman": model, "published_spearman": published,
            "party_spearman": float(ranks["party_p"].corr(ranks["p_support"]))}


def persuasion_quality(settings: Settings, rows: DataFrame) -> dict:
    """The champion persuasion run's out-of-fold Qini beside the oracle Qini.

    Args:
        settings: the run configuration.
        rows: :func:`training_sets.persuasion_training_set` output joined to the true ``uplift``.

    Returns:
        ``model``, ``learner``, ``qini``, ``qini_low``, ``qini_high`` (from the run), ``oracle_qini``
        with its interval, ``experiment_rows``, ``observed_ate``, ``true_ate``.
    """
    champion, run, _ = load_champion(settings, "persuasion")
    metrics = run.data.metrics
    local = rows.select("label", "t", "uplift").toPandas()  # experiment rows only: the Qini bootstrap runs locally
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
    features = lake.read_current("gold.voter_features")
    history = lake.read_current("silver.vote_history")
    contacts = lake.read_current("silver.contacts")
    truth = truth_by_voter_id(truth)
    dates = training_sets.feature_dates(features)
    score_date = dates[-1]
    horizon = turnout_horizon(settings, score_date)
    generals = training_sets.turnout_generals(dates, history, settings.model.turnout_generals_per_level, horizon)
    # State voter ids are unique per person in the features; the truth of a person's registrations agrees.
    turnout = (training_sets.turnout_training_set(features, history, generals, horizon)
               .join(truth, "state_voter_id", "inner").select("*", _true_turnout(F.col(feat.TARGET_LEVEL)).alias("oracle")))
    current = features.where((F.col("as_of_date") == F.lit(score_date)) & F.col("is_active"))
    scores = lake.read_current("gold.voter_scores") if lake.version("gold.voter_scores") is not None else None
    arms = lake.read_current("silver.experiment_assignments").where(F.col("person_id").isNotNull()).select(
        "person_id", (F.col("arm") == "treatment").alias("treated")).dropDuplicates(["person_id"])
    # A treated voter's latest ID is usually the follow-up after treatment, drawn from p_support + uplift.
    support = (training_sets.support_training_set(features, contacts, score_date)
               .join(truth, "state_voter_id", "inner").join(arms, "person_id", "left")
               .select("*", (F.col("p_support") + F.when(F.col("treated"), F.col("uplift")).otherwise(0.0))
                       .alias("oracle")))
    experiment = training_sets.persuasion_training_set(
        features, lake.read_current("silver.experiment_assignments"), contacts,
        settings.model.persuasion_outcome_program).join(truth, "state_voter_id", "inner")
    evaluations = {
        "turnout": lambda: {**classifier_quality(settings, "turnout", turnout), "horizon_days": horizon,
                            "targets": [target_quality(settings, current, truth, t)
                                        for t in next_of_each_level(score_date)]},
        "support": lambda: {**classifier_quality(settings, "support", support),
                            "ranking": support_ranking(settings, current, truth, scores)},
        "persuasion": lambda: persuasion_quality(settings, experiment),
    }
    results = {}
    for kind, evaluate in evaluations.items():
        try:
            results[kind] = evaluate()
        except RuntimeError as exc:  # no champion: the train job skipped this model type
            results[kind] = {"skipped": str(exc)}
    return results
