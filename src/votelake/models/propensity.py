"""Propensity models as Spark MLlib Pipelines: the model frame, the pipeline,
the held-out split and the evaluation metrics. No I/O here; training and
tracking live in :mod:`votelake.models.tracking` and the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyspark.ml import Pipeline
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.config import ModelSettings

DEMOGRAPHICS = ("age", "reg_tenure_years", "has_phone")
VOTE_HISTORY = (
    "generals_eligible", "generals_voted", "general_rate",
    "primaries_eligible", "primaries_voted", "primary_rate",
    "municipals_eligible", "municipals_voted", "municipal_rate",
    "voted_last_general", "voted_last_primary", "years_since_last_vote",
    "early_or_mail_share", "dem_ballots", "rep_ballots",
)
DIGITAL = ("digital_events", "digital_clicks")
CATEGORICAL = ("gender", "race", "ethnicity", "party")
UNKNOWN = "__unknown__"
# Clamp probabilities before log loss so a confident miss costs a finite amount.
EPS = 1e-15


@dataclass(frozen=True)
class ModelSpec:
    """What a propensity model is: its name, features and learner."""

    kind: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    learner: str  # "gbt" | "lr"

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


# Turnout is non-linear in age and history, so boosted trees; the 2026 campaign's
# contacts and digital signals did not exist at the training cutoff, so they are left out.
TURNOUT = ModelSpec("turnout", DEMOGRAPHICS + VOTE_HISTORY, CATEGORICAL, "gbt")
# Support: demographics, primary-ballot history and digital engagement. Contact
# aggregates are left out: the labels come from those same contacts.
SUPPORT = ModelSpec("support", DEMOGRAPHICS + VOTE_HISTORY + DIGITAL, CATEGORICAL, "lr")
# Partisanship: the support model learnt from party registration where there are
# too few survey IDs. Party and primary-ballot party are the label's own source,
# so they are left out of its inputs.
PARTISANSHIP = ModelSpec(
    "support",
    DEMOGRAPHICS + tuple(c for c in VOTE_HISTORY if c not in ("dem_ballots", "rep_ballots")) + DIGITAL,
    tuple(c for c in CATEGORICAL if c != "party"),
    "lr",
)
SPECS = {spec.kind: spec for spec in (TURNOUT, SUPPORT)}


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
        *[F.coalesce(F.col(c), F.lit(UNKNOWN)).alias(c) for c in spec.categorical],
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
    return replace(spec, numeric=tuple(c for c in spec.numeric if c not in empty)), empty


def build_pipeline(spec: ModelSpec, settings: ModelSettings) -> Pipeline:
    """Imputation, indexing and one-hot encoding, assembly, classifier.

    Args:
        spec: the model.
        settings: hyperparameters.

    Returns:
        An unfitted Pipeline reading ``label`` and writing ``probability``.
    """
    imputed = [f"{c}__imp" for c in spec.numeric]
    indexed = [f"{c}__idx" for c in spec.categorical]
    onehot = [f"{c}__ohe" for c in spec.categorical]
    stages = [
        Imputer(inputCols=list(spec.numeric), outputCols=imputed, strategy="median"),
        StringIndexer(inputCols=list(spec.categorical), outputCols=indexed, handleInvalid="keep"),
        OneHotEncoder(inputCols=indexed, outputCols=onehot, handleInvalid="keep"),
        VectorAssembler(inputCols=imputed + onehot, outputCol="features"),
    ]
    if spec.learner == "gbt":
        stages.append(
            GBTClassifier(
                labelCol="label",
                featuresCol="features",
                maxIter=settings.gbt_max_iter,
                maxDepth=settings.gbt_max_depth,
                seed=settings.seed,
            )
        )
    else:
        stages.append(
            LogisticRegression(
                labelCol="label",
                featuresCol="features",
                maxIter=settings.max_iter,
                regParam=settings.reg_param,
                elasticNetParam=settings.elastic_net,
                standardization=True,
            )
        )
    return Pipeline(stages=stages)


def in_holdout(key: Column, fraction: float, seed: int) -> Column:
    """Deterministic held-out membership by hashing the voter key.

    The same voter lands on the same side in every run and on every cluster,
    unlike ``randomSplit``, whose result depends on partitioning.
    """
    bucket = F.pmod(F.xxhash64(key, F.lit(seed)), F.lit(10_000))
    return bucket < F.lit(int(fraction * 10_000))


def positive_probability(predictions: DataFrame) -> Column:
    """The probability of the positive class from MLlib's ``probability`` vector."""
    return vector_to_array(predictions["probability"])[1]


def evaluate(scored: DataFrame, score_col: str = "p") -> dict[str, float]:
    """AUC, log loss, Brier score and base rate of a scored held-out set.

    Args:
        scored: rows with ``label`` (0/1) and a probability column.
        score_col: the probability column.

    Returns:
        ``auc``, ``log_loss``, ``brier``, ``base_rate``, ``n``.
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
        "base_rate": float(row["base_rate"]),
        "n": float(row["n"]),
    }
