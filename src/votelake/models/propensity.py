"""Propensity models as Spark MLlib Pipelines: the model frame, the pipeline,
the held-out split and the evaluation metrics. No I/O here; training and
tracking live in :mod:`votelake.models.tracking` and the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.regression import IsotonicRegression, LinearRegression
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.config import ModelSettings
from votelake.models import evaluation

DEMOGRAPHICS = ("age", "reg_tenure_years", "has_phone")
VOTE_HISTORY = (
    "generals_eligible", "generals_voted", "general_rate",
    "primaries_eligible", "primaries_voted", "primary_rate",
    "municipals_eligible", "municipals_voted", "municipal_rate",
    "voted_last_general", "voted_last_primary", "years_since_last_vote",
    "early_or_mail_share", "dem_ballots", "rep_ballots",
)
DIGITAL = ("digital_events", "digital_clicks")
# Geography enters as the county; precinct-level differences are handled by
# calibration to precinct totals rather than one-hot columns by the thousand.
CATEGORICAL = ("county_id", "gender", "race", "ethnicity", "party")
UNKNOWN = "__unknown__"
# Clamp probabilities before log loss so a confident miss costs a finite amount.
EPS = 1e-15
# Output column of the isotonic calibration stage appended to every classifier.
CALIBRATED = "calibrated_p"
# Isotonic regression maps the extreme score bins to exactly 0 or 1 when they
# held no counter-example; no voter is that certain, and one such miss would
# cost an unbounded log loss.
CALIBRATED_FLOOR = 0.001
# Output column of the uplift (persuasion) regressor: MLlib's default, which
# MLflow's Spark flavour also serves.
UPLIFT = "prediction"


@dataclass(frozen=True)
class ModelSpec:
    """What a propensity model is: its name, features and learner."""

    kind: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    learner: str = "lr"  # "gbt" | "lr"

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def without(self, names: tuple[str, ...]) -> "ModelSpec":
        """The spec without the given inputs (protected attributes, empty features)."""
        return replace(self, numeric=tuple(c for c in self.numeric if c not in names),
                       categorical=tuple(c for c in self.categorical if c not in names))


# Turnout: the 2026 campaign's contacts and digital signals did not exist at the
# training cutoff, so they are left out.
TURNOUT = ModelSpec("turnout", DEMOGRAPHICS + VOTE_HISTORY, CATEGORICAL)
# Support: demographics, primary-ballot history and digital engagement. Contact
# aggregates are left out: the labels come from those same contacts.
SUPPORT = ModelSpec("support", DEMOGRAPHICS + VOTE_HISTORY + DIGITAL, CATEGORICAL)
# Partisanship: the support model learnt from party registration where there are
# too few survey IDs. Party and primary-ballot party are the label's own source,
# so they are left out of its inputs.
PARTISANSHIP = SUPPORT.without(("dem_ballots", "rep_ballots", "party"))
# Persuasion: pre-treatment covariates only (features as of the assignment date);
# contacts are left out because treatment is a contact.
PERSUASION = ModelSpec("persuasion", DEMOGRAPHICS + VOTE_HISTORY + DIGITAL, CATEGORICAL)
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
    counts = frame.agg(*[F.count(c).alias(c) for c in spec.numeric]).first().asDict()
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
    share = frame.agg(F.avg("label")).first()[0] or 0.0
    if (mode == "auto" and min(share, 1 - share) >= 1 / 3) or share in (0.0, 1.0):
        return 1.0, 1.0
    return 0.5 / (1 - share), 0.5 / share


def with_weights(frame: DataFrame, weights: tuple[float, float]) -> DataFrame:
    """Add the ``weight`` column the learners read."""
    return frame.select("*", F.when(F.col("label") > 0.5, weights[1]).otherwise(weights[0]).alias("weight"))


def _prep_stages(spec: ModelSpec) -> list:
    imputed = [f"{c}__imp" for c in spec.numeric]
    indexed = [f"{c}__idx" for c in spec.categorical]
    onehot = [f"{c}__ohe" for c in spec.categorical]
    return [
        Imputer(inputCols=list(spec.numeric), outputCols=imputed, strategy="median"),
        StringIndexer(inputCols=list(spec.categorical), outputCols=indexed, handleInvalid="keep"),
        OneHotEncoder(inputCols=indexed, outputCols=onehot, handleInvalid="keep"),
        VectorAssembler(inputCols=imputed + onehot, outputCol="features"),
    ]


def build_pipeline(spec: ModelSpec, settings: ModelSettings) -> tuple[Pipeline, list[dict]]:
    """Imputation, indexing and one-hot encoding, assembly, classifier, and its search grid.

    Args:
        spec: the model (its ``learner`` picks the classifier).
        settings: hyperparameters and grids.

    Returns:
        An unfitted Pipeline reading ``label`` and ``weight`` and writing
        ``probability``, and the parameter maps to search (one empty map when
        there is nothing to tune).
    """
    if spec.learner == "gbt":
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
        # No search: the first value of each grid.
        if spec.learner == "gbt":
            learner.setMaxDepth(settings.gbt_max_depths[0])
        else:
            learner.setRegParam(settings.reg_params[0])
    return Pipeline(stages=_prep_stages(spec) + [learner]), maps


def fit_tuned(spec: ModelSpec, settings: ModelSettings, train: DataFrame) -> tuple[PipelineModel, dict]:
    """Fit a pipeline, choosing hyperparameters by train-validation split or cross-validation.

    Args:
        spec: the model.
        settings: learners, grids, the search method.
        train: rows with the model inputs, ``label`` and ``weight``.

    Returns:
        The pipeline refitted on all of ``train`` with the best parameters, and
        those parameters with their validation AUC.
    """
    pipeline, maps = build_pipeline(spec, settings)
    if len(maps) == 1 and not maps[0]:
        return pipeline.fit(train), {}
    evaluator = BinaryClassificationEvaluator(labelCol="label", metricName="areaUnderROC")
    if settings.tuning == "cv":
        search = CrossValidator(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                                numFolds=settings.folds, seed=settings.seed)
        fitted = search.fit(train)
        scores = fitted.avgMetrics
    else:
        search = TrainValidationSplit(estimator=pipeline, estimatorParamMaps=maps, evaluator=evaluator,
                                      trainRatio=settings.train_ratio, seed=settings.seed)
        fitted = search.fit(train)
        scores = fitted.validationMetrics
    best = max(range(len(maps)), key=lambda i: scores[i])
    chosen = {param.name: value for param, value in maps[best].items()}
    return fitted.bestModel, {**chosen, "validation_auc": float(scores[best])}


def calibrate(model: PipelineModel, calibration: DataFrame) -> PipelineModel:
    """Append an isotonic calibration of the positive-class probability.

    Fitted on rows the classifier did not train on; the class weights (if any)
    shifted the raw probabilities, and isotonic regression maps them back to
    observed frequencies without changing their order.

    Args:
        model: the fitted classifier pipeline.
        calibration: held-aside training rows with ``label``.

    Returns:
        The pipeline with an extra stage writing ``calibrated_p``.
    """
    iso = IsotonicRegression(featuresCol="probability", featureIndex=1, labelCol="label",
                             predictionCol=CALIBRATED).fit(model.transform(calibration))
    return PipelineModel(stages=[*model.stages, iso])


def build_uplift_pipeline(spec: ModelSpec, settings: ModelSettings) -> Pipeline:
    """The transformed-outcome uplift regressor.

    In a randomised experiment with treatment share ``e``, the outcome
    ``z = y * (t / e - (1 - t) / (1 - e))`` has expectation equal to the
    treatment effect given the covariates, so one regression of ``z`` on
    pre-treatment features estimates each voter's uplift.

    Args:
        spec: the persuasion model's inputs.
        settings: the uplift penalty (``uplift_reg_param``, ``uplift_elastic_net``).

    Returns:
        An unfitted Pipeline reading ``z`` and writing the uplift to ``prediction``.
    """
    reg = LinearRegression(labelCol="z", featuresCol="features", predictionCol=UPLIFT,
                           regParam=settings.uplift_reg_param, elasticNetParam=settings.uplift_elastic_net,
                           maxIter=settings.max_iter)
    return Pipeline(stages=_prep_stages(spec) + [reg])


def in_holdout(key: Column, fraction: float, seed: int) -> Column:
    """Deterministic held-out membership by hashing the voter key.

    The same voter lands on the same side in every run and on every cluster,
    unlike ``randomSplit``, whose result depends on partitioning.
    """
    bucket = F.pmod(F.xxhash64(key, F.lit(seed)), F.lit(10_000))
    return bucket < F.lit(int(fraction * 10_000))


def positive_probability(predictions: DataFrame, raw: bool = False) -> Column:
    """The probability of the positive class: calibrated when the model has the
    calibration stage (unless ``raw``), else from MLlib's ``probability`` vector."""
    if CALIBRATED in predictions.columns and not raw:
        return F.least(F.greatest(predictions[CALIBRATED], F.lit(CALIBRATED_FLOOR)), F.lit(1 - CALIBRATED_FLOOR))
    return vector_to_array(predictions["probability"])[1]


