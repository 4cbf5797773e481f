"""The model life cycle: split, fit, calibrate, evaluate, log, register and gate.

What the train job runs once it has read the tables: per model type, every
candidate learner is fitted on the labelled voters (:mod:`votelake.transforms.training_sets`),
evaluated on held-out voters, logged to MLflow (parameters, metrics, the model
with its signature, an HTML report) and registered; the ``champion`` alias
moves to it only when it beats the current champion on the same held-out rows.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import logging
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyspark
from mlflow.models import infer_signature
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from votelake.config import Settings
from votelake.models import evaluation as ev
from votelake.models import propensity as prop
from votelake.models import tracking
from votelake.models.report import ReportData, write_report
from votelake.models.scoring import apply_model, spec_from_run, turnout_horizon
from votelake.session import stated_task_slots, task_slots
from votelake.transforms import features as feat
from votelake.transforms.training_sets import (arm_weight, party_training_set, persuasion_training_set,
                                               support_training_set, turnout_generals, turnout_training_set)

log = logging.getLogger(__name__)

SIGNATURE_ROWS = 5
FAIRNESS_ATTRIBUTES = ("age_band", "gender", "race")
# Columns passed through scoring for the report (fairness groups, tie-breaking key).
REPORT_COLUMNS = ("person_id", "label", "baseline", "age", "gender", "race")
# Salt of the calibration split, so it is independent of the held-out split.
CALIBRATION_SALT = 101
# The champion gate pairs two models' predictions row by row on at most this
# many held-out rows (a state's voter × election rows run to millions); the
# standard error found on a sample is scaled to the whole held-out set.
PAIRED_ROWS = 300_000
# A metric gain no larger than this is rounding, not a better model (see beats()).
METRIC_NOISE = 1e-9
HOLDOUT_ROW = "_holdout_row"


@dataclass(frozen=True)
class PairedRows:
    """The held-out rows a gate comparison pairs (all, or a sample), and sqrt(sample / all)."""

    keep: Column
    scale: float

    def collect(self, scored: DataFrame) -> pd.DataFrame:
        """A model's ``label`` and ``p`` on the paired rows, indexed by held-out row."""
        # At most PAIRED_ROWS rows: paired locally.
        return scored.where(self.keep).select(HOLDOUT_ROW, "label", "p").toPandas().set_index(HOLDOUT_ROW)


def _numbered(holdout: DataFrame, seed: int) -> tuple[DataFrame, PairedRows]:
    """The held-out rows numbered for pairing (cached: unpersist when done), and the rows a gate pairs."""
    numbered = holdout.select("*", F.monotonically_increasing_id().alias(HOLDOUT_ROW)).cache()
    total = numbered.count()  # materializes the cache; decides whether the gate samples
    if total <= PAIRED_ROWS:
        return numbered, PairedRows(F.lit(True), 1.0)
    keep = prop.in_holdout(F.col(HOLDOUT_ROW), PAIRED_ROWS / total, seed)
    # The sample's size sets the scale of the standard error.
    return numbered, PairedRows(keep, math.sqrt(numbered.where(keep).count() / total))


def _holdout_comparison(metric: str, holdout: DataFrame, paired: PairedRows, challenger: DataFrame):
    """The gate's comparison of another model with a challenger already scored on the held-out rows.

    Args:
        metric: the gate metric.
        holdout: the held-out rows (with :data:`HOLDOUT_ROW`).
        paired: the rows the standard error pairs.
        challenger: the challenger's predictions on ``holdout`` (with :data:`HOLDOUT_ROW`, ``label``, ``p``).

    Returns:
        A function (model, spec) -> that model's metric on ``holdout`` and the
        standard error of the challenger's difference from it.
    """
    def compare(model, spec: prop.ModelSpec) -> tuple[float, float]:
        scored = apply_model(model, spec, holdout, (HOLDOUT_ROW, "label"))
        theirs = paired.collect(scored)
        mine = paired.collect(challenger)["p"].reindex(theirs.index)
        se = ev.paired_difference_se(metric, theirs["label"].to_numpy(), mine.to_numpy(), theirs["p"].to_numpy())
        return prop.evaluate(scored, "p")[metric], se * paired.scale
    return compare


