"""Model training parts on simulated data with known truth: calibration, Qini,
uplift, and the champion gate against a real MLflow store."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import mlflow
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from conftest import synthetic_state_settings
from votelake.models import backtest
from votelake.models import evaluation as ev
from votelake.models import lifecycle
from votelake.models import propensity as prop
from votelake.models import predict, scoring, tracking
from votelake.session import task_slots
from votelake.transforms import training_sets

ROWS = 6000
# Simulated voters: a signal, a weaker signal, a pure-noise column and a group
# that shifts the log-odds. Outcomes are Bernoulli draws from the true probability.
GOOD = prop.ModelSpec("turnout", ("x1", "x2"), ("grp",))
WORSE = prop.ModelSpec("turnout", ("noise",), ())


def _u(stream: int) -> F.Column:
    """A uniform draw per row, reproducible (hash of the row id and a stream number)."""
    return F.pmod(F.xxhash64(F.col("id"), F.lit(stream)), F.lit(1_000_003)) / F.lit(1_000_003.0)


def _normal(stream: int) -> F.Column:
    # Sum of uniforms: close enough to normal for a simulated covariate.
    return (_u(stream) + _u(stream + 100) + _u(stream + 200) - 1.5) * 2


def simulated_voters(spark, rows: int = ROWS) -> DataFrame:
    """Voters with a known probability ``p_true`` and a realised ``label``."""
    base = spark.range(rows).select(
        "id", _normal(1).alias("x1"), _normal(2).alias("x2"), _normal(3).alias("noise"),
        F.when(_u(4) < 0.5, "a").otherwise("b").alias("grp"), (F.lit(18) + F.floor(_u(5) * 70)).alias("age"),
    )
    logit = F.lit(-0.3) + 1.6 * F.col("x1") + 0.8 * F.col("x2") + F.when(F.col("grp") == "a", 0.5).otherwise(-0.5)
    p_true = 1 / (1 + F.exp(-logit))
    return base.select(
        F.col("id").cast("string").alias("person_id"), "x1", "x2", "noise", "grp", "age",
        F.lit("U").alias("gender"), F.lit("U").alias("race"),
        p_true.alias("p_true"), (_u(6) < p_true).cast("double").alias("label"),
    )


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    # One learner and no search keep the test quick; the search itself is covered below.
    return synthetic_state_settings(tmp_path_factory.mktemp("models"), 100, "model.learners=[lr]",
                                    "model.tuning=none", "model.bootstrap=200")


def test_class_weights_balance_rare_labels(spark):
    frame = spark.createDataFrame([(1.0,)] * 10 + [(0.0,)] * 90, "label double")
    w0, w1 = prop.class_weights(frame, "auto")
    assert w0 * 90 == pytest.approx(w1 * 10) == pytest.approx(50.0)
    assert prop.class_weights(frame, "none") == (1.0, 1.0)
    even = spark.createDataFrame([(1.0,)] * 45 + [(0.0,)] * 55, "label double")
    assert prop.class_weights(even, "auto") == (1.0, 1.0)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_fixes_weighted_probabilities(spark, settings, method):
    """Class weights inflate the rare class's probability; calibration on held-aside rows undoes it."""
    # Keep about one positive in six: a rare class (noise is independent of the label).
    voters = simulated_voters(spark, 8000).where((F.col("label") == 0) | (F.col("noise") > 0.6))
    parts = lifecycle.split(voters, settings)
    rows = prop.model_frame(parts.fit, GOOD, extra=("label",))
    weighted = prop.with_weights(rows, prop.class_weights(rows, "balanced"))
    model, _ = prop.fit_tuned(GOOD, settings.model, weighted)
    calibrated = prop.calibrate(model, prop.model_frame(parts.calibration, GOOD, extra=("label",)), method)
    scored = calibrated.transform(prop.model_frame(parts.holdout, GOOD, extra=("person_id", "label")))
    scored = scored.select("label", prop.positive_probability(scored).alias("p"),
                           prop.positive_probability(scored, raw=True).alias("p_raw"))
    raw, cal = prop.evaluate(scored, "p_raw"), prop.evaluate(scored, "p")
    assert raw["ece"] > 0.05  # the weighted model over-predicts the rarer class
    assert cal["ece"] < 0.04 and cal["ece"] < raw["ece"] / 2
    assert cal["auc"] == pytest.approx(raw["auc"], abs=0.01)  # monotone: the order barely changes


