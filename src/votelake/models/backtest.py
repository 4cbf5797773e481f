"""Out-of-time turnout backtests: predict a past general from what was known before it.

For each backtested general the turnout model is fitted exactly as the train
job fits it (voter × election examples from the generals before it, each with
its level and its features as of its date), then scores every voter eligible
for that general with features as of its date and is compared with who
voted. Nothing dated on or after the election enters: features only count
earlier events, and inputs a voter file records as of its own snapshot rather
than as of the election (:data:`SNAPSHOT_INPUTS`) are left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.models import lifecycle
from votelake.models import propensity as prop
from votelake.models import totals
from votelake.models.scoring import apply_model
from votelake.transforms import features as feat
from votelake.transforms.training_sets import turnout_training_set

# A snapshot's party can come from a primary ballot cast after the backtested
# election (Ohio records the party of the latest primary voted), which would
# leak later participation into the prediction.
SNAPSHOT_INPUTS = ("party",)


def backtest_generals(elections: list[feat.Election], declared: list[dt.date]) -> list[feat.Election]:
    """The generals to backtest: the declared dates, else the latest presidential and midterm general.

    Args:
        elections: every known election.
        declared: ``model.backtest_elections`` (may be empty).

    Returns:
        The generals, oldest first.

    Raises:
        ValueError: a declared date is not a general in the vote history.
    """
    generals = {e.date: e for e in elections if e.type == "GENERAL"}
    if declared:
        unknown = sorted(str(d) for d in declared if d not in generals)
        if unknown:
            raise ValueError(f"model.backtest_elections: no general election in the vote history on {unknown}")
        return [generals[d] for d in sorted(declared)]
    november = feat.november_generals(elections, dt.date.max)
    latest = {feat.general_level(e.date): e for e in november if feat.general_level(e.date) != "off_year"}
    return sorted(latest.values(), key=lambda e: e.date)


def ece_at_known_turnout(scored: DataFrame) -> float:
    """Calibration error once the scores are shifted (one logit shift) to the election's realised turnout.

    How high a particular general's turnout runs is not in any voter's
    history (Ohio's survivors of a 2021 file voted 0.48 in the 2014 midterm
    and 0.56 in 2018); campaigns set it from a turnout projection. This
    separates the model's shape from that level: the error a perfect
    projection would leave.

    Args:
        scored: rows with ``label`` and ``p``.

    Returns:
        The expected calibration error of the shifted probabilities.
    """
    shifted, _ = totals.shift_to_mean(scored.select("label", "p"), "p", F.avg("label"))
    return prop.evaluate(shifted.select("label", F.col("p_calibrated").alias("p")), "p")["ece"]


def turnout_backtest(settings: Settings, persons: DataFrame, history: DataFrame, contacts: DataFrame,
                     digital: DataFrame, election: feat.Election) -> dict:
    """Fit turnout on the generals before ``election`` and evaluate it on ``election``.

    Args:
        settings: the run configuration (model settings).
        persons: ``silver.persons``.
        history: ``silver.vote_history``.
        contacts: ``silver.contacts`` (features count only what is dated before each as-of date).
        digital: ``silver.digital_events``.
        election: the general predicted.

    Returns:
        ``election``, ``type``, the ``training_elections``, and on the
        election's voters: ``n``, ``turnout`` (observed), ``baseline_auc`` and
        ``baseline_ece`` of the share of earlier generals voted, per
        configured learner its ``auc``, ``ece``, ``log_loss``, ``mean_p`` and
        ``ece_at_known_turnout`` (:func:`ece_at_known_turnout`), and the
        ``champion``: the learner the gate picks on the past generals'
        held-out voters (:func:`votelake.models.lifecycle.gate_choice`).

    Raises:
        ValueError: no general before ``election`` to learn from.
    """
    elections = feat.known_elections(history)
    generals = feat.training_generals(elections, election.date, settings.model.turnout_generals_per_level)
    if not generals:
        raise ValueError(f"no general election before {election.date} to learn turnout from")
    # Every date's features in one pass, materialised once: the examples read them per election.
    features = feat.voter_features_as_of(persons, history, contacts, digital,
                                         sorted({g.date for g in generals} | {election.date}), elections
                                         ).localCheckpoint()
    training = turnout_training_set(features, history, generals)
    # Split as the train job splits: the held-out voters of the past generals pick the
    # champion, so the backtest judges the model a run would have published.
    parts = lifecycle.split(training, settings)
    prepared = lifecycle.prepare(settings, prop.TURNOUT.without(SNAPSHOT_INPUTS), parts.fit, parts.calibration)
    test = turnout_training_set(features, history, [election]).cache()
    baseline = prop.evaluate(test, "baseline")
    result: dict = {"election": election.date.isoformat(), "type": feat.general_level(election.date),
                    "training_elections": [g.date.isoformat() for g in generals],
                    "n": int(baseline["n"]), "turnout": round(baseline["base_rate"], 4),
                    "baseline_auc": round(baseline["auc"], 4), "baseline_ece": round(baseline["ece"], 4)}
    fitted = []
    for learner in settings.model.learners:
        candidate = replace(prepared.spec, learner=learner)
        model, _ = lifecycle.fit_calibrated(settings, candidate, prepared)
        fitted.append((learner, model, candidate))
        scored = apply_model(model, candidate, test, ("label",)).cache()
        quality = prop.evaluate(scored, "p")
        result[learner] = {"auc": round(quality["auc"], 4), "ece": round(quality["ece"], 4),
                           "log_loss": round(quality["log_loss"], 4),
                           "mean_p": round(scored.agg(F.avg("p")).first()[0], 4),  # one value: the mean score
                           "ece_at_known_turnout": round(ece_at_known_turnout(scored), 4)}
        scored.unpersist()
    result["champion"] = lifecycle.gate_choice(settings, prepared.spec.kind, parts.holdout, fitted)
    for frame in (test, prepared.fit_rows, prepared.calibration):
        frame.unpersist()
    return result