@dataclass(frozen=True)
class Split:
    """The labelled voters divided for fitting, calibration and evaluation."""

    fit: DataFrame
    calibration: DataFrame
    holdout: DataFrame


def split(labelled: DataFrame, settings: Settings) -> Split:
    """Split labelled rows by hashing person_id (stable across runs and clusters).

    Args:
        labelled: rows with ``person_id``.
        settings: fractions and seed.

    Returns:
        The three parts.
    """
    cfg = settings.model
    holdout = prop.in_holdout(F.col("person_id"), cfg.test_fraction, cfg.seed)
    calibration = prop.in_holdout(F.col("person_id"), cfg.calibration_fraction, cfg.seed + CALIBRATION_SALT)
    return Split(fit=labelled.where(~holdout & ~calibration), calibration=labelled.where(~holdout & calibration),
                 holdout=labelled.where(holdout))


@dataclass(frozen=True)
class Prepared:
    """Model rows ready to fit: the informative spec, weighted fit rows, calibration rows and method."""

    spec: prop.ModelSpec
    empty: tuple[str, ...]
    fit_rows: DataFrame
    calibration: DataFrame
    weights: tuple[float, float]
    method: str


def per_slot(rows: DataFrame) -> DataFrame:
    """``rows`` in one partition per task slot the configuration states (as they are when it does not).

    Each MLlib pass (a GBT tree level, an L-BFGS step) is a Spark job over every
    partition of its input, and at several partitions per slot the tasks' setup
    and the merging of their partial sums cost more than the rows: 264k turnout
    rows on 2 cores fit GBT in 24 s instead of 37 and LR in 4.8 s instead of 7.3
    in 2 partitions instead of 8. A shuffle (once, before the rows are cached),
    not ``coalesce``: XGBoost's barrier stage refuses a chain that merges partitions.

    Args:
        rows: model rows about to be cached and fitted.

    Returns:
        The same rows.
    """
    slots = stated_task_slots(rows.sparkSession)
    return rows.repartition(slots) if slots else rows


def prepare(settings: Settings, spec: prop.ModelSpec, fit: DataFrame, calibration: DataFrame) -> Prepared:
    """Drop excluded and empty inputs, weigh the classes, and cache the fit and calibration rows.

    Args:
        settings: the run configuration (``model.excluded_inputs``, class weights, calibration).
        spec: the model type's inputs.
        fit: labelled rows the classifier learns from.
        calibration: labelled rows the probability calibration learns from.

    Returns:
        The prepared rows (cached: unpersist ``fit_rows`` and ``calibration`` when done).
    """
    cfg = settings.model
    spec, empty = prop.informative(spec.without(cfg.excluded_inputs), fit)
    fit_rows = prop.model_frame(fit, spec, extra=("person_id", "label"))
    weights = prop.class_weights(fit_rows, cfg.class_weight)
    fit_rows = per_slot(prop.with_weights(fit_rows, weights)).cache()
    calibration_rows = per_slot(prop.model_frame(calibration, spec, extra=("label",))).cache()
    return Prepared(spec, empty, fit_rows, calibration_rows, weights,
                    prop.calibration_method(cfg, calibration_rows.count()))  # materializes the cache; picks the method


def fit_calibrated(settings: Settings, candidate: prop.ModelSpec, prepared: Prepared):
    """Fit a candidate learner (hyperparameters searched as configured) and calibrate its probabilities.

    Returns:
        The fitted pipeline with its calibration stage, and the chosen hyperparameters.
    """
    tuned, chosen = prop.fit_tuned(candidate, settings.model, prepared.fit_rows)
    offsets = prop.LEVEL if prop.LEVEL in candidate.categorical else None
    return prop.calibrate(tuned, prepared.calibration, prepared.method, offsets), chosen