def test_auto_calibration_is_platt_on_small_sets(settings):
    cfg = settings.model.model_copy(update={"probability_calibration": "auto", "isotonic_min_rows": 10_000})
    assert prop.calibration_method(cfg, 4_000) == "platt"
    assert prop.calibration_method(cfg, 130_000) == "isotonic"
    assert prop.calibration_method(cfg.model_copy(update={"probability_calibration": "isotonic"}), 10) == "isotonic"


def test_model_search_picks_the_best_regularisation(spark, settings):
    rows = prop.with_weights(prop.model_frame(simulated_voters(spark), GOOD, extra=("label",)), (1.0, 1.0))
    tuned = settings.model.model_copy(update={"tuning": "tvs", "reg_params": (0.0, 5.0)})
    _, chosen = prop.fit_tuned(GOOD, tuned, rows)
    assert chosen["regParam"] == 0.0  # heavy shrinkage of a strong signal loses on validation
    assert chosen["validation_auc"] > 0.8


@pytest.mark.parametrize("tuning", ["tvs", "cv"])
def test_a_search_fitting_its_candidates_side_by_side_chooses_what_one_at_a_time_does(spark, settings, tuning):
    rows = prop.with_weights(prop.model_frame(simulated_voters(spark), GOOD, extra=("label",)), (1.0, 1.0)).cache()
    tuned = settings.model.model_copy(update={"tuning": tuning, "reg_params": (0.0, 0.5, 5.0), "folds": 2})
    one, one_chosen = prop.fit_tuned(GOOD, tuned.model_copy(update={"parallel_fits": 1}), rows)
    side, side_chosen = prop.fit_tuned(GOOD, tuned.model_copy(update={"parallel_fits": 3}), rows)
    assert side_chosen["regParam"] == one_chosen["regParam"] == 0.0
    # Equal to rounding: Spark adds the partial sums of a pass in whatever order its tasks finish, and the
    # evaluator's AUC bins the scores, so a score moved by rounding across a bin edge moves it by ~1e-5.
    assert side_chosen["validation_auc"] == pytest.approx(one_chosen["validation_auc"], abs=1e-4)
    assert side.stages[-1].coefficients.toArray() == pytest.approx(one.stages[-1].coefficients.toArray(),
                                                                   rel=1e-4, abs=1e-6)
    rows.unpersist()


def test_xgboost_learns_through_missing_values_and_names_its_inputs(spark, settings):
    """The xgb learner trains on rows with nulls (no imputation), calibrates, and reports gains by input name."""
    spec = replace(GOOD, learner="xgb")
    # A third of x2 missing: XGBoost sends the nulls down a learnt branch.
    voters = simulated_voters(spark)
    hidden = F.pmod(F.xxhash64("person_id", F.lit(7)), F.lit(3)) == 0
    voters = voters.select(*[F.when(hidden, None).otherwise(F.col(c)).alias(c) if c == "x2" else c
                             for c in voters.columns])
    parts = lifecycle.split(voters, settings)
    cfg = settings.model.model_copy(update={"xgb_n_estimators": 50, "xgb_max_depths": (3,)})
    # Cached in the task slots, as training prepares them: the barrier stage must accept that chain.
    rows = prop.with_weights(prop.model_frame(parts.fit, spec, extra=("label",)), (1.0, 1.0))
    rows = lifecycle.per_slot(rows).cache()
    model, _ = prop.fit_tuned(spec, cfg, rows)
    calibrated = prop.calibrate(model, prop.model_frame(parts.calibration, spec, extra=("label",)), "platt")
    scored = calibrated.transform(prop.model_frame(parts.holdout, spec, extra=("person_id", "label", "p_true")))
    metrics = prop.evaluate(scored.select("label", prop.positive_probability(scored).alias("p")), "p")
    truth = prop.evaluate(scored.select("label", F.col("p_true").alias("p")), "p")
    assert metrics["auc"] > truth["auc"] - 0.03 and metrics["ece"] < 0.05
    weights = ev.feature_weights(calibrated.stages, scored)
    assert list(weights["feature"][:2]) == ["x1", "x2"]  # the stronger signal first, by name
    assert set(weights["feature"]) <= {"x1", "x2", "grp=a", "grp=b", "grp=__unknown"}, list(weights["feature"])