def evaluate(scored: DataFrame, score_col: str = "p") -> dict[str, float]:
    """AUC, log loss, Brier score, calibration error and base rate of a scored held-out set.

    Args:
        scored: rows with ``label`` (0/1) and a probability column.
        score_col: the probability column.

    Returns:
        ``auc``, ``log_loss``, ``brier``, ``ece`` (10 equal-width bins),
        ``base_rate``, ``n``.
    """
    auc = BinaryClassificationEvaluator(
        rawPredictionCol=score_col, labelCol="label", metricName="areaUnderROC"
    ).evaluate(scored)
    p = F.least(F.greatest(F.col(score_col), F.lit(EPS)), F.lit(1 - EPS))
    y = F.col("label")
    row = scored.agg(
        F.avg(-(y * F.log(p) + (1 - y) * F.log(1 - p))).alias("log_loss"),
        F.avg((F.col(score_col) - y) ** 2).alias("brier"),
        F.avg(y).alias("base_rate"),
        F.count("*").alias("n"),
    ).first()
    return {
        "auc": float(auc),
        "log_loss": float(row["log_loss"]),
        "brier": float(row["brier"]),
        "ece": evaluation.expected_calibration_error(evaluation.reliability(scored, score_col)),
        "base_rate": float(row["base_rate"]),
        "n": float(row["n"]),
    }