def made_up_example(rows: DataFrame) -> pd.DataFrame:
    """One invented row in the model's input schema: each number the column's mean, each other value its mode.

    MLflow stores the input example as an artifact beside the model; a row of
    real voters there would leave personal data wherever the model is copied.

    Args:
        rows: model input rows (:func:`votelake.models.propensity.model_frame`).

    Returns:
        A one-row pandas frame with the columns and dtypes of ``rows``.
    """
    made_up = rows.agg(*[
        (F.avg(f.name).cast(f.dataType) if isinstance(f.dataType, T.NumericType) else F.mode(f.name)).alias(f.name)
        for f in rows.schema.fields])
    return made_up.toPandas()  # one row: the made-up example


def _log_model(model, spec: prop.ModelSpec, example: DataFrame, output: DataFrame, name: str) -> str:
    sample = made_up_example(example)
    signature = infer_signature(sample, output.limit(SIGNATURE_ROWS).toPandas())  # a few rows: the output schema
    # A fitted Spark pipeline needs pyspark alone; naming it spares MLflow's
    # requirement inference, which re-imports the model in a subprocess (~45 s).
    requirements = [f"pyspark=={pyspark.__version__}"]
    if spec.learner == "xgb":
        # Its booster stage is a Python class: loading the model imports xgboost.
        requirements.append(f"xgboost-cpu=={importlib.metadata.version('xgboost-cpu')}")
    info = mlflow.spark.log_model(model, artifact_path="model", signature=signature, input_example=sample,
                                  pip_requirements=requirements)
    return tracking.register(name, info)


def _run_params(settings: Settings, spec: prop.ModelSpec, feature_version: int, empty: tuple[str, ...],
                params: dict) -> dict:
    cfg = settings.model
    return {
        "kind": spec.kind, "learner": spec.learner,
        "numeric_features": ",".join(spec.numeric), "categorical_features": ",".join(spec.categorical),
        "empty_features_dropped": ",".join(empty) or "none",
        "protected_excluded": ",".join(cfg.excluded_inputs) or "none",
        "include_protected": cfg.include_protected,
        "feature_table": "gold.voter_features", "feature_table_version": feature_version,
        "code_version": tracking.code_version(),
        **{k: v for k, v in cfg.model_dump().items() if not isinstance(v, (list, tuple))},
        **{k: ",".join(map(str, v)) for k, v in cfg.model_dump().items() if isinstance(v, (list, tuple))},
        **params,
    }


def gate(settings: Settings, kind: str, version: str, challenger: float, holdout_comparison) -> dict:
    """Move the champion alias to ``version`` only if it beats the champion on the same held-out rows
    by more than ``model.gate_min_se`` standard errors of the difference.

    Args:
        settings: the run configuration (registry, gate metric, margin).
        kind: the model type.
        version: the challenger's registered version.
        challenger: the challenger's held-out metric.
        holdout_comparison: function (model, spec) -> another model's metric
            on the same held-out rows, and the standard error of the
            challenger's difference from it (0 where none is computed).

    Returns:
        ``promoted`` (bool), ``champion_metric`` (None when there was no
        champion, it could not score these rows, or it uses attributes the
        configuration now excludes), ``standard_error`` and ``reason``.
    """
    client = tracking.configure(settings.mlflow)
    name = tracking.registered_name(settings.mlflow, kind)
    current = tracking.champion_version(client, name)
    if current is None:
        tracking.promote(client, name, version)
        return {"promoted": True, "champion_metric": None, "reason": "no champion yet"}
    champion_spec = spec_from_run(client.get_run(current.run_id), kind)
    protected = set(champion_spec.features) & set(settings.model.excluded_inputs)
    if protected:
        tracking.promote(client, name, version)
        return {"promoted": True, "champion_metric": None,
                "reason": f"champion v{current.version} uses excluded attributes: {', '.join(sorted(protected))}"}
    try:
        champion, se = holdout_comparison(tracking.load_version(name, current.version), champion_spec)
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score today's features is replaced
        tracking.promote(client, name, version)
        return {"promoted": True, "champion_metric": None,
                "reason": f"champion v{current.version} cannot score the held-out rows: {type(exc).__name__}"}
    better, evidence = beats(settings, kind, challenger, champion, se)
    if better:
        tracking.promote(client, name, version)
    verdict = "beats" if better else "does not beat"
    return {"promoted": better, "champion_metric": champion, "standard_error": se,
            "reason": f"v{version} {verdict} champion v{current.version} on the same held-out rows ({evidence})"}