def test_feature_names_read_as_their_columns_and_categories():
    assert [ev.readable_feature(n) for n in ("age__imp", "county_id__ohe_28", "party__ohe_UNA", "general_rate")] \
        == ["age", "county_id=28", "party=UNA", "general_rate"]


def test_a_search_on_a_sample_refits_its_choice_on_every_row(spark, settings):
    rows = prop.with_weights(prop.model_frame(simulated_voters(spark), GOOD, extra=("label",)), (1.0, 1.0)).cache()
    tuned = settings.model.model_copy(update={"tuning": "tvs", "reg_params": (0.0, 5.0), "tuning_max_rows": 2000})
    model, chosen = prop.fit_tuned(GOOD, tuned, rows)
    assert chosen["regParam"] == 0.0 and chosen["search_sample"] == pytest.approx(2000 / ROWS, abs=1e-4)
    # The model returned is the chosen parameters fitted on all the rows, not on the sample.
    everything, _ = prop.fit_tuned(GOOD, tuned.model_copy(update={"tuning": "none"}), rows)
    assert model.stages[-1].coefficients.toArray() == pytest.approx(everything.stages[-1].coefficients.toArray())


def test_evaluation_tables(spark):
    scored = spark.createDataFrame(
        [(str(i), float(i % 2), (i % 10) / 10 + 0.05, 20 + i % 60, "F" if i % 3 else "M") for i in range(200)],
        "person_id string, label double, p double, age int, gender string")
    curve = ev.reliability(scored, "p")
    assert list(curve["bin"]) == list(range(10)) and curve["n"].sum() == 200
    assert ev.expected_calibration_error(curve) == pytest.approx(
        (curve["n"] * (curve["mean_p"] - curve["mean_y"]).abs()).sum() / 200)
    deciles = ev.decile_table(scored, "p")
    assert list(deciles["decile"]) == list(range(1, 11)) and deciles["n"].sum() == 200
    assert deciles["cum_capture"].iloc[-1] == pytest.approx(1.0)
    roc = ev.roc_points(scored, "p")
    assert roc.iloc[0].tolist() == [0.0, 0.0] and roc.iloc[-1].tolist() == [1.0, 1.0]
    fairness = ev.fairness_table(scored, "p", ("age_band", "gender", "race"))
    assert set(fairness["attribute"]) == {"age_band", "gender"}  # race is absent: skipped
    assert fairness.groupby("attribute")["n"].sum().tolist() == [200, 200]


def test_qini_rewards_targeting_the_persuadable():
    rng = np.random.default_rng(3)
    n = 20_000
    uplift = rng.uniform(0.0, 0.3, n)
    t = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.3 + t * uplift).astype(int)
    best = ev.qini_coefficient(y, t, uplift)
    assert best > 0.005
    assert ev.qini_coefficient(y, t, -uplift) < -0.005  # targeting the least persuadable first
    assert abs(ev.qini_coefficient(y, t, rng.random(n))) < best / 3
    low, high = ev.qini_interval(y, t, uplift, 200, seed=1)
    assert 0 < low < best < high
    deciles = ev.uplift_by_decile(y, t, uplift)
    assert deciles["observed"].iloc[0] > deciles["observed"].iloc[-1]


def _support(slope: float = 1.5) -> F.Column:
    """The simulated voters' support before contact rises with x1."""
    return 1 / (1 + F.exp(-slope * F.col("x1")))


