"""Voter segments' model life cycle: fit, re-fit for stability, assign, profile, log to MLflow.

What the segment job runs once it has read the tables: an MLlib Pipeline
(mean imputation, assembly, scaling, then bisecting k-means or k-means) is
fitted on the active voters' inputs
(:func:`votelake.transforms.segments.segmentation_inputs`), the best of
``segments.restarts`` runs; fitted again from another seed, and the two
assignments compared by the adjusted Rand index (1: the same segments; 0: no
more alike than chance). Segments are numbered by
size (1 the largest) and profiled; the run, in MLflow experiment
``<prefix>-segments``, holds the parameters, ``stability_ari``, the profile
table, a figure of the segments' sizes and mean scores, a figure of the re-fit's
agreement, and the fitted pipeline, registered as ``<prefix>-segments``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Sequence

import mlflow
import pandas as pd
import pyspark
from matplotlib.figure import Figure
from mlflow.models import infer_signature
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import BisectingKMeans, KMeans
from pyspark.ml.feature import Imputer, StandardScaler, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from votelake import progress
from votelake.config import SegmentSettings, Settings
from votelake.models import tracking
from votelake.models.lifecycle import made_up_example
from votelake.transforms import segments as seg

log = logging.getLogger(__name__)

KIND = "segments"  # the MLflow experiment and registered model: <prefix>-segments
# MLlib's prediction column, which MLflow's Spark flavour also serves.
PREDICTION = "prediction"
ASSEMBLED = "segment_vector"
SCALED = "segment_scaled"
IMPUTED = "__imputed"  # suffix of the imputed copy of each input; the voter's own value stays for the profiles
CLUSTER = "cluster"
PROFILE_TABLE = "segment_profiles.json"
PROFILE_FIGURE = "segments.png"
STABILITY_FIGURE = "stability.png"


@dataclass(frozen=True)
class Segmentation:
    """A fitted segmentation: every voter's segment, the profiles, the stability and the MLflow run."""

    assigned: DataFrame  # KEYS, segment_id, distance and the inputs; cached: unpersist when done
    profiles: DataFrame  # one row per segment (transforms.segments.profiles); cached: unpersist when done
    voters: int
    segments: int
    stability_ari: float
    inputs: tuple[str, ...]
    dropped: tuple[str, ...]
    excluded: tuple[str, ...]
    run_id: str
    model_version: str

    def unpersist(self) -> None:
        """Release the cached rows."""
        self.profiles.unpersist()
        self.assigned.unpersist()


def category_levels(rows: DataFrame, columns: Sequence[str], max_levels: int) -> dict[str, list[str]]:
    """Per categorical input, its most frequent values (at most ``max_levels``), most frequent first.

    Args:
        rows: the segmentation inputs.
        columns: the categorical inputs.
        max_levels: ``segments.max_levels``.

    Returns:
        Column to values; each value becomes a 0/1 input (:func:`votelake.transforms.segments.with_indicators`).
    """
    levels = {}
    for column in columns:
        # At most max_levels rows: the column's most frequent values.
        top = (rows.where(F.col(column).isNotNull()).groupBy(column).count()
               .orderBy(F.col("count").desc(), F.col(column)).limit(max_levels).collect())
        levels[column] = [r[0] for r in top]
    return levels


