"""Applying the champion models: load them with their input specs, score rows, calibrate to results.

:func:`apply_model` is the one way a fitted model (a champion being scored
or gated, or a candidate being evaluated) turns feature rows into
predictions; the train and score jobs and the quality checks all use it.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from mlflow.entities import Run
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.models import propensity as prop
from votelake.models import totals
from votelake.models import tracking
from votelake.transforms import features as feat
from votelake.transforms.scores import KEYS, calibration_rows, county_names, probability_frame
from votelake.transforms.training_sets import election_electorate, feature_dates

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from votelake.lakehouse import Lakehouse

# The kinds calibrated to precinct results.
CALIBRATED_KINDS = (totals.TURNOUT, totals.SUPPORT)


def spec_from_run(run, kind: str) -> prop.ModelSpec:
    """Rebuild a logged model's input spec from its run parameters.

    Args:
        run: the MLflow run that logged the model.
        kind: the model type (its default spec serves runs logged before the
            inputs were recorded).

    Returns:
        The spec the model was fitted with.
    """
    params = run.data.params
    if "numeric_features" not in params:
        return prop.SPECS[kind]
    names = lambda key: tuple(x for x in params[key].split(",") if x)  # noqa: E731
    return prop.ModelSpec(kind, names("numeric_features"), names("categorical_features"),
                          params.get("learner", "lr"))


def apply_model(model, spec: prop.ModelSpec, rows: DataFrame, passthrough: tuple[str, ...] = ("person_id",),
                bounded: bool = False) -> DataFrame:
    """Apply a fitted model (a champion, or a candidate under evaluation) to feature rows.

    Args:
        model: the fitted ``PipelineModel`` (a champion's is ``ChampionModel.model``).
        spec: its input spec (:func:`spec_from_run` for a logged model).
        rows: ``gold.voter_features`` rows, with any ``passthrough`` columns.
        passthrough: columns of ``rows`` kept in the output (keys, labels,
            report attributes); those absent from ``rows`` are skipped.
        bounded: clip an uplift to [-1, 1] (:func:`propensity.bounded_uplift`),
            as the published scores are.

    Returns:
        The ``passthrough`` columns and ``p``: the calibrated probability of the
        positive class, or for an uplift model the predicted uplift; a
        classifier also gives ``p_raw``, the probability before calibration.
    """
    extra = tuple(c for c in passthrough if c in rows.columns and c not in spec.features)
    out = model.transform(prop.model_frame(rows, spec, extra=extra))
    if spec.kind == prop.PERSUASION.kind:
        uplift = F.col(prop.UPLIFT)
        return out.select(*extra, (prop.bounded_uplift(uplift) if bounded else uplift).alias("p"))
    # Pass-through columns that are also model inputs come from the model frame.
    inputs = [c for c in passthrough if c in spec.features]
    return out.select(*extra, *inputs, prop.positive_probability(out).alias("p"),
                      prop.positive_probability(out, raw=True).alias("p_raw"))


def load_champions(settings: Settings, as_of: dt.date | None = None
                   ) -> tuple[dict[str, tracking.ChampionModel], dict[str, prop.ModelSpec], dict[str, str]]:
    """Load the champion of every model type with the input spec it was fitted with.

    Args:
        settings: the run configuration (``mlflow``).
        as_of: the scoring as-of date: with it, a turnout champion trained for
            another horizon than the target's is named in a warning (its scores
            are still published: it is the registered champion).

    Returns:
        ``(models, specs, missing)``: the champions and their specs by kind,
        and why each kind without a champion has none.

    Raises:
        RuntimeError: no model of any type has a champion.
    """
    models: dict[str, tracking.ChampionModel] = {}
    specs: dict[str, prop.ModelSpec] = {}
    missing = {}
    for kind in prop.SPECS:
        try:
            models[kind], run, specs[kind] = load_champion(settings, kind)
        except RuntimeError as exc:
            missing[kind] = str(exc)
            continue
        if kind != "turnout" or as_of is None:
            continue
        trained_for, horizon = run.data.params.get("horizon_days"), turnout_horizon(settings, as_of)
        if trained_for is not None and trained_for != str(horizon):
            log.warning("the turnout champion %s learnt from examples %s days ahead of their election; the target "
                        "is %s days ahead: run build and train with this target election", models[kind].label,
                        trained_for, horizon)
    if not models:
        raise RuntimeError("no champion model to score with: " + "; ".join(missing.values()))
    return models, specs, missing


def load_champion(settings: Settings, kind: str) -> tuple[tracking.ChampionModel, Run, prop.ModelSpec]:
    """One model type's champion, the MLflow run that trained it, and the input spec it was fitted with.

    Raises:
        RuntimeError: the model type has no champion.
    """
    champion = tracking.load_champion(settings.mlflow, kind)
    run = tracking.configure(settings.mlflow).get_run(champion.run_id)
    return champion, run, spec_from_run(run, kind)


def target_of(settings: Settings, as_of: dt.date) -> feat.Target:
    """The election the turnout scores predict: ``model.target_election``, else the next November general.

    Args:
        settings: the run configuration.
        as_of: the scoring as-of date.

    Returns:
        The target election.

    Raises:
        ValueError: the declared election is before ``as_of``.
    """
    declared = settings.model.target_election
    return feat.target_election(declared.date if declared else None, declared.type if declared else None, as_of)


def turnout_horizon(settings: Settings, as_of: dt.date) -> int:
    """Days from the scoring as-of date to the target election: how far ahead turnout's examples are measured.

    Args:
        settings: the run configuration (``model.target_election``).
        as_of: the scoring as-of date.

    Returns:
        The days (0 when the target is on the as-of date).
    """
    return (target_of(settings, as_of).date - as_of).days


def calibration_day(settings: Settings, elections: list[feat.Election], as_of: dt.date) -> dt.date | None:
    """The election the results are for: ``calibration.election_date``, else the latest general before ``as_of``.

    Args:
        settings: the run configuration (``calibration.election_date``).
        elections: the known elections (:func:`votelake.transforms.features.known_elections`).
        as_of: the scoring as-of date.

    Returns:
        The election date; None without either.
    """
    generals = feat.elections_before(elections, as_of, "GENERAL")
    return settings.calibration.election_date or (generals[-1].date if generals else None)


def calibration_election(settings: Settings, lake: Lakehouse, as_of: dt.date) -> dt.date:
    """:func:`calibration_day` of the lakehouse's vote history (read only without ``calibration.election_date``).

    Raises:
        ValueError: neither is available.
    """
    read = settings.calibration.election_date is None and lake.version("silver.vote_history") is not None
    day = calibration_day(settings, feat.known_elections(lake.read_current("silver.vote_history")) if read else [],
                          as_of)
    if day is None:
        raise ValueError("calibration.election_date must be set: silver.vote_history holds no general election")
    return day


def calibrated_probabilities(
    settings: Settings,
    lake: Lakehouse,
    features: DataFrame,
    current: DataFrame,
    models: dict[str, tracking.ChampionModel],
    specs: dict[str, prop.ModelSpec],
    predictions: dict[str, DataFrame],
    scoring_run: str,
    scored_at: dt.datetime,
) -> tuple[DataFrame, DataFrame, dict | str]:
    """The scored voters' probabilities, calibrated to precinct results when ``calibration`` is on.

    Scores the election's voters (``gold.voter_features`` as of the election
    date, or today's voters when there are none) with the same champions and
    calls :func:`totals.calibrate_to_results`.

    Args:
        settings: the run configuration.
        lake: the lakehouse (``silver.persons`` for county names, vote history for the election).
        features: ``gold.voter_features`` (every as-of date).
        current: the scoring date's rows of active voters.
        models: the champion models by kind.
        specs: their feature specs.
        predictions: their predictions for ``current`` (:func:`apply_model`).
        scoring_run: :func:`votelake.transforms.scores.scoring_run_id`.
        scored_at: the run's timestamp.

    Returns:
        ``(probabilities, shift_rows, summary)``: :func:`probability_frame` of
        ``current`` with ``<kind>_prob_calibrated`` columns, the
        ``gold.precinct_calibration`` rows (an empty frame when nothing was
        shifted), and the summary (the election, and per kind
        :func:`totals.calibration_report`); without calibration the model's
        probabilities, no shift rows and why not.
    """
    cfg = settings.calibration
    no_shifts = lake.spark.createDataFrame([], lake.table("gold.precinct_calibration").schema)
    calibrated = {k: m for k, m in models.items() if k in CALIBRATED_KINDS}
    if not cfg.enabled or not calibrated:
        reason = "off" if not cfg.enabled else "no turnout or support champion to calibrate"
        return probability_frame(current, predictions), no_shifts, reason
    dates = feature_dates(features)
    as_of = dates[-1]
    election_date = calibration_election(settings, lake, as_of)
    counties = county_names(lake.read_current("silver.persons")).localCheckpoint()  # per county, read twice below
    probabilities = probability_frame(current, predictions, counties)
    if election_date in dates and election_date != as_of:
        electorate = election_electorate(features, election_date)
        election = probability_frame(
            electorate, {k: apply_model(m.model, specs[k], electorate, bounded=True) for k, m in calibrated.items()},
            counties)
        election_rows = f"voters as of {election_date}"
    else:
        election = probabilities
        election_rows = f"the scored voters as of {as_of} (no features as of {election_date})"
    calibration = totals.calibrate_to_results(
        election, probabilities, totals.read_results(lake.spark, cfg.results), office=cfg.office,
        district=cfg.district, turnout=cfg.turnout, support=cfg.support, keys=KEYS, max_shift=cfg.max_shift)
    report = totals.calibration_report(calibration)
    for kind, figures in report.items():
        if figures.get("matched_precincts") == 0:
            log.warning("no result precinct matches a voter-file precinct; %s not shifted", kind)
    summary = {"results": str(cfg.results), "office": cfg.office, "district": cfg.district,
               "election_date": election_date.isoformat(), "election_rows": election_rows, **report}
    rows = calibration_rows(calibration, counties, election_date, str(cfg.results), models, scoring_run, scored_at)
    return calibration.current, no_shifts if rows is None else rows, summary


def target_summary(settings: Settings, target: feat.Target) -> dict:
    """The target election as the score summary and the scoring run id record it.

    Args:
        settings: the run configuration.
        target: :func:`target_of`.

    Returns:
        ``date``, ``type``, and ``expected_turnout`` when one is declared.
    """
    declared = settings.model.target_election
    expected = declared.expected_turnout if declared else None
    return {"date": target.date.isoformat(), "type": target.level,
            **({"expected_turnout": expected} if expected is not None else {})}


def at_expected_turnout(probabilities: DataFrame, expected: float | None) -> tuple[DataFrame, dict | None]:
    """Move the published turnout probabilities to a declared level by one logit shift.

    Applied after any precinct calibration: the precinct shifts carry where
    turnout runs high or low, this sets how high it runs overall.

    Args:
        probabilities: :func:`probability_frame` of the scored voters
            (``turnout_prob``, and ``turnout_prob_calibrated`` when calibrated).
        expected: the declared ``model.target_election.expected_turnout``; None
            leaves the frame as it is.

    Returns:
        ``(probabilities, figures)``: with ``turnout_prob_calibrated`` at the
        declared mean (``turnout_prob`` stays the model's), and
        :func:`totals.shift_to_mean`'s figures plus ``expected_turnout``; the
        frame unchanged and None without a declared level or a turnout champion.
    """
    model_col = f"{totals.TURNOUT}_prob"
    if expected is None or model_col not in probabilities.columns:
        return probabilities, None
    published = model_col + totals.CALIBRATED
    source = published if published in probabilities.columns else model_col
    shifted, figures = totals.shift_to_mean(probabilities, source, F.lit(expected))
    if source == published:
        shifted = shifted.drop(published).withColumnRenamed(published + totals.CALIBRATED, published)
    return shifted, {"expected_turnout": expected, **figures}