def beats(settings: Settings, kind: str, challenger: float, champion: float, se: float) -> tuple[bool, str]:
    """The gate's rule: a challenger wins by more than ``model.gate_min_se`` standard errors of the difference.

    Args:
        settings: the run configuration (gate metric and margin).
        kind: the model type (persuasion's Qini is always higher-is-better).
        challenger: the challenger's held-out metric.
        champion: the champion's metric on the same rows.
        se: the standard error of their difference (0 where none is computed).

    Returns:
        Whether the challenger wins, and the evidence in words.
    """
    lower_is_better = kind != "persuasion" and settings.model.gate_metric == "log_loss"
    gain = champion - challenger if lower_is_better else challenger - champion
    # At least more than rounding: the same model retrained scores the same rows the same, but its metric
    # can differ from the champion's in the last bits (summed in another order), and that is no gain.
    margin = max(settings.model.gate_min_se * se, METRIC_NOISE)
    evidence = f"gain {gain:+.4f}"
    if se > 0:
        evidence += f", needed > {margin:.4f}: {settings.model.gate_min_se:g} × its standard error {se:.4f}"
    return gain > margin, evidence


def gate_choice(settings: Settings, kind: str, holdout: DataFrame, fitted: list[tuple[str, object, prop.ModelSpec]]
                ) -> str:
    """The learner a first training run's gate would make champion, without a registry.

    The candidates meet the gate in the configured order on the same held-out
    rows, as :func:`train_classifier` puts them to it: the first becomes
    champion, and each later one replaces it only by :func:`beats`.

    Args:
        settings: the run configuration.
        kind: the model type.
        holdout: labelled held-out rows (model inputs and ``label``).
        fitted: ``(learner, fitted pipeline, spec)`` in the configured order.

    Returns:
        The winning learner's name.
    """
    holdout, paired = _numbered(holdout, settings.model.seed)
    metric = settings.model.gate_metric
    best = fitted[0]
    for challenger in fitted[1:]:
        scored = apply_model(challenger[1], challenger[2], holdout, (HOLDOUT_ROW, "label")).cache()
        champion, se = _holdout_comparison(metric, holdout, paired, scored)(best[1], best[2])
        if beats(settings, kind, prop.evaluate(scored, "p")[metric], champion, se)[0]:
            best = challenger
        scored.unpersist()
    holdout.unpersist()
    return best[0]


def _classifier_report(title: str, metrics: dict, params: dict, scored: DataFrame, model, transformed: DataFrame,
                       notes: tuple[str, ...]) -> ReportData:
    roc = [ev.roc_points(scored, "p").assign(curve="model")]
    if "baseline" in scored.columns:
        roc.append(ev.roc_points(scored.select("label", F.col("baseline").alias("p")), "p").assign(curve="baseline"))
    reliability = [ev.reliability(scored, "p_raw").assign(curve="raw"),
                   ev.reliability(scored, "p").assign(curve="calibrated")]
    return ReportData(
        title=title, metrics=metrics, params={k: str(v) for k, v in params.items()},
        roc=pd.concat(roc, ignore_index=True), reliability=pd.concat(reliability, ignore_index=True),
        deciles=ev.decile_table(scored, "p"), importance=ev.feature_weights(model.stages, transformed),
        fairness=ev.fairness_table(scored, "p", FAIRNESS_ATTRIBUTES), notes=notes,
    )