def informative(rows: DataFrame, columns: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The inputs that vary, and those that do not (all unknown, or one value: nothing to standardize).

    Args:
        rows: the segmentation inputs (numeric).
        columns: candidate inputs.

    Returns:
        The inputs kept and the inputs dropped, in their order.
    """
    spread = rows.agg(*[F.stddev_pop(c).alias(f"_s{i}") for i, c in enumerate(columns)]).first()  # one row
    kept = tuple(c for i, c in enumerate(columns) if spread[i] is not None and spread[i] > 0)
    return kept, tuple(c for c in columns if c not in kept)


def pipeline(inputs: Sequence[str], cfg: SegmentSettings, seed: int) -> Pipeline:
    """The segmentation pipeline: impute the mean, assemble, standardize, cluster.

    Scaling each input to unit standard deviation puts a probability, a
    count of clicks and an age on one scale, so no input dominates the
    distances by its units. The inputs are not centred: distances do not
    change with a shift, and MLlib's bisecting k-means splits a cluster by
    nudging its centre in proportion to the centre's norm, so at a centred
    root (the origin) it never splits and returns one segment.

    Args:
        inputs: numeric input columns.
        cfg: ``segments`` (algorithm, k, iterations).
        seed: the clustering's seed.

    Returns:
        An unfitted Pipeline whose ``prediction`` is the cluster number.
    """
    imputed = [f"{c}{IMPUTED}" for c in inputs]
    if cfg.algorithm == "bisecting":
        clusterer = BisectingKMeans(k=cfg.k, seed=seed, maxIter=cfg.max_iter, featuresCol=SCALED,
                                    predictionCol=PREDICTION)
    else:
        clusterer = KMeans(k=cfg.k, seed=seed, maxIter=cfg.max_iter, featuresCol=SCALED, predictionCol=PREDICTION)
    return Pipeline(stages=[
        Imputer(inputCols=list(inputs), outputCols=imputed, strategy="mean"),
        VectorAssembler(inputCols=imputed, outputCol=ASSEMBLED),
        StandardScaler(inputCol=ASSEMBLED, outputCol=SCALED, withMean=False, withStd=True),
        clusterer,
    ])


def fit(rows: DataFrame, inputs: Sequence[str], cfg: SegmentSettings, seed: int) -> tuple[PipelineModel, list[float]]:
    """The best of ``segments.restarts`` fits, seeded ``seed``, ``seed + 1``, ...

    Written here because MLlib's clustering has no restarts (scikit-learn's
    ``n_init``): one k-means run can settle in a poor local optimum, which a
    re-fit with another seed then contradicts.

    Args:
        rows: the inputs (cached: every run reads them).
        inputs: numeric input columns.
        cfg: ``segments``.
        seed: the first run's seed.

    Returns:
        The fitted pipeline of the lowest within-segment sum of squares, and every run's sum.
    """
    fitted = [pipeline(inputs, cfg, seed + i).fit(rows) for i in range(cfg.restarts)]
    costs = [float(m.stages[-1].summary.trainingCost) for m in fitted]
    return fitted[costs.index(min(costs))], costs


def assign(model: PipelineModel, rows: DataFrame) -> DataFrame:
    """Each voter's cluster and distance to its centre, in standard deviations.

    MLlib's clustering models give the cluster but not the distance; it is
    computed from the model's centres as column expressions (no Python UDF).

    Args:
        model: a fitted :func:`pipeline`.
        rows: the rows to assign (the inputs the model was fitted on).

    Returns:
        ``rows``' columns, ``cluster`` (int) and ``distance`` (double).
    """
    centers = F.array(*[F.array(*[F.lit(float(x)) for x in center]) for center in model.stages[-1].clusterCenters()])
    scaled, center = vector_to_array(F.col(SCALED)), F.element_at(centers, F.col(PREDICTION) + 1)
    squared = F.aggregate(F.zip_with(scaled, center, lambda x, c: (x - c) * (x - c)), F.lit(0.0), lambda s, v: s + v)
    return model.transform(rows).select(*rows.columns, F.col(PREDICTION).cast("int").alias(CLUSTER),
                                        F.sqrt(squared).alias("distance"))


def contingency(pairs: DataFrame, first: str, second: str) -> DataFrame:
    """The contingency table of two assignments of the same voters: one row per pair of labels met.

    Args:
        pairs: one row per voter with both labels.
        first: the first assignment's column.
        second: the second's.

    Returns:
        ``first, second, n`` (voters with both labels).
    """
    return pairs.groupBy(first, second).agg(F.count("*").alias("n"))


def adjusted_rand_index(pairs: DataFrame, first: str, second: str) -> float:
    """The adjusted Rand index of two assignments of the same voters (:func:`rand_index_of` their contingency).

    Args:
        pairs: one row per voter with both labels.
        first: the first assignment's column.
        second: the second's.

    Returns:
        The index: 1 for the same partition (whatever the labels), about 0 for chance agreement.
    """
    return rand_index_of(contingency(pairs, first, second), first, second)


def rand_index_of(cells: DataFrame, first: str, second: str) -> float:
    """The adjusted Rand index from a contingency table, summed in Spark.

    scikit-learn's ``adjusted_rand_score`` needs both label arrays in one
    process; a state's millions of voters are counted where they are, and
    only four sums come back.

    Args:
        cells: :func:`contingency`'s rows (``first``, ``second``, ``n``).
        first: the first assignment's column.
        second: the second's.

    Returns:
        The index (1.0 when the expected and the largest index coincide, as scikit-learn has it).
    """

    def pairs_of(n):  # C(n, 2): the pairs of voters among n, as a double (no overflow at state scale)
        return n.cast("double") * (n.cast("double") - 1) / 2

    # Hubert and Arabie's index: with n_ij the contingency counts, a_i its row
    # sums, b_j its column sums and N the voters,
    #   index    = sum_ij C(n_ij, 2)                  pairs together in both assignments
    #   expected = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(N, 2)
    #   maximum  = (sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2
    #   ARI      = (index - expected) / (maximum - expected)
    within = cells.agg(F.sum(pairs_of(F.col("n"))).alias("index"), F.sum("n").alias("voters"))
    # Totals under names no label column can have (a label column may be called anything).
    rows = cells.groupBy(first).agg(F.sum("n").alias("_row_total")).agg(
        F.sum(pairs_of(F.col("_row_total"))).alias("rows"))
    cols = cells.groupBy(second).agg(F.sum("n").alias("_column_total")).agg(
        F.sum(pairs_of(F.col("_column_total"))).alias("cols"))
    # One row: the three sums and N.
    sums = within.join(rows, how="cross").join(cols, how="cross").first()
    if not sums["voters"]:
        return 1.0
    expected = sums["rows"] * sums["cols"] / (sums["voters"] * (sums["voters"] - 1) / 2) if sums["voters"] > 1 else 0.0
    maximum = (sums["rows"] + sums["cols"]) / 2
    if maximum == expected:  # both assignments one segment, or every voter alone: the same partition
        return 1.0
    return float((sums["index"] - expected) / (maximum - expected))


def by_size(assigned: DataFrame) -> dict[int, int]:
    """Cluster number to segment id: 1 the largest cluster, then by size (ties: the lower cluster number).

    Args:
        assigned: :func:`assign`'s rows.

    Returns:
        The numbering :func:`votelake.transforms.segments.relabelled` applies.
    """
    sizes = assigned.groupBy(CLUSTER).count().collect()  # k rows
    ordered = sorted(sizes, key=lambda r: (-r["count"], r[CLUSTER]))
    return {r[CLUSTER]: i for i, r in enumerate(ordered, start=1)}


def profile_figure(profiles: pd.DataFrame) -> Figure:
    """The segments' sizes and mean scores, one bar per segment (largest first).

    Args:
        profiles: the profile rows (``segment_name``, ``voters``, ``mean_*``).

    Returns:
        A matplotlib Figure (not pyplot's state: nothing is left open).
    """
    rows = profiles.sort_values("segment_id", ascending=False)  # barh draws bottom-up: segment 1 on top
    names = [f"{i}. {n}" for i, n in zip(rows["segment_id"], rows["segment_name"])]
    figure = Figure(figsize=(13, 0.6 * len(rows) + 2), layout="constrained")
    sizes, scores, uplift = figure.subplots(1, 3, sharey=True, width_ratios=[1.2, 1.4, 1])
    sizes.barh(names, rows["voters"], color="#4c72b0")
    sizes.set_xlabel("voters")
    sizes.set_title("Segment size")
    position = range(len(rows))
    scores.barh([p + 0.2 for p in position], rows["mean_turnout_prob"], height=0.4, label="turnout", color="#55a868")
    scores.barh([p - 0.2 for p in position], rows["mean_support_prob"], height=0.4, label="support", color="#c44e52")
    scores.set_xlim(0, 1)
    scores.set_xlabel("mean probability")
    scores.set_title("Mean turnout and support")
    scores.legend(loc="lower right")
    uplift.barh(names, 100 * rows["mean_persuasion_uplift"].fillna(0.0), color="#8172b2")
    uplift.set_xlabel("percentage points")
    uplift.set_title("Mean persuasion uplift")
    return figure


def stability_figure(cells: pd.DataFrame, ari: float, seeds: tuple[int, int]) -> Figure:
    """The re-fit's agreement: the share of each segment's voters in each cluster of the re-fit.

    Args:
        cells: the contingency table (``segment_id``, ``refit``, ``n``).
        ari: its adjusted Rand index.
        seeds: the fit's and the re-fit's seeds.

    Returns:
        A matplotlib Figure.
    """
    table = cells.pivot_table(index="segment_id", columns="refit", values="n", aggfunc="sum", fill_value=0)
    shares = table.div(table.sum(axis=1), axis=0)
    # The re-fit's clusters in the order of the segment each mostly holds, so agreement is the diagonal.
    shares = shares[sorted(shares.columns, key=lambda c: (shares[c].idxmax(), -shares[c].max()))]
    figure = Figure(figsize=(6, 5), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(shares.shape[1]), [str(c) for c in shares.columns])
    axes.set_yticks(range(shares.shape[0]), [str(i) for i in shares.index])
    axes.set_xlabel(f"cluster of the re-fit (seed {seeds[1]})")
    axes.set_ylabel(f"segment (seed {seeds[0]})")
    axes.set_title(f"Stability: adjusted Rand index {ari:.3f}")
    figure.colorbar(image, ax=axes, label="share of the segment's voters")
    return figure


def _log_model(settings: Settings, model: PipelineModel, example: DataFrame) -> str:
    """Log the fitted pipeline to the active run and register it; returns the registered version."""
    sample = made_up_example(example)  # column means: no voter's row leaves with the model
    output = model.transform(example.sparkSession.createDataFrame(sample)).select(PREDICTION).toPandas()
    with warnings.catch_warnings():
        # MLflow warns that an integer column cannot hold a missing value; the segment number is never missing.
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(sample, output)
    # A fitted Spark pipeline needs pyspark alone; naming it spares MLflow's requirement inference.
    info = mlflow.spark.log_model(model, artifact_path="model", signature=signature, input_example=sample,
                                  pip_requirements=[f"pyspark=={pyspark.__version__}"])
    return tracking.register(tracking.registered_name(settings.mlflow, KIND), info)


def segment(settings: Settings, rows: DataFrame, lineage: dict[str, object]) -> Segmentation:
    """Fit the segments, measure their stability, profile them and log the run to MLflow.

    Args:
        settings: the run configuration (``segments``, ``model.protected_attributes``, ``mlflow``).
        rows: :func:`votelake.transforms.segments.segmentation_inputs`' rows.
        lineage: what the rows came from (input table versions, scoring run,
            segmentation run), logged as run parameters.

    Returns:
        The segmentation (its frames cached: call ``unpersist`` when done).

    Raises:
        ValueError: fewer voters than segments, or no input that varies.
    """
    cfg = settings.segments
    excluded = seg.excluded_inputs(settings)
    numeric, categorical = seg.input_columns(cfg.features, cfg.categorical, excluded)
    levels = category_levels(rows, categorical, cfg.max_levels)
    rows = seg.with_indicators(rows, levels).cache()
    try:
        return _segment(settings, rows, levels, excluded, numeric, lineage)
    finally:
        rows.unpersist()


def _segment(settings: Settings, rows: DataFrame, levels: dict[str, list[str]], excluded: tuple[str, ...],
             numeric: tuple[str, ...], lineage: dict[str, object]) -> Segmentation:
    """:func:`segment` on the cached rows with the categorical inputs as 0/1 columns."""
    cfg = settings.segments
    voters = rows.count()  # materializes the cache; every fit and assignment reads it
    if voters < cfg.k:
        raise ValueError(f"{voters} active voters to segment, fewer than segments.k = {cfg.k}")
    inputs, dropped = informative(rows, (*numeric, *seg.indicator_names(levels).values()))
    if not inputs:
        raise ValueError("no segment input varies among the voters: nothing to cluster on")
    if dropped:
        log.warning("segment inputs without any spread left out: %s", ", ".join(dropped))

    progress.stage(f"fitting {cfg.k} segments to {voters} voters ({cfg.restarts} run(s), then the re-fit's)")
    model, costs = fit(rows, inputs, cfg, cfg.seed)
    refit, refit_costs = fit(rows, inputs, cfg, cfg.stability_seed)
    first = assign(model, rows)
    assigned = seg.relabelled(first, by_size(first), CLUSTER).cache()
    refit_labels = refit.transform(rows).select("person_id", F.col(PREDICTION).alias("refit"))
    pairs = assigned.select("person_id", "segment_id").join(refit_labels, on="person_id", how="inner")
    cells = contingency(pairs, "segment_id", "refit").cache()
    ari = rand_index_of(cells, "segment_id", "refit")
    agreement = cells.toPandas()  # at most k × k rows: the stability figure's
    cells.unpersist()
    progress.stage("profiling the segments")
    profiles = seg.profiles(assigned, inputs, cfg.top_features).cache()
    table = profiles.orderBy("segment_id").toPandas()  # k rows
    log.info("%d voters in %d segments; re-fit from seed %d: adjusted Rand index %.3f",
             voters, len(table), cfg.stability_seed, ari)

    progress.stage("logging the segmentation to MLflow")
    tracking.configure(settings.mlflow)
    params = {
        "algorithm": cfg.algorithm, "k": cfg.k, "seed": cfg.seed, "stability_seed": cfg.stability_seed,
        "restarts": cfg.restarts, "max_iter": cfg.max_iter,
        "inputs": ",".join(inputs), "inputs_dropped": ",".join(dropped) or "none",
        "categorical_levels": "; ".join(f"{c}: {','.join(v)}" for c, v in levels.items()) or "none",
        "protected_excluded": ",".join(excluded) or "none", "include_protected": cfg.include_protected,
        "code_version": tracking.code_version(), **lineage,
    }
    # The chosen fit's within-segment sum of squares (standardized inputs), and the re-fit's.
    metrics = {"stability_ari": ari, "voters": float(voters), "segments": float(len(table)),
               "training_cost": min(costs), "refit_training_cost": min(refit_costs)}
    with mlflow.start_run(experiment_id=tracking.experiment_id(settings.mlflow, KIND), run_name="segments") as run:
        # MLflow caps a parameter value's length; the inputs are also in the profile table.
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(metrics)
        mlflow.log_table(table, PROFILE_TABLE)
        mlflow.log_figure(profile_figure(table), PROFILE_FIGURE)
        mlflow.log_figure(stability_figure(agreement, ari, (cfg.seed, cfg.stability_seed)), STABILITY_FIGURE)
        version = _log_model(settings, model, rows.select(*inputs))
        mlflow.set_tags({"votelake.model": KIND})
    return Segmentation(assigned=assigned, profiles=profiles, voters=voters, segments=len(table), stability_ari=ari,
                        inputs=inputs, dropped=dropped, excluded=excluded, run_id=run.info.run_id,
                        model_version=version)
