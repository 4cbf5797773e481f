"""Propensity models as Spark MLlib Pipelines: the model frame, the pipeline,
the held-out split and the evaluation metrics. No I/O here; training and
tracking live in :mod:`votelake.models.lifecycle` and :mod:`votelake.models.tracking`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import (Imputer, OneHotEncoder, PolynomialExpansion, SQLTransformer, StringIndexer,
                                VectorAssembler, VectorSlicer)
from pyspark.ml.regression import IsotonicRegression, LinearRegression
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.config import ModelSettings
from votelake.models import evaluation
from votelake.session import task_slots
from votelake.transforms.features import GENERAL_LEVELS, TARGET_LEVEL

DEMOGRAPHICS = ("age", "reg_tenure_years", "has_phone")
VOTE_HISTORY = (
    "generals_eligible", "generals_voted", "general_rate",
    "primaries_eligible", "primaries_voted", "primary_rate",
    "municipals_eligible", "municipals_voted", "municipal_rate",
    "voted_last_general", "voted_last_primary", "years_since_last_vote",
    "early_or_mail_share", "dem_ballots", "rep_ballots",
)
DIGITAL = ("digital_events", "digital_clicks")
# Neighbourhood partisanship: party shares of the other half of the voter's precinct.
NEIGHBOURHOOD = ("precinct_dem_share", "precinct_rep_share")
# Geography enters as the county and the precinct's partisanship; the rest of
# precinct-level differences is left to calibration to precinct totals rather
# than one-hot columns by the thousand.
CATEGORICAL = ("county_id", "gender", "race", "ethnicity", "party")
UNKNOWN = "__unknown__"
# Clamp probabilities before log loss so a confident miss costs a finite amount.
EPS = 1e-15
# Output column of the isotonic calibration stage appended to a classifier, and
# the probability vector of the Platt (logistic) alternative.
CALIBRATED = "calibrated_p"
CALIBRATED_VECTOR = "calibrated_probability"
# Input of the logistic calibration stage: the classifier's margin (Platt) or the
# isotonic probability's logit (with per-level intercepts and slopes).
MARGIN = "calibration_margin"
# L2 penalty of the per-level calibration slopes: enough to pick one solution of
# the common slope plus deviations, too small to move the fit.
SLOPE_RIDGE = 1e-4
# Isotonic regression maps the extreme score bins to exactly 0 or 1 when they
# held no counter-example; no voter is that certain, and one such miss would
# cost an unbounded log loss.
CALIBRATED_FLOOR = 0.001
# Output column of the uplift (persuasion) regressor: MLlib's default, which
# MLflow's Spark flavour also serves.
UPLIFT = "prediction"
# Inputs of the two-stage uplift regression: the outcome model's support p and p².
UPLIFT_FEATURES = "uplift_features"
UPLIFT_INPUT_NAMES = ("predicted_support p", "predicted_support squared")


@dataclass(frozen=True)
class ModelSpec:
    """What a propensity model is: its name, features and learner."""

    kind: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    learner: str = "lr"  # "lr" | "gbt" (MLlib) | "xgb" (xgboost.spark)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def without(self, names: tuple[str, ...]) -> "ModelSpec":
        """The spec without the given inputs (protected attributes, empty features)."""
        return replace(self, numeric=tuple(c for c in self.numeric if c not in names),
                       categorical=tuple(c for c in self.categorical if c not in names))


# The turnout model's election level: its calibration gives each level its own intercept and slope.
LEVEL = TARGET_LEVEL
# Participation by the level of past generals, and the voter's record at the
# level of the election predicted (votelake.transforms.features.with_target_election).
LEVEL_HISTORY = (
    "presidential_rate", "midterm_rate", "off_year_rate", "voted_last_presidential", "voted_last_midterm",
    "same_level_rate", "voted_last_same_level",
)
# Turnout: learnt from several past generals, each example saying its level
# (target_level), so one model predicts a midterm or a presidential year at its
# own level. Contacts and digital signals did not exist at the past elections'
# dates, so they are left out.
# Counts of past elections grow with the depth of the file's history, and the
# election ahead always has one more general behind it than the newest example
# learnt from: a count would reach past every value seen in training (at 200k,
# a midterm's ECE 0.021 with counts, 0.015 without). Rates and last-election
# flags keep their range however deep the history goes.
HISTORY_DEPTH = (
    "generals_eligible", "generals_voted", "primaries_eligible", "primaries_voted",
    "municipals_eligible", "municipals_voted", "dem_ballots", "rep_ballots",
)
TURNOUT = ModelSpec(
    "turnout", DEMOGRAPHICS + VOTE_HISTORY + LEVEL_HISTORY, CATEGORICAL + (LEVEL,)).without(HISTORY_DEPTH)
# Support: demographics, primary-ballot history, digital engagement and the
# precinct's partisanship. Contact aggregates are left out: the labels come
# from those same contacts.
SUPPORT = ModelSpec("support", DEMOGRAPHICS + VOTE_HISTORY + DIGITAL + NEIGHBOURHOOD, CATEGORICAL)
# Partisanship: the support model learnt from party registration where there are
# too few survey IDs. Party and primary-ballot party are the label's own source,
# so they are left out of its inputs.
PARTISANSHIP = SUPPORT.without(("dem_ballots", "rep_ballots", "party"))
# Persuasion: pre-treatment covariates only (features as of the assignment date);
# contacts are left out because treatment is a contact.
PERSUASION = ModelSpec("persuasion", DEMOGRAPHICS + VOTE_HISTORY + DIGITAL + NEIGHBOURHOOD, CATEGORICAL)
SPECS = {spec.kind: spec for spec in (TURNOUT, SUPPORT, PERSUASION)}


def model_frame(features: DataFrame, spec: ModelSpec, extra: tuple[str, ...] = ()) -> DataFrame:
    """Select and type a model's inputs: numeric as double, categories as strings.

    Args:
        features: rows of ``gold.voter_features`` (plus any ``extra`` columns).
        spec: the model.
        extra: columns passed through untouched (keys, labels).

    Returns:
        The frame the pipeline fits and scores.
    """
    return features.select(
        *extra,
        *[F.col(c).cast("double").alias(c) for c in spec.numeric],
        *[F.coalesce(F.col(c).cast("string"), F.lit(UNKNOWN)).alias(c) for c in spec.categorical],
    )


def informative(spec: ModelSpec, frame: DataFrame) -> tuple[ModelSpec, tuple[str, ...]]:
    """Drop numeric features that are null in every row (nothing to learn or impute from).

    A state without vote history has no participation features at all; the
    imputer cannot fit a median of nothing.

    Args:
        spec: the model.
        frame: the training rows.

    Returns:
        The spec without the empty features, and the names dropped.
    """
    counts = frame.agg(*[F.count(c).alias(c) for c in spec.numeric]).first().asDict()  # one row: the counts
    empty = tuple(c for c in spec.numeric if counts[c] == 0)
    return spec.without(empty), empty


def class_weights(frame: DataFrame, mode: str) -> tuple[float, float]:
    """Weights of the negative and positive class.

    Args:
        frame: training rows with ``label``.
        mode: ``balanced`` (each class weighs half), ``none``, or ``auto``
            (balanced only when the rarer class is under a third of the rows).

    Returns:
        ``(w0, w1)``; ``(1.0, 1.0)`` when unweighted.
    """
    if mode == "none":
        return 1.0, 1.0
    share = frame.agg(F.avg("label")).first()[0] or 0.0  # one value: the positive share
    if (mode == "auto" and min(share, 1 - share) >= 1 / 3) or share in (0.0, 1.0):
        return 1.0, 1.0
    return 0.5 / (1 - share), 0.5 / share


def with_weights(frame: DataFrame, weights: tuple[float, float]) -> DataFrame:
    """Add the ``weight`` column the learners read."""
    return frame.select("*", F.when(F.col("label") > 0.5, weights[1]).otherwise(weights[0]).alias("weight"))


def _prep_stages(spec: ModelSpec) -> list:
    indexed = [f"{c}__idx" for c in spec.categorical]
    onehot = [f"{c}__ohe" for c in spec.categorical]
    encode = [StringIndexer(inputCols=list(spec.categorical), outputCols=indexed, handleInvalid="keep"),
              OneHotEncoder(inputCols=indexed, outputCols=onehot, handleInvalid="keep")]
    if spec.learner == "xgb":
        # XGBoost learns where a missing value goes at each split: a null stays
        # missing (NaN) instead of a median that would mix it with real values,
        # and the Imputer's quantile pass over the training rows is saved.
        return [*encode, VectorAssembler(inputCols=[*spec.numeric, *onehot], outputCol="features",
                                         handleInvalid="keep")]
    imputed = [f"{c}__imp" for c in spec.numeric]
    return [Imputer(inputCols=list(spec.numeric), outputCols=imputed, strategy="median"), *encode,
            VectorAssembler(inputCols=imputed + onehot, outputCol="features")]


def _xgboost(settings: ModelSettings, workers: int):
    """XGBoost's Spark estimator and its search grid.

    One barrier job trains the whole booster (``workers`` tasks that share
    histograms), where MLlib's GBT runs Spark jobs per tree level.

    Raises:
        ValueError: under Spark Connect, which xgboost 3.2 (the newest for
            Python 3.11) does not support.
    """
    from pyspark.sql.utils import is_remote
    if is_remote():
        raise ValueError("model.learners: 'xgb' needs a classic Spark session (xgboost.spark 3.2 trains in "
                         "barrier tasks, which Spark Connect does not offer); use [lr, gbt] over Connect")
    # Imported here: lr and gbt runs, and their champions, never need xgboost.
    from xgboost.spark import SparkXGBClassifier

    learner = SparkXGBClassifier(
        features_col="features", label_col="label", weight_col="weight", num_workers=workers,
        n_estimators=settings.xgb_n_estimators, learning_rate=settings.xgb_learning_rate,
        max_depth=settings.xgb_max_depths[0], tree_method="hist", seed=settings.seed, verbose=False)
    return learner, ParamGridBuilder().addGrid(learner.max_depth, list(settings.xgb_max_depths))


def build_pipeline(spec: ModelSpec, settings: ModelSettings, workers: int = 1) -> tuple[Pipeline, list[dict]]:
    """Imputation, indexing and one-hot encoding, assembly, classifier, and its search grid.

    Args:
        spec: the model (its ``learner`` picks the classifier).
        settings: hyperparameters and grids.
        workers: the tasks an ``xgb`` learner trains in (``model.xgb_num_workers``
            or the session's task slots; they must all run at once).

    Returns:
        An unfitted Pipeline reading ``label`` and ``weight`` and writing
        ``probability``, and the parameter maps to search (one empty map when
        there is nothing to tune).
    """
    if spec.learner == "xgb":
        learner, grid = _xgboost(settings, workers)
    elif spec.learner == "gbt":
        learner = GBTClassifier(labelCol="label", featuresCol="features", weightCol="weight",
                                maxIter=settings.gbt_max_iter, seed=settings.seed)
        grid = ParamGridBuilder().addGrid(learner.maxDepth, list(settings.gbt_max_depths))
    else:
        learner = LogisticRegression(labelCol="label", featuresCol="features", weightCol="weight",
                                     maxIter=settings.max_iter, elasticNetParam=settings.elastic_net,
                                     standardization=True)
        grid = ParamGridBuilder().addGrid(learner.regParam, list(settings.reg_params))
    maps = grid.build() if settings.tuning != "none" else [{}]
    if settings.tuning == "none":
        # No search: the first value of each grid (xgb's is set already).
        if spec.learner == "gbt":
            learner.setMaxDepth(settings.gbt_max_depths[0])
        elif spec.learner == "lr":
            learner.setRegParam(settings.reg_params[0])
    return Pipeline(stages=_prep_stages(spec) + [learner]), maps


def fit_tuned(spec: ModelSpec, settings: ModelSettings, train: DataFrame) -> tuple[PipelineModel, dict]:
    """Fit a pipeline, choosing hyperparameters by train-validation split or cross-validation.

    The search runs on at most ``settings.tuning_max_rows`` rows (a seeded
    sample): each of its fits is a full training, and the parameters a
    state's half-million rows choose are those its millions would.

    Args:
        spec: the model.
        settings: learners, grids, the search method.
        train: rows with the model inputs, ``label`` and ``weight`` (cached).

    Returns:
        The pipeline refitted on all of ``train`` with the best parameters, and
        those parameters with their validation AUC (and ``search_sample``, the
        share of rows searched, when the search ran on a sample).
    """
    workers = settings.xgb_num_workers or task_slots(train.sparkSession)
    pipeline, maps = build_pipeline(spec, settings, workers)
    if len(maps) == 1 and not maps[0]:
        return pipeline.fit(train), {}
    rows = train.count()  # cached rows: decides whether the search samples them
    sampled = rows > settings.tuning_max_rows
    searched = train.sample(fraction=settings.tuning_max_rows / rows, seed=settings.seed) if sampled else train
    evaluator = BinaryClassificationEvaluator(labelCol="label", metricName="areaUnderROC")
    # Each candidate's fit is seeded: side by side they choose what one at a time would (to rounding).
    parallelism = 1 if spec.learner == "xgb" else settings.parallel_fits or min(len(maps), workers)
    if settings.tuning == "cv":
        search = CrossValidator(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                                numFolds=settings.folds, seed=settings.seed, parallelism=parallelism)
        fitted = search.fit(searched)
        scores = fitted.avgMetrics
    else:
        search = TrainValidationSplit(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                                      trainRatio=settings.train_ratio, seed=settings.seed, parallelism=parallelism)
        fitted = search.fit(searched)
        scores = fitted.validationMetrics
    best = max(range(len(maps)), key=lambda i: scores[i])
    chosen = {param.name: value for param, value in maps[best].items()}
    model = pipeline.fit(train, params=maps[best]) if sampled else fitted.bestModel
    sample = {"search_sample": round(settings.tuning_max_rows / rows, 4)} if sampled else {}
    return model, {**chosen, "validation_auc": float(scores[best]), **sample}


def calibration_method(settings: ModelSettings, rows: int) -> str:
    """The calibration the configured method means for a calibration set of ``rows``.

    ``auto`` is isotonic regression when there are at least
    ``isotonic_min_rows`` rows, else Platt scaling: isotonic regression fits a
    step per handful of rows and, on a few thousand, adds more error than it
    removes; Platt's two parameters do not.
    """
    if settings.probability_calibration != "auto":
        return settings.probability_calibration
    return "isotonic" if rows >= settings.isotonic_min_rows else "platt"


def calibrate(model: PipelineModel, calibration: DataFrame, method: str = "isotonic",
              offsets: str | None = None) -> PipelineModel:
    """Append a calibration of the positive-class probability.

    Fitted on rows the classifier did not train on; the class weights (if any)
    shifted the raw probabilities, and both methods map them back to observed
    frequencies without changing their order.

    Args:
        model: the fitted classifier pipeline.
        calibration: held-aside training rows with ``label``.
        method: ``isotonic`` (writes ``calibrated_p``) or ``platt``: a
            logistic regression on the classifier's margin (writes
            ``calibrated_probability``).
        offsets: the election-level input (the turnout model's
            ``target_level``, values :data:`GENERAL_LEVELS`): each level gets
            its own intercept, and after isotonic regression its own slope, in
            a last logistic stage (writes ``calibrated_probability``). One
            score scale shared by midterm and presidential examples would
            carry the mix of levels in the calibration rows into every prediction.

    Returns:
        The pipeline with the calibration stage(s) appended.
    """
    scored = model.transform(calibration)
    slopes: list[str] = []
    if method == "isotonic":
        stages = [IsotonicRegression(featuresCol="probability", featureIndex=1, labelCol="label",
                                     predictionCol=CALIBRATED).fit(scored)]
        if offsets is None:
            return PipelineModel(stages=[*model.stages, *stages])
        # The isotonic probability on the logit scale, where each level adds its
        # intercept and scales the slope: one slope fitted on rows of every
        # level would spread a midterm's probabilities as far as a
        # presidential year's, and its habitual voters and drop-offs are not.
        q = f"LEAST(GREATEST({CALIBRATED}, {CALIBRATED_FLOOR}), {1 - CALIBRATED_FLOOR})"
        slopes = [f"{MARGIN}_{level}" for level in GENERAL_LEVELS]
        per_level = "".join(f", {MARGIN}_value * CAST({offsets} = '{level}' AS DOUBLE) AS {name}"
                            for level, name in zip(GENERAL_LEVELS, slopes))
        margin = [SQLTransformer(statement=f"SELECT *, LOG({q} / (1 - {q})) AS {MARGIN}_value{per_level} "
                                           "FROM __THIS__"),
                  VectorAssembler(inputCols=[f"{MARGIN}_value"], outputCol=MARGIN)]
    else:
        # The positive class's raw prediction is the margin (LR, XGBoost) or half
        # of it (GBT): linear in the logit either way, which is what Platt rescales.
        stages, margin = [], [VectorSlicer(inputCol="rawPrediction", outputCol=MARGIN, indices=[1])]
    inputs = [MARGIN, *slopes] + ([f"{offsets}__ohe"] if offsets else [])
    assemble = VectorAssembler(inputCols=inputs, outputCol="calibration_features")
    prepared = PipelineModel(stages=[*stages, *margin, assemble]).transform(scored)
    # The per-level slopes are deviations from the common one (a level unseen
    # here keeps the common slope); a light ridge makes them identifiable.
    platt = LogisticRegression(featuresCol="calibration_features", labelCol="label",
                               regParam=SLOPE_RIDGE if slopes else 0.0,
                               probabilityCol=CALIBRATED_VECTOR, rawPredictionCol="calibrated_raw",
                               predictionCol="calibrated_prediction")
    return PipelineModel(stages=[*model.stages, *stages, *margin, assemble, platt.fit(prepared)])


def fit_uplift(spec: ModelSpec, settings: ModelSettings, rows: DataFrame) -> PipelineModel:
    """Fit a residualised transformed-outcome uplift regressor: ``two_stage`` or ``lasso`` (``spec.learner``).

    In a randomised experiment with treatment share ``e``, the arm weight
    ``w = t / e - (1 - t) / (1 - e)`` has mean zero given the covariates, so
    ``z = (y - m(x)) * w`` has expectation equal to the treatment effect given
    ``x`` for any function ``m`` of the covariates; a regression of ``z`` on
    pre-treatment features estimates each voter's uplift. With ``m = 0`` (the
    plain transformed outcome) a chance imbalance of the arms among decided
    voters (``y`` near 1) reads as uplift; subtracting the outcome model's
    prediction ``m(x)`` (support in both arms, penalty
    ``uplift_outcome_reg_param``) removes that baseline level. ``m`` is fitted
    on the same rows: with tens of inputs on thousands of rows the in-sample
    and out-of-fold residuals ranked voters alike in our experiments.

    ``z`` is still mostly noise, so the second stage has few effective inputs:

    * ``lasso`` regresses ``z`` on every input with an L1 penalty
      (``uplift_reg_param``, ``uplift_elastic_net``), which keeps the few
      inputs that moderate the effect;
    * ``two_stage`` regresses ``z`` on a quadratic in the predicted support
      ``m(x)``: room for the campaign heuristic that undecided voters
      (``m(1 - m)`` high) are the persuadable ones. The experiment fits the
      weights, so a flat or opposite relation shows up as such; an effect
      moderated by something unrelated to support is found only by ``lasso``.

    Args:
        spec: the persuasion model's inputs and learner.
        settings: the penalties.
        rows: the model frame with ``label`` (support after assignment) and
            ``w`` (the arm weight).

    Returns:
        A PipelineModel writing the uplift to ``prediction``; ``two_stage``
        keeps the outcome model as a stage, ``lasso`` does not need it.
    """
    outcome = Pipeline(stages=_prep_stages(spec) + [LogisticRegression(
        labelCol="label", featuresCol="features", regParam=settings.uplift_outcome_reg_param,
        maxIter=settings.max_iter, probabilityCol="outcome_probability", rawPredictionCol="outcome_raw",
        predictionCol="outcome_prediction")]).fit(rows)
    scored = outcome.transform(rows)
    residual = (F.col("label") - vector_to_array("outcome_probability")[1]) * F.col("w")
    if spec.learner != "two_stage":
        reg = LinearRegression(labelCol="z", featuresCol="features", predictionCol=UPLIFT,
                               regParam=settings.uplift_reg_param, elasticNetParam=settings.uplift_elastic_net,
                               maxIter=settings.max_iter)
        fitted = reg.fit(scored.select("features", residual.alias("z")))
        return PipelineModel(stages=[*outcome.stages[:-1], fitted])
    support = VectorSlicer(inputCol="outcome_probability", outputCol="outcome_support", indices=[1])
    # [m, m²] spans the same fits as [m, m(1 - m)] (with the intercept).
    quadratic = PolynomialExpansion(inputCol="outcome_support", outputCol=UPLIFT_FEATURES, degree=2)
    reg = LinearRegression(labelCol="z", featuresCol=UPLIFT_FEATURES, predictionCol=UPLIFT, regParam=0.0,
                           maxIter=settings.max_iter)
    fitted = reg.fit(quadratic.transform(support.transform(scored)).select(UPLIFT_FEATURES, residual.alias("z")))
    return PipelineModel(stages=[*outcome.stages, support, quadratic, fitted])


def uplift_weights_input(spec: ModelSpec) -> tuple[str, tuple[str, ...]]:
    """The vector column the uplift regression reads, and its input names when the metadata lacks them."""
    return (UPLIFT_FEATURES, UPLIFT_INPUT_NAMES) if spec.learner == "two_stage" else ("features", ())


def in_holdout(key: Column, fraction: float, seed: int) -> Column:
    """Deterministic held-out membership by hashing the voter key.

    The same voter lands on the same side in every run and on every cluster,
    unlike ``randomSplit``, whose result depends on partitioning.
    """
    bucket = F.pmod(F.xxhash64(key, F.lit(seed)), F.lit(10_000))
    return bucket < F.lit(int(fraction * 10_000))


def bounded_uplift(uplift: Column) -> Column:
    """An uplift estimate clipped to [-1, 1], the range of a change in a probability.

    The uplift regressions are linear: for a few voters far out in their inputs
    they extrapolate past ±1 (15 of 16,998 voters on a 20,000-voter state),
    which the published contract rightly refuses.
    """
    # greatest/least skip nulls: without the guard a missing estimate would become -1.
    return F.when(uplift.isNotNull(), F.least(F.greatest(uplift, F.lit(-1.0)), F.lit(1.0)))


def positive_probability(predictions: DataFrame, raw: bool = False) -> Column:
    """The probability of the positive class: calibrated when the model has the
    calibration stage (unless ``raw``), else from MLlib's ``probability`` vector."""
    # The logistic stage comes last when there are both (isotonic, then per-level offsets).
    if CALIBRATED_VECTOR in predictions.columns and not raw:
        return vector_to_array(predictions[CALIBRATED_VECTOR])[1]
    if CALIBRATED in predictions.columns and not raw:
        return F.least(F.greatest(predictions[CALIBRATED], F.lit(CALIBRATED_FLOOR)), F.lit(1 - CALIBRATED_FLOOR))
    return vector_to_array(predictions["probability"])[1]