def _experiment(spark, uplift: F.Column, n: int = 30_000, base: F.Column | None = None,
                treated: F.Column | None = None) -> DataFrame:
    """A randomised experiment: covariates, arm, true uplift and the outcome drawn from it.

    ``base`` is support before contact (default 0.7 × :func:`_support`);
    ``treated`` is each row's chance of the treatment arm (default one half).
    """
    rows = spark.range(n).select(
        "id", F.when(_u(11) < 0.5, "a").otherwise("b").alias("grp"), _normal(12).alias("x1"))
    rows = rows.select("*", (_u(13) < (F.lit(0.5) if treated is None else treated)).cast("double").alias("t"))
    p = _support() * 0.7 if base is None else base
    return rows.select(F.col("id").cast("string").alias("person_id"), "grp", "x1", "t",
                       uplift.alias("true_uplift"), (_u(14) < p + F.col("t") * uplift).cast("double").alias("label"))


def _support_uncertainty(slope: float = 1.5) -> F.Column:
    return 4 * _support(slope) * (1 - _support(slope))


def _out_of_fold(settings, spec: prop.ModelSpec, rows: DataFrame) -> dict[str, float]:
    """Cross-fitted uplift of ``rows``: the model's Qini and interval, the oracle's, the correlation."""
    treated_share = rows.agg(F.avg("t")).first()[0]
    oof = lifecycle.cross_fitted_uplift(settings, spec, training_sets.arm_weight(rows, treated_share))
    joined = oof.join(rows.select("person_id", "true_uplift"), "person_id", "inner").toPandas()
    assert len(joined) == rows.count()  # every experiment member is scored out of fold, once
    y, t, p = joined["label"].to_numpy(), joined["t"].to_numpy(), joined["p"].to_numpy()
    low, _ = ev.qini_interval(y, t, p, 200, seed=2)
    return {"qini": ev.qini_coefficient(y, t, p), "low": low,
            "oracle": ev.qini_coefficient(y, t, joined["true_uplift"].to_numpy()),
            "r": float(np.corrcoef(p, joined["true_uplift"])[0, 1])}


def test_cross_fitting_its_folds_side_by_side_scores_as_one_fold_at_a_time(spark, settings):
    spec = prop.ModelSpec("persuasion", ("x1",), ("grp",), "two_stage")
    rows = _experiment(spark, 0.25 * _support_uncertainty(), n=3000)
    weighted = training_sets.arm_weight(rows, rows.agg(F.avg("t")).first()[0]).cache()

    def scores(at_once: int):
        cfg = settings.model.model_copy(update={"parallel_fits": at_once, "uplift_folds": 4})
        return lifecycle.cross_fitted_uplift(settings.model_copy(update={"model": cfg}), spec, weighted)

    assertDataFrameEqual(scores(4), scores(1), atol=1e-6)  # to rounding
    weighted.unpersist()


@pytest.mark.parametrize("learner, uplift", [
    # Contact moves group "a" by 20 points and "b" by 2, whatever their support.
    ("lasso", lambda: F.when(F.col("grp") == "a", 0.20).otherwise(0.02)),
    # Contact moves undecided voters most: 4p(1-p) peaks at 50/50 support.
    ("two_stage", lambda: 0.25 * _support_uncertainty()),
])
def test_uplift_model_finds_who_contact_persuades(spark, settings, learner, uplift):
    spec = prop.ModelSpec("persuasion", ("x1",), ("grp",), learner)
    found = _out_of_fold(settings, spec, _experiment(spark, uplift()))
    assert found["low"] > 0
    assert found["qini"] > 0.8 * found["oracle"]
    assert found["r"] > 0.5


def test_uplift_is_not_fooled_by_arm_imbalance_among_decided_voters(spark, settings):
    """Decided supporters (support near 1) drawn a little more often into treatment
    must not read as persuadable: the residualised transformed outcome removes
    their support level before weighting by arm, where y·w alone would credit
    them with uplift of about 0.8 × the imbalance."""
    decided = F.col("x1") > 0.5  # a third of the voters, support above 0.8
    rows = _experiment(spark, 0.2 * _support_uncertainty(3.0), base=_support(3.0),
                       treated=F.when(decided, 0.56).otherwise(0.5))
    found = _out_of_fold(settings, prop.ModelSpec("persuasion", ("x1",), ("grp",), "two_stage"), rows)
    # Regressing y·w instead gave a Qini near zero and r of 0.2 on this experiment.
    assert found["low"] > 0
    assert found["qini"] > 0.8 * found["oracle"]
    assert found["r"] > 0.8