def _log_report(report: ReportData) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_report(report, Path(tmp))
        mlflow.log_artifacts(tmp, artifact_path="report")
    # The figures' numbers (aggregates only), as tables the run page shows and mlflow.load_table reads.
    tables = {"deciles": report.deciles, "reliability": report.reliability, "fairness": report.fairness,
              "importance": report.importance}
    for name, table in tables.items():
        if table is not None and not table.empty:
            mlflow.log_table(table, f"report/{name}.json")


def train_classifier(settings: Settings, spec: prop.ModelSpec, labelled: DataFrame, feature_version: int,
                     params: dict) -> dict:
    """Fit, calibrate, evaluate, report, register and gate each configured learner for one model type.

    Args:
        settings: the run configuration.
        spec: the model type's inputs (protected attributes are removed here
            unless ``model.include_protected``).
        labelled: feature rows with ``person_id``, ``label`` and optionally ``baseline``.
        feature_version: Delta version of ``gold.voter_features`` read.
        params: extra parameters to log (label definition, dates).

    Returns:
        Per learner: run id, registered version, held-out metrics, training
        seconds and the gate's verdict; and ``champion``.
    """
    cfg = settings.model
    parts = split(labelled, settings)
    prepared = prepare(settings, spec, parts.fit, parts.calibration)
    spec, empty, fit_rows, calibration = prepared.spec, prepared.empty, prepared.fit_rows, prepared.calibration
    weights, method = prepared.weights, prepared.method
    holdout, paired = _numbered(parts.holdout, cfg.seed)
    client = tracking.configure(settings.mlflow)
    experiment = tracking.experiment_id(settings.mlflow, spec.kind)
    name = tracking.registered_name(settings.mlflow, spec.kind)
    results: dict = {}

    for learner in cfg.learners:
        candidate = replace(spec, learner=learner)
        with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.kind}-{learner}") as run:
            run_params = _run_params(settings, candidate, feature_version, empty, params)
            mlflow.log_params({**run_params, "class_weights": f"{weights[0]:.4f},{weights[1]:.4f}",
                               "calibration_method": method})
            mlflow.set_tags({"votelake.model": spec.kind, "votelake.code_version": run_params["code_version"]})
            started = dt.datetime.now()
            model, chosen = fit_calibrated(settings, candidate, prepared)
            seconds = (dt.datetime.now() - started).total_seconds()
            scored = apply_model(model, candidate, holdout, (*REPORT_COLUMNS, HOLDOUT_ROW)).cache()
            metrics = {f"test_{k}": v for k, v in prop.evaluate(scored, "p").items()}
            raw = prop.evaluate(scored, "p_raw")
            metrics.update(raw_auc=raw["auc"], raw_ece=raw["ece"], raw_log_loss=raw["log_loss"],
                           train_rows=float(fit_rows.count()), train_seconds=seconds)
            if "baseline" in scored.columns:
                metrics["baseline_auc"] = prop.auc(scored, "baseline")
            metrics.update({f"tuned_{k}": float(v) for k, v in chosen.items()})
            mlflow.log_metrics(metrics)
            example = prop.model_frame(holdout, candidate)
            version = _log_model(model, candidate, example, scored.select("p"), name)
            transformed = model.transform(example.limit(1))
            notes = (f"Inputs exclude protected attributes: {', '.join(cfg.excluded_inputs) or 'none'} "
                     f"(model.include_protected={cfg.include_protected}).",
                     f"Class weights (negative, positive): {weights[0]:.3f}, {weights[1]:.3f}; "
                     f"{method} calibration on held-aside training voters.")
            _log_report(_classifier_report(f"{spec.kind} — {learner} — {name} v{version}", metrics, run_params,
                                           scored, model, transformed, notes))
            verdict = gate(settings, spec.kind, version, metrics[f"test_{cfg.gate_metric}"],
                           _holdout_comparison(cfg.gate_metric, holdout, paired, scored))
            mlflow.set_tags({"votelake.gate": verdict["reason"], "votelake.promoted": str(verdict["promoted"])})
            scored.unpersist()
        results[learner] = {"run_id": run.info.run_id, "model": f"{name}/{version}", **verdict,
                            **{k: round(v, 4) for k, v in metrics.items()}}
    fit_rows.unpersist()
    calibration.unpersist()
    holdout.unpersist()
    results["champion"] = f"{name}/{tracking.champion_version(client, name).version}"
    return results