def auc(scored: DataFrame, score_col: str = "p") -> float:
    """Area under the ROC curve of a score column against ``label`` (one Spark pass)."""
    return float(BinaryClassificationEvaluator(
        rawPredictionCol=score_col, labelCol="label", metricName="areaUnderROC"
    ).evaluate(scored.select("label", F.col(score_col).cast("double").alias(score_col))))


def evaluate(scored: DataFrame, score_col: str = "p") -> dict[str, float]:
    """AUC, log loss, Brier score, calibration error and base rate of a scored held-out set.

    Args:
        scored: rows with ``label`` (0/1) and a probability column.
        score_col: the probability column.

    Returns:
        ``auc``, ``log_loss``, ``brier``, ``ece`` (10 equal-width bins),
        ``base_rate``, ``n``.
    """
    p = F.least(F.greatest(F.col(score_col), F.lit(EPS)), F.lit(1 - EPS))
    y = F.col("label")
    row = scored.agg(
        F.avg(-(y * F.log(p) + (1 - y) * F.log(1 - p))).alias("log_loss"),
        F.avg((F.col(score_col) - y) ** 2).alias("brier"),
        F.avg(y).alias("base_rate"),
        F.count("*").alias("n"),
    ).first()  # one row: the figures returned
    return {
        "auc": auc(scored, score_col),
        "log_loss": float(row["log_loss"]),
        "brier": float(row["brier"]),
        "ece": evaluation.expected_calibration_error(evaluation.reliability(scored, score_col)),
        "base_rate": float(row["base_rate"]),
        "n": float(row["n"]),
    }