def _rank_auc(label: np.ndarray, score: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    positives = label.sum()
    return (ranks[label == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(label) - positives))


def test_turnout_calibration_gives_each_election_level_its_own_slope(spark, settings):
    """Midterm scores that spread less than presidential ones: a calibration slope per level fits both."""
    level = F.when(_u(4) < 0.5, "midterm").otherwise("presidential")
    base = spark.range(16000).select("id", _normal(1).alias("x1"), _normal(2).alias("x2"), level.alias(prop.LEVEL))
    z = 1.6 * F.col("x1") + 0.8 * F.col("x2")
    logit = F.when(F.col(prop.LEVEL) == "midterm", -0.8 + 0.5 * z).otherwise(0.4 + 1.2 * z)
    p_true = 1 / (1 + F.exp(-logit))
    voters = base.select(F.col("id").cast("string").alias("person_id"), "x1", "x2", prop.LEVEL,
                         p_true.alias("p_true"), (_u(6) < p_true).cast("double").alias("label"))
    spec = prop.ModelSpec("turnout", ("x1", "x2"), (prop.LEVEL,))
    parts = lifecycle.split(voters, settings)
    model, _ = prop.fit_tuned(spec, settings.model, prop.with_weights(
        prop.model_frame(parts.fit, spec, extra=("label",)), (1.0, 1.0)))
    calibration = prop.model_frame(parts.calibration, spec, extra=("label",))
    holdout = prop.model_frame(parts.holdout, spec, extra=("label", "p_true"))

    def ece_by_level(fitted) -> dict:
        out = fitted.transform(holdout)
        scored = out.select(prop.LEVEL, F.col("p_true").alias("label"), prop.positive_probability(out).alias("p"))
        return {lv: ev.expected_calibration_error(ev.reliability(scored.where(F.col(prop.LEVEL) == lv), "p"))
                for lv in ("midterm", "presidential")}

    shared = ece_by_level(prop.calibrate(model, calibration, "isotonic"))
    per_level = ece_by_level(prop.calibrate(model, calibration, "isotonic", offsets=prop.LEVEL))
    # One slope spreads the midterm too far and the presidential year too little
    # (measured: 0.062 and 0.044 against the true probabilities; per level 0.024 and 0.023).
    assert shared["midterm"] > 0.04, shared
    for lv, error in per_level.items():
        assert error < 0.03 and error < shared[lv] / 1.5, (shared, per_level)


@pytest.mark.parametrize("metric", ["auc", "log_loss"])
def test_paired_standard_error_agrees_with_the_bootstrap(metric):
    """The gate's closed-form standard error of a difference between two models on the same rows."""
    rng = np.random.default_rng(3)
    n = 4000
    z = rng.normal(size=n)
    label = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    a = 1 / (1 + np.exp(-(z + rng.normal(scale=0.5, size=n))))
    b = 1 / (1 + np.exp(-(z + rng.normal(scale=0.8, size=n))))

    def value(y, p):
        if metric == "auc":
            return _rank_auc(y, p)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    draws = [value(label[i], a[i]) - value(label[i], b[i]) for i in (rng.integers(0, n, n) for _ in range(400))]
    se = ev.paired_difference_se(metric, label, a, b)
    assert se == pytest.approx(np.std(draws), rel=0.15)
    assert ev.paired_difference_se(metric, label, a, a) == 0


def test_gate_promotes_only_a_gain_beyond_the_noise_of_the_held_out_rows(spark, tmp_path):
    """A challenger replaces the champion only when its gain exceeds ``model.gate_min_se`` standard errors."""
    voters = simulated_voters(spark)
    strict = synthetic_state_settings(tmp_path, 100, "model.learners=[lr]", "model.tuning=none",
                                      "model.gate_min_se=1000")
    champion = lifecycle.train_classifier(strict, WORSE, voters, 0, {"label": "simulated"})["lr"]
    better = lifecycle.train_classifier(strict, GOOD, voters, 0, {"label": "simulated"})["lr"]
    assert better["test_auc"] > champion["test_auc"] + 0.2
    assert not better["promoted"], better["reason"]
    assert 0 < better["standard_error"] < 0.05
    assert "1000 × its standard error" in better["reason"]
    usual = strict.model_copy(update={"model": strict.model.model_copy(update={"gate_min_se": 1.0})})
    assert lifecycle.train_classifier(usual, GOOD, voters, 0, {"label": "simulated"})["lr"]["promoted"]


def test_a_gain_of_rounding_alone_promotes_nothing(tmp_path):
    """The same model retrained scores the held-out rows the same; its metric may differ in the last bits."""
    settings = synthetic_state_settings(tmp_path, 100)
    champion = 0.7711312889528577
    assert lifecycle.beats(settings, "turnout", champion + 6e-16, champion, 0.0) == (False, "gain +0.0000")
    assert lifecycle.beats(settings, "persuasion", 0.0071, 0.0069, 0.0)[0]
    assert lifecycle.beats(settings, "turnout", champion + 0.02, champion, 0.005)[0]
    assert not lifecycle.beats(settings, "turnout", champion + 0.004, champion, 0.005)[0]


def test_the_backtest_champion_is_the_gates_choice_on_the_held_out_rows(spark, tmp_path):
    """Candidates meet the gate in order: a later one replaces the first only by a gain beyond the noise."""
    voters = simulated_voters(spark)
    settings = synthetic_state_settings(tmp_path, 100, "model.tuning=none")
    parts = lifecycle.split(voters, settings)
    fitted = []
    for name, spec in (("worse", WORSE), ("good", GOOD)):
        prepared = lifecycle.prepare(settings, replace(spec, learner="lr"), parts.fit, parts.calibration)
        fitted.append((name, lifecycle.fit_calibrated(settings, prepared.spec, prepared)[0], prepared.spec))
    assert lifecycle.gate_choice(settings, "turnout", parts.holdout, fitted) == "good"
    assert lifecycle.gate_choice(settings, "turnout", parts.holdout, fitted[::-1]) == "good"
    strict = settings.model_copy(update={"model": settings.model.model_copy(update={"gate_min_se": 1000.0})})
    assert lifecycle.gate_choice(strict, "turnout", parts.holdout, fitted) == "worse"


def test_backtest_separates_the_turnout_level_from_the_shape(spark):
    """Scores right in order and shape but at the wrong level: a large error, and a small one at the known turnout."""
    voters = simulated_voters(spark)
    low = voters.select("label", (1 / (1 + F.exp(-(F.log(F.col("p_true") / (1 - F.col("p_true"))) - 1))))
                        .alias("p"))
    assert prop.evaluate(low, "p")["ece"] > 0.1
    assert backtest.ece_at_known_turnout(low) < 0.03


PROBABILITY_SCHEMA = T.StructType([T.StructField("person_id", T.StringType(), False),
                                    T.StructField("turnout_prob", T.DoubleType(), True),
                                    T.StructField("turnout_prob_calibrated", T.DoubleType(), True),
                                    T.StructField("support_prob", T.DoubleType(), True)])


def test_a_declared_expected_turnout_moves_the_published_level_only(spark):
    """The precinct-calibrated turnout (else the model's) is shifted to the declared mean; the rest stays."""
    frame = spark.createDataFrame([("a", 0.2, 0.25, 0.4), ("b", 0.5, 0.45, 0.6), ("c", 0.7, 0.8, 0.1),
                                   ("d", 0.9, 0.85, 0.5)], PROBABILITY_SCHEMA)
    unchanged, none = scoring.at_expected_turnout(frame, None)
    assert unchanged is frame and none is None

    for given in (frame, frame.drop("turnout_prob_calibrated")):
        shifted, level = scoring.at_expected_turnout(given, 0.7)
        assert sorted(shifted.columns) == sorted(frame.columns)
        assert level["expected_turnout"] == 0.7 and level["mean_after"] == pytest.approx(0.7, abs=1e-7)
        assertDataFrameEqual(shifted.select("person_id", "turnout_prob", "support_prob"),
                             frame.select("person_id", "turnout_prob", "support_prob"))
        published = [r[0] for r in shifted.orderBy("person_id").select("turnout_prob_calibrated").collect()]
        source = "turnout_prob_calibrated" if "turnout_prob_calibrated" in given.columns else "turnout_prob"
        before = [r[0] for r in given.orderBy("person_id").select(source).collect()]
        assert sum(published) / 4 == pytest.approx(0.7, abs=1e-7)
        assert np.argsort(published).tolist() == np.argsort(before).tolist()


def test_the_logged_input_example_is_made_up_not_a_voter(spark):
    rows = spark.createDataFrame([(1, 0.5, "a"), (2, 2.0, "b"), (4, 0.5, "b")],
                                 "age int, general_rate double, party string")
    example = lifecycle.made_up_example(rows)
    assert example.to_dict("records") == [{"age": 2, "general_rate": 1.0, "party": "b"}]
    assert str(example.dtypes["age"]) == "int32" and (2, 1.0, "b") not in [tuple(r) for r in rows.collect()]


def test_champion_gate_keeps_the_better_model(spark, settings):
    """A deliberately worse model is logged and registered but does not become champion."""
    voters = simulated_voters(spark)
    client = MlflowClient(settings.mlflow.tracking_uri, registry_uri=settings.mlflow.tracking_uri)
    name = "votelake-turnout"
    good = lifecycle.train_classifier(settings, GOOD, voters, 0, {"label": "simulated"})["lr"]
    assert good["promoted"] and good["reason"] == "no champion yet"
    assert str(client.get_model_version_by_alias(name, "champion").version) == good["model"].split("/")[1]

    worse = lifecycle.train_classifier(settings, WORSE, voters, 0, {"label": "simulated"})["lr"]
    assert not worse["promoted"]
    assert worse["test_auc"] < good["test_auc"] - 0.2
    # Compared on the same held-out voters: the champion's figure is its own held-out AUC.
    assert worse["champion_metric"] == pytest.approx(good["test_auc"], abs=1e-4)
    versions = {str(v.version) for v in client.search_model_versions(f"name='{name}'")}
    assert worse["model"].split("/")[1] in versions  # logged and registered all the same
    assert str(client.get_model_version_by_alias(name, "champion").version) == good["model"].split("/")[1]
    run = client.get_run(worse["run_id"])
    assert run.data.tags["votelake.promoted"] == "False"
    assert run.data.params["protected_excluded"] == "race,ethnicity,gender"
    artifacts = {a.path for a in client.list_artifacts(worse["run_id"], "report")}
    # The run page lists the ROC, calibration and lift figures, and their numbers as MLflow tables.
    assert {"report/report.html", "report/roc.png", "report/calibration.png", "report/lift.png",
            "report/deciles.json", "report/reliability.json"} <= artifacts
    deciles = pd.read_json(mlflow.artifacts.download_artifacts(  # mlflow.log_table's format
        run_id=worse["run_id"], artifact_path="report/deciles.json", tracking_uri=settings.mlflow.tracking_uri),
        orient="split")
    assert list(deciles["decile"]) == list(range(1, 11)) and deciles["n"].sum() > 0

    # One documented way to predict: rows typed as a table stores them (a float, not the double the
    # model was fitted on) in, the champion's probabilities out; or a version's, when one is named.
    stored = voters.select("person_id", F.col("x1").cast("float").alias("x1"), "x2", "noise", "grp")
    champion = prop.model_frame(stored, GOOD, extra=("person_id",))
    expected = scoring.apply_model(tracking.load_version(name, good["model"].split("/")[1]), GOOD, champion)
    assertDataFrameEqual(predict(stored, "turnout", settings=settings, keep=("person_id",)), expected)
    by_version = predict(stored, "turnout", settings=settings, version=worse["model"].split("/")[1],
                         keep=("person_id",))
    assert by_version.columns == ["person_id", "p", "p_raw"] and by_version.count() == ROWS
    assert by_version.agg(F.stddev("p")).first()[0] < expected.agg(F.stddev("p")).first()[0]
    with pytest.raises(ValueError, match="kind must be one of turnout, support, persuasion"):
        predict(stored, "turnuot", settings=settings)


def test_scoring_names_a_turnout_champion_trained_for_another_horizon(spark, tmp_path, caplog):
    settings = synthetic_state_settings(tmp_path, 100, "model.learners=[lr]", "model.tuning=none",
                                        "model.bootstrap=50")
    lifecycle.train_classifier(settings, GOOD, simulated_voters(spark), 0, {"horizon_days": 63})
    # 2026-09-01 is 63 days before the next general (2026-11-03): no word.
    with caplog.at_level(logging.WARNING, logger="votelake.models.scoring"):
        models, _, _ = scoring.load_champions(settings, dt.date(2026, 9, 1))
        assert "turnout" in models and "learnt from examples" not in caplog.text
        scoring.load_champions(settings, dt.date(2026, 6, 1))
    assert "learnt from examples 63 days ahead of their election; the target is 155 days ahead" in caplog.text


def test_gate_replaces_a_champion_that_uses_excluded_attributes(spark, settings):
    """A champion trained with race (opted in) gives way once race is excluded again, even to a worse model."""
    voters = simulated_voters(spark)
    opted_in = settings.model_copy(update={"model": settings.model.model_copy(update={"include_protected": True})})
    with_race = lifecycle.train_classifier(opted_in, replace(GOOD, kind="support", categorical=("grp", "race")),
                                           voters, 0, {"label": "simulated"})["lr"]
    assert with_race["promoted"]
    worse = lifecycle.train_classifier(settings, replace(WORSE, kind="support"), voters, 0,
                                       {"label": "simulated"})["lr"]
    assert worse["test_auc"] < with_race["test_auc"] - 0.2
    assert worse["promoted"] and worse["reason"].endswith("uses excluded attributes: race")
    client = MlflowClient(settings.mlflow.tracking_uri, registry_uri=settings.mlflow.tracking_uri)
    champion = client.get_model_version_by_alias("votelake-support", "champion")
    assert str(champion.version) == worse["model"].split("/")[1]


def test_protected_attributes_stay_out_unless_asked(spark, settings):
    spec = prop.ModelSpec("support", ("age",), ("gender", "race", "party"))
    assert spec.without(settings.model.excluded_inputs).categorical == ("party",)
    opted_in = settings.model.model_copy(update={"include_protected": True})
    assert spec.without(opted_in.excluded_inputs) == spec


def test_persuasion_rows_take_the_outcome_after_assignment(spark):
    features = spark.createDataFrame(
        [("p1", "2026-06-15", 40), ("p2", "2026-06-15", 50), ("p1", "2026-09-01", 40)],
        "person_id string, as_of_date string, age int").select(
        "person_id", F.to_date("as_of_date").alias("as_of_date"), "age")
    assignments = spark.createDataFrame(
        [("p1", "treatment", "2026-06-15 09:00:00"), ("p2", "control", "2026-06-15 09:00:00"),
         (None, "control", "2026-06-15 09:00:00")],
        "person_id string, arm string, assigned_at string").select(
        "person_id", "arm", F.to_timestamp("assigned_at").alias("assigned_at"))
    contacts = spark.createDataFrame(
        [("p1", "2026-06-01 10:00:00", 5, "id"),  # before assignment: not an outcome
         ("p1", "2026-08-20 10:00:00", 2, "followup"),
         ("p2", "2026-08-21 10:00:00", 4, "followup"),
         ("p2", "2026-08-25 10:00:00", 3, "followup")],  # undecided: not a label
        "person_id string, attempted_at string, support_id int, program string").select(
        "person_id", F.to_timestamp("attempted_at").alias("attempted_at"), "support_id", "program")
    rows = training_sets.persuasion_training_set(features, assignments, contacts, "followup")
    expected = spark.createDataFrame(
        [("p1", 40, 1.0, 1.0), ("p2", 50, 0.0, 0.0)], "person_id string, age int, t double, label double")
    assertDataFrameEqual(rows.select("person_id", "age", "t", "label"), expected)


def test_model_rows_are_cached_in_one_partition_per_task_slot(spark):
    """Every MLlib pass is a Spark job over each partition: the rows fitted are merged to the slots, unchanged."""
    rows = spark.createDataFrame([(i, float(i % 3)) for i in range(64)], "person_id long, x double").repartition(8)
    merged = lifecycle.per_slot(rows)
    assert merged.rdd.getNumPartitions() == task_slots(spark)
    assertDataFrameEqual(merged, rows)