def _uplift_arrays(scored: DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = scored.select("label", "t", "p").toPandas()  # experiment rows only: the Qini is computed locally
    return rows["label"].to_numpy(), rows["t"].to_numpy(), rows["p"].to_numpy()


def cross_fitted_uplift(settings: Settings, spec: prop.ModelSpec, rows: DataFrame) -> DataFrame:
    """Out-of-fold uplift predictions: each voter scored by a model that never saw them.

    Args:
        settings: folds, seed, regularisation.
        spec: the persuasion inputs.
        rows: experiment rows with ``person_id``, ``t``, ``label`` and ``w`` (:func:`arm_weight`).

    Returns:
        ``person_id, label, t, p`` (p = predicted uplift) for every row.
    """
    cfg = settings.model
    fold = F.pmod(F.xxhash64(F.col("person_id"), F.lit(cfg.seed + 7)), F.lit(cfg.uplift_folds))
    rows = rows.select("*", fold.alias("fold"))

    def out_of_fold(k: int) -> DataFrame:
        model = prop.fit_uplift(spec, cfg, prop.model_frame(rows.where(F.col("fold") != k), spec,
                                                            extra=("label", "w")))
        return (apply_model(model, spec, rows.where(F.col("fold") == k), ("person_id", "label", "t"))
                .select("person_id", "label", "t", "p"))

    # The folds' fits are independent and deterministic: side by side (model.parallel_fits) they give the
    # models one at a time would (to rounding), in a fraction of the time their short Spark jobs take to schedule.
    at_once = min(cfg.uplift_folds, cfg.parallel_fits or task_slots(rows.sparkSession))
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        parts = list(pool.map(out_of_fold, range(cfg.uplift_folds)))
    return reduce(DataFrame.unionByName, parts)


def train_persuasion(settings: Settings, labelled: DataFrame, feature_version: int, params: dict) -> dict:
    """Fit, evaluate (Qini with a bootstrap interval), report, register and gate each uplift learner.

    Args:
        settings: the run configuration.
        labelled: :func:`persuasion_training_set` output.
        feature_version: Delta version of ``gold.voter_features`` read.
        params: extra parameters to log.

    Returns:
        Per learner: run id, registered version, the cross-fitted Qini with
        its interval, the held-out Qini and the gate's verdict; and ``champion``.
    """
    cfg = settings.model
    labelled = labelled.cache()
    treated_share = labelled.agg(F.avg("t")).first()[0]  # one value: the treated share
    rows = arm_weight(labelled, treated_share)
    spec, empty = prop.informative(prop.PERSUASION.without(cfg.excluded_inputs), rows)
    parts = split(rows, settings)
    client = tracking.configure(settings.mlflow)
    experiment = tracking.experiment_id(settings.mlflow, spec.kind)
    name = tracking.registered_name(settings.mlflow, spec.kind)
    results: dict = {}

    def holdout_comparison(model, model_spec) -> tuple[float, float]:
        # No standard error: the Qini's own bootstrap interval is the evidence logged beside it.
        return ev.qini_coefficient(*_uplift_arrays(apply_model(model, model_spec, parts.holdout, ("label", "t")))), 0.0

    for learner in cfg.uplift_learners:
        candidate = replace(spec, learner=learner)
        with mlflow.start_run(experiment_id=experiment, run_name=f"persuasion-{learner}") as run:
            run_params = _run_params(settings, candidate, feature_version, empty,
                                     {**params, "treated_share": round(treated_share, 4)})
            mlflow.log_params(run_params)
            mlflow.set_tags({"votelake.model": spec.kind, "votelake.code_version": run_params["code_version"]})
            started = dt.datetime.now()
            y, t, s = _uplift_arrays(cross_fitted_uplift(settings, candidate, rows))
            train = parts.fit.unionByName(parts.calibration)
            model = prop.fit_uplift(candidate, cfg, prop.model_frame(train, candidate, extra=("label", "w")))
            seconds = (dt.datetime.now() - started).total_seconds()
            low, high = ev.qini_interval(y, t, s, cfg.bootstrap, cfg.seed)
            held_out = apply_model(model, candidate, parts.holdout, ("label", "t")).cache()
            metrics = {
                "qini": ev.qini_coefficient(y, t, s), "qini_low": low, "qini_high": high,
                "test_qini": ev.qini_coefficient(*_uplift_arrays(held_out)), "experiment_rows": float(len(y)),
                "observed_ate": float(y[t == 1].mean() - y[t == 0].mean()), "mean_predicted_uplift": float(s.mean()),
                "train_seconds": seconds,
            }
            mlflow.log_metrics(metrics)
            example = prop.model_frame(parts.holdout, candidate)
            version = _log_model(model, candidate, example, held_out.select("p"), name)
            held_out.unpersist()
            _log_report(_uplift_report(f"persuasion — {learner} — {name} v{version}", metrics, run_params,
                                       (y, t, s), model, candidate, example))
            verdict = gate(settings, spec.kind, version, metrics["test_qini"], holdout_comparison)
            mlflow.set_tags({"votelake.gate": verdict["reason"], "votelake.promoted": str(verdict["promoted"])})
        results[learner] = {"run_id": run.info.run_id, "model": f"{name}/{version}", **verdict,
                            **{k: round(v, 5) for k, v in metrics.items()}}
    labelled.unpersist()
    results["champion"] = f"{name}/{tracking.champion_version(client, name).version}"
    return results


def _uplift_report(title: str, metrics: dict, params: dict, oof: tuple, model, spec: prop.ModelSpec,
                   example: DataFrame) -> ReportData:
    """The persuasion report: out-of-fold Qini curve against random targeting, uplift by decile, weights."""
    y, t, s = oof
    curve = ev.qini_curve(y, t, s)
    # Random targeting gains in proportion to the share targeted.
    random = curve.assign(gain=curve["fraction"] * curve["gain"].iloc[-1])
    curves = pd.concat([curve.assign(curve="model"), random.assign(curve="random")], ignore_index=True)
    deciles = ev.uplift_by_decile(y, t, s).rename(columns={"observed": "rate", "predicted": "lift"})
    weights_col, names = prop.uplift_weights_input(spec)
    first = ("Two stages: support in both arms on every input, then the residualised transformed outcome "
             "regressed on the predicted support p and p²; the weights are the second stage's."
             if spec.learner == "two_stage" else
             "The residualised transformed outcome regressed on every input with an L1 penalty.")
    return ReportData(
        title=title, metrics=metrics, params={k: str(v) for k, v in params.items()},
        roc=pd.DataFrame(columns=["curve", "fpr", "tpr"]),
        reliability=pd.DataFrame(columns=["curve", "bin", "mean_p", "mean_y", "n"]),
        deciles=deciles.assign(positives=np.nan, cum_capture=np.nan),
        importance=ev.feature_weights(model.stages[-1:], model.transform(example.limit(1)), weights_col, names),
        fairness=pd.DataFrame(columns=["attribute", "group", "n", "mean_score", "mean_label", "ece"]),
        qini=curves,
        notes=(first,
               "Qini and uplift by decile are out-of-fold (cross-fitted) over every experiment member with "
               "an outcome; the interval is a bootstrap percentile interval.",
               "In the decile table, 'lift' is the mean predicted uplift and 'rate' the observed "
               "treated-minus-control support rate."),
    )


def train_turnout(settings: Settings, features: DataFrame, history: DataFrame, dates: list[dt.date],
                  feature_version: int) -> dict:
    """Turnout learnt from several past generals at their own levels, each measured as far ahead as the target.

    Args:
        settings: the run configuration (``model.turnout_generals_per_level``, ``model.target_election``).
        features: ``gold.voter_features`` (the build writes the training generals' dates less the
            target's horizon).
        history: ``silver.vote_history``.
        dates: the feature table's as-of dates, oldest first (the newest is the scoring date).
        feature_version: Delta version of ``gold.voter_features`` read.

    Returns:
        :func:`train_classifier`'s results, or ``skipped`` without a general
        election in the history (or without features as of any).
    """
    horizon = turnout_horizon(settings, dates[-1])
    generals = turnout_generals(dates, history, settings.model.turnout_generals_per_level, horizon)
    if not generals:
        log.warning("no general election with features as of its date; turnout model skipped")
        return {"skipped": "no general election in the vote history with features as of its date"}
    elections = ", ".join(f"{g.date} ({feat.general_level(g.date)})" for g in generals)
    return train_classifier(
        settings, prop.TURNOUT, turnout_training_set(features, history, generals, horizon), feature_version,
        {"label": "voted in the general", "elections": elections, "horizon_days": horizon,
         "as_of_date": str(feat.at_horizon(generals[-1].date, horizon)),
         "baseline": "share of earlier generals voted while registered"})


def train_support(settings: Settings, features: DataFrame, contacts: DataFrame, score_date: dt.date,
                  feature_version: int) -> dict:
    """Support from survey IDs, or partisanship from party registration when IDs are too few.

    Args:
        settings: the run configuration (``model.min_labels``, ``model.support_proxy``).
        features: ``gold.voter_features``.
        contacts: ``silver.contacts``.
        score_date: the scoring as-of date.
        feature_version: Delta version of ``gold.voter_features`` read.

    Returns:
        :func:`train_classifier`'s results, or ``skipped`` with too few IDs and no proxy.
    """
    cfg = settings.model
    survey = support_training_set(features, contacts, score_date).cache()
    survey_labels = survey.count()  # materializes the cache; decides between IDs and the proxy
    try:
        if survey_labels >= cfg.min_labels:
            return train_classifier(
                settings, prop.SUPPORT, survey, feature_version,
                {"label": "support ID 1-2 vs 4-5", "as_of_date": str(score_date),
                 "baseline": "party registration (DEM 1, REP 0, other 0.5)"})
        if cfg.support_proxy == "party":
            log.info("%d survey IDs (< %d); support learnt from party registration (%s vs the other main party)",
                     survey_labels, cfg.min_labels, cfg.our_party)
            return train_classifier(
                settings, prop.PARTISANSHIP, party_training_set(features, score_date, cfg.our_party), feature_version,
                {"label": f"registered {cfg.our_party} vs the other main party (partisanship proxy)",
                 "as_of_date": str(score_date), "survey_labels": survey_labels})
        return {"skipped": f"{survey_labels} survey IDs (< {cfg.min_labels}) and no proxy"}
    finally:
        survey.unpersist()


def train_experiments(settings: Settings, features: DataFrame, assignments: DataFrame | None, contacts: DataFrame,
                      feature_version: int) -> dict:
    """Persuasion from the randomised experiments, when there are any with enough outcomes.

    Args:
        settings: the run configuration.
        features: ``gold.voter_features``.
        assignments: ``silver.experiment_assignments``; None when the table does not exist.
        contacts: ``silver.contacts``.
        feature_version: Delta version of ``gold.voter_features`` read.

    Returns:
        :func:`train_persuasion`'s results, or ``skipped`` without assignments or with too few outcomes.
    """
    cfg = settings.model
    if assignments is None:
        return {"skipped": "no experiment assignments"}
    experiment = per_slot(persuasion_training_set(features, assignments, contacts,
                                                  cfg.persuasion_outcome_program)).cache()
    try:
        outcomes = experiment.count()  # materializes the cache; too few outcomes skip the model
        if outcomes < cfg.min_labels:
            return {"skipped": f"{outcomes} experiment outcomes (< {cfg.min_labels})"}
        return train_persuasion(settings, experiment, feature_version,
                                {"label": "support ID 1-2 vs 4-5 after assignment",
                                 "outcome_program": cfg.persuasion_outcome_program or "any"})
    finally:
        experiment.unpersist()
