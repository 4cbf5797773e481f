"""Train job: fit the turnout, support and persuasion models; track, report and gate them in MLflow.

Inputs: ``gold.voter_features``, ``silver.vote_history`` (turnout labels),
``silver.contacts`` (support IDs, experiment outcomes),
``silver.experiment_assignments`` (persuasion experiments).
Outputs: in the MLflow experiments ``<prefix>-turnout``, ``<prefix>-support``
and ``<prefix>-persuasion``, one run per candidate learner (parameters, the
feature table's Delta version, the code version, held-out metrics, the model
with signature and input example, and an HTML report with PNG plots); every
candidate is registered, and the ``champion`` alias moves to it only when it
beats the current champion on the same held-out voters.
Launch: ``spark-submit jobs/train.py --conf conf/local.yaml`` or
``votelake run train``.

Turnout: label = voted in the latest general in the history; features are as
of that election's date, so only earlier events are used. Without a general
election in the history the turnout model is skipped, and says so. Support:
label = survey ID 1-2 (support) vs 4-5 (oppose); features as of the scoring
date. With fewer than ``model.min_labels`` survey IDs, the partisanship proxy
(registered with ``model.our_party`` vs the other main party) is trained
instead. Persuasion: residualised transformed-outcome uplift models
(``model.uplift_learners``: two-stage or lasso) on randomised experiments
(treated vs control), outcome = the latest support ID after assignment,
features as of the assignment date.
``model.kinds`` selects the model types to train; the others keep their champions.

Splits (by a hash of person_id, so stable across runs): ``model.test_fraction``
held out for evaluation and the gate; of the rest, ``model.calibration_fraction``
fits the probability calibration (isotonic, or Platt on small sets) and the
remainder fits the classifier, whose hyperparameters a train-validation split
(or cross-validation) chooses.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, replace
from functools import reduce
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pyspark
from mlflow.models import infer_signature
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.models import evaluation as ev
from votelake.models import propensity as prop
from votelake.models import tracking
from votelake.models.report import ReportData, write_report
from votelake.transforms import features as feat

SIGNATURE_ROWS = 5
FAIRNESS_ATTRIBUTES = ("age_band", "gender", "race")
# Columns passed through scoring for the report (fairness groups, tie-breaking key).
REPORT_COLUMNS = ("person_id", "label", "baseline", "age", "gender", "race")
# Salt of the calibration split, so it is independent of the held-out split.
CALIBRATION_SALT = 101


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


def feature_dates(features: DataFrame) -> list[dt.date]:
    """The as-of dates present in the feature table, oldest first."""
    return sorted(r[0] for r in features.select("as_of_date").distinct().collect())


def turnout_training_set(features: DataFrame, history: DataFrame, election: feat.Election) -> DataFrame:
    """Voters eligible for ``election`` with features as of its date, the label and the baseline.

    Args:
        features: ``gold.voter_features``.
        history: ``silver.vote_history``.
        election: the target general election.

    Returns:
        Feature rows with ``label`` 1.0 (voted) or 0.0, and ``baseline``: the
        share of earlier generals voted while registered (0 for new voters).
    """
    at_election = features.where(F.col("as_of_date") == F.lit(election.date))
    adult = F.coalesce(F.col("age") >= 18, F.lit(True))
    labels = feat.turnout_labels(history, election)
    return (at_election.where(adult).join(labels, on="person_id", how="left").fillna(0.0, subset=["label"])
            .select("*", F.coalesce(F.col("general_rate"), F.lit(0.0)).alias("baseline")))


def party_baseline() -> Column:
    """Support baseline from party registration: DEM 1, REP 0, anything else 0.5."""
    return F.when(F.col("party") == "DEM", 1.0).when(F.col("party") == "REP", 0.0).otherwise(0.5)


def support_training_set(features: DataFrame, contacts: DataFrame, as_of: dt.date) -> DataFrame:
    """Voters with a support ID before ``as_of``, with features as of ``as_of`` and the party baseline."""
    current = features.where(F.col("as_of_date") == F.lit(as_of))
    return (current.join(feat.support_labels(contacts, as_of), on="person_id", how="inner")
            .select("*", party_baseline().alias("baseline")))


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


def persuasion_training_set(features: DataFrame, assignments: DataFrame, contacts: DataFrame,
                            outcome_program: str | None) -> DataFrame:
    """Experiment members with a support ID after assignment: arm, outcome, pre-treatment features.

    Args:
        features: ``gold.voter_features`` (must hold the assignment date as an as-of date).
        assignments: ``silver.experiment_assignments``.
        contacts: ``silver.contacts``.
        outcome_program: only IDs from this contact program count (e.g. the
            follow-up survey); any program when None.

    Returns:
        One row per person: features as of the latest as-of date on or before
        the assignment date (members without one are left out), ``t`` (1.0
        treated), ``label`` (1.0 support, 0.0 oppose).
    """
    latest = (assignments.where(F.col("person_id").isNotNull())
              .groupBy("person_id").agg(F.max_by(F.struct("arm", "assigned_at"), "assigned_at").alias("a"))
              .select("person_id", (F.col("a.arm") == "treatment").cast("double").alias("t"),
                      F.col("a.assigned_at").alias("assigned_at")))
    after_assignment = contacts.where(F.col("support_id").isin(1, 2, 4, 5))
    if outcome_program:
        after_assignment = after_assignment.where(F.col("program") == outcome_program)
    outcome = (latest.join(after_assignment.select("person_id", "attempted_at", "support_id"), "person_id", "inner")
               .where(F.col("attempted_at") > F.col("assigned_at"))
               .groupBy("person_id", "t", "assigned_at")
               .agg(F.max_by("support_id", "attempted_at").alias("support_id")))
    labelled = outcome.select("person_id", "t", F.to_date("assigned_at").alias("assigned_on"),
                              (F.col("support_id") <= 2).cast("double").alias("label"))
    # Covariates from the latest as-of date on or before assignment: nothing treatment could move.
    candidates = labelled.join(features, on="person_id", how="inner").where(F.col("as_of_date") <= F.col("assigned_on"))
    latest_date = candidates.groupBy("person_id").agg(F.max("as_of_date").alias("as_of_date"))
    return candidates.join(latest_date, on=["person_id", "as_of_date"], how="inner").drop("assigned_on")


def arm_weight(rows: DataFrame, treated_share: float) -> DataFrame:
    """Add the arm weight ``w = t / e - (1 - t) / (1 - e)``; ``y * w`` is the transformed outcome."""
    e = F.lit(treated_share)
    return rows.select("*", (F.col("t") / e - (1 - F.col("t")) / (1 - e)).alias("w"))


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


def _score(model, spec: prop.ModelSpec, rows: DataFrame, passthrough: tuple[str, ...]) -> DataFrame:
    """Apply a fitted model: ``passthrough`` columns and ``p`` (calibrated probability, or uplift), ``p_raw``."""
    extra = tuple(c for c in passthrough if c in rows.columns and c not in spec.features)
    out = model.transform(prop.model_frame(rows, spec, extra=extra))
    if spec.kind == prop.PERSUASION.kind:
        return out.select(*extra, F.col(prop.UPLIFT).alias("p"))
    # Pass-through columns that are also model inputs come from the model frame.
    inputs = [c for c in passthrough if c in spec.features]
    return out.select(*extra, *inputs, prop.positive_probability(out).alias("p"),
                      prop.positive_probability(out, raw=True).alias("p_raw"))


def _log_model(model, spec: prop.ModelSpec, example: DataFrame, output: DataFrame, name: str) -> str:
    sample = example.limit(SIGNATURE_ROWS).toPandas()
    signature = infer_signature(sample, output.limit(SIGNATURE_ROWS).toPandas())
    # A fitted Spark pipeline needs pyspark alone; naming it spares MLflow's
    # requirement inference, which re-imports the model in a subprocess (~45 s).
    info = mlflow.spark.log_model(model, artifact_path="model", signature=signature, input_example=sample,
                                  registered_model_name=name, pip_requirements=[f"pyspark=={pyspark.__version__}"])
    return str(info.registered_model_version)


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


def gate(settings: Settings, kind: str, version: str, challenger: float, holdout_metric) -> dict:
    """Move the champion alias to ``version`` only if it beats the champion on the same held-out rows.

    Args:
        settings: the run configuration (registry, gate metric).
        kind: the model type.
        version: the challenger's registered version.
        challenger: the challenger's held-out metric.
        holdout_metric: function (model, spec) -> the same metric for another
            model on the same held-out rows.

    Returns:
        ``promoted`` (bool), ``champion_metric`` (None when there was no
        champion, it could not score these rows, or it uses attributes the
        configuration now excludes) and ``reason``.
    """
    client = tracking.configure(settings.mlflow)
    name = tracking.registered_name(settings.mlflow, kind)
    current = tracking.champion_version(client, name)
    lower_is_better = kind != "persuasion" and settings.model.gate_metric == "log_loss"
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
        champion = holdout_metric(tracking.load_version(name, current.version), champion_spec)
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score today's features is replaced
        tracking.promote(client, name, version)
        return {"promoted": True, "champion_metric": None,
                "reason": f"champion v{current.version} cannot score the held-out rows: {type(exc).__name__}"}
    better = challenger < champion if lower_is_better else challenger > champion
    if better:
        tracking.promote(client, name, version)
    verdict = "beats" if better else "does not beat"
    return {"promoted": better, "champion_metric": champion,
            "reason": f"v{version} {verdict} champion v{current.version} on the same held-out rows"}


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
    spec, empty = prop.informative(spec.without(cfg.excluded_inputs), parts.fit)
    fit_rows = prop.model_frame(parts.fit, spec, extra=("person_id", "label"))
    weights = prop.class_weights(fit_rows, cfg.class_weight)
    fit_rows = prop.with_weights(fit_rows, weights).cache()
    calibration = prop.model_frame(parts.calibration, spec, extra=("label",)).cache()
    method = prop.calibration_method(cfg, calibration.count())
    holdout = parts.holdout.cache()
    client = tracking.configure(settings.mlflow)
    experiment = tracking.experiment_id(settings.mlflow, spec.kind)
    name = tracking.registered_name(settings.mlflow, spec.kind)
    results: dict = {}

    def holdout_metric(model, model_spec) -> float:
        return prop.evaluate(_score(model, model_spec, holdout, ("label",)), "p")[cfg.gate_metric]

    for learner in cfg.learners:
        candidate = replace(spec, learner=learner)
        with mlflow.start_run(experiment_id=experiment, run_name=f"{spec.kind}-{learner}") as run:
            run_params = _run_params(settings, candidate, feature_version, empty, params)
            mlflow.log_params({**run_params, "class_weights": f"{weights[0]:.4f},{weights[1]:.4f}",
                               "calibration_method": method})
            mlflow.set_tags({"votelake.model": spec.kind, "votelake.code_version": run_params["code_version"]})
            started = dt.datetime.now()
            tuned, chosen = prop.fit_tuned(candidate, cfg, fit_rows)
            model = prop.calibrate(tuned, calibration, method)
            seconds = (dt.datetime.now() - started).total_seconds()
            scored = _score(model, candidate, holdout, REPORT_COLUMNS).cache()
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
            verdict = gate(settings, spec.kind, version, metrics[f"test_{cfg.gate_metric}"], holdout_metric)
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
    rows = scored.select("label", "t", "p").toPandas()
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
    parts = []
    for k in range(cfg.uplift_folds):
        model = prop.fit_uplift(spec, cfg, prop.model_frame(rows.where(F.col("fold") != k), spec,
                                                            extra=("label", "w")))
        parts.append(_score(model, spec, rows.where(F.col("fold") == k), ("person_id", "label", "t"))
                     .select("person_id", "label", "t", "p"))
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
    treated_share = labelled.agg(F.avg("t")).first()[0]
    rows = arm_weight(labelled, treated_share)
    spec, empty = prop.informative(prop.PERSUASION.without(cfg.excluded_inputs), rows)
    parts = split(rows, settings)
    client = tracking.configure(settings.mlflow)
    experiment = tracking.experiment_id(settings.mlflow, spec.kind)
    name = tracking.registered_name(settings.mlflow, spec.kind)
    results: dict = {}

    def holdout_metric(model, model_spec) -> float:
        return ev.qini_coefficient(*_uplift_arrays(_score(model, model_spec, parts.holdout, ("label", "t"))))

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
            held_out = _score(model, candidate, parts.holdout, ("label", "t")).cache()
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
            verdict = gate(settings, spec.kind, version, metrics["test_qini"], holdout_metric)
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


def run(spark: SparkSession, settings: Settings) -> dict:
    """Train, evaluate, log, register and gate the turnout, support and persuasion models.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Per model type: per candidate learner its run, version, metrics and gate verdict.
    """
    lake = Lakehouse.open(spark, settings, job="train")
    cfg = settings.model
    feature_version = lake.version("gold.voter_features")
    features = lake.read("gold.voter_features")
    history = lake.read("silver.vote_history")
    contacts = lake.read("silver.contacts")
    score_date = feature_dates(features)[-1]
    results: dict = {}

    if "turnout" in cfg.kinds:
        results["turnout"] = _train_turnout(settings, features, history, score_date, feature_version)
    if "support" in cfg.kinds:
        results["support"] = _train_support(settings, features, contacts, score_date, feature_version)
    if "persuasion" in cfg.kinds:
        results["persuasion"] = _train_persuasion(settings, lake, features, contacts, feature_version)
    return results


def _train_turnout(settings: Settings, features: DataFrame, history: DataFrame, score_date: dt.date,
                   feature_version: int) -> dict:
    """Turnout in the latest general before ``score_date``, trained on features as of its date."""
    generals = feat.elections_before(feat.known_elections(history), score_date, "GENERAL")
    if not generals:
        print("[votelake] train: the vote history holds no general election; turnout model skipped", flush=True)
        return {"skipped": "no general election in the vote history"}
    election = generals[-1]
    return train_classifier(
        settings, prop.TURNOUT, turnout_training_set(features, history, election), feature_version,
        {"label": f"voted in the {election.date} general", "as_of_date": str(election.date),
         "baseline": "share of earlier generals voted while registered"})


def _train_support(settings: Settings, features: DataFrame, contacts: DataFrame, score_date: dt.date,
                   feature_version: int) -> dict:
    """Support from survey IDs, or partisanship from party registration when IDs are too few."""
    cfg = settings.model
    survey = support_training_set(features, contacts, score_date).cache()
    survey_labels = survey.count()
    try:
        if survey_labels >= cfg.min_labels:
            return train_classifier(
                settings, prop.SUPPORT, survey, feature_version,
                {"label": "support ID 1-2 vs 4-5", "as_of_date": str(score_date),
                 "baseline": "party registration (DEM 1, REP 0, other 0.5)"})
        if cfg.support_proxy == "party":
            print(f"[votelake] train: {survey_labels} survey IDs (< {cfg.min_labels}); "
                  f"support learnt from party registration ({cfg.our_party} vs the other main party)", flush=True)
            return train_classifier(
                settings, prop.PARTISANSHIP, party_training_set(features, score_date, cfg.our_party), feature_version,
                {"label": f"registered {cfg.our_party} vs the other main party (partisanship proxy)",
                 "as_of_date": str(score_date), "survey_labels": survey_labels})
        return {"skipped": f"{survey_labels} survey IDs (< {cfg.min_labels}) and no proxy"}
    finally:
        survey.unpersist()


def _train_persuasion(settings: Settings, lake: Lakehouse, features: DataFrame, contacts: DataFrame,
                      feature_version: int) -> dict:
    """Persuasion from the randomised experiments, when there are any with enough outcomes."""
    cfg = settings.model
    if lake.version("silver.experiment_assignments") is None:
        return {"skipped": "no experiment assignments"}
    experiment = persuasion_training_set(features, lake.read("silver.experiment_assignments"), contacts,
                                         cfg.persuasion_outcome_program).cache()
    try:
        outcomes = experiment.count()
        if outcomes < cfg.min_labels:
            return {"skipped": f"{outcomes} experiment outcomes (< {cfg.min_labels})"}
        return train_persuasion(settings, experiment, feature_version,
                                {"label": "support ID 1-2 vs 4-5 after assignment",
                                 "outcome_program": cfg.persuasion_outcome_program or "any"})
    finally:
        experiment.unpersist()


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("train", run, __doc__.splitlines()[0], argv)
