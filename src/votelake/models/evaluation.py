"""Held-out evaluation tables: calibration, ROC points, decile lift, fairness, Qini.

The Spark functions aggregate a scored held-out set down to a few hundred rows
and return pandas frames for the model report; the Qini functions work on the
experiment's rows (thousands), collected to the driver.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

CALIBRATION_BINS = 10
# Scores are rounded to this many decimals for the ROC curve: at most 1,001 points.
ROC_DECIMALS = 3
AGE_BANDS = ((18, "18-29"), (30, "30-44"), (45, "45-64"), (65, "65+"))


def age_band(age: Column) -> Column:
    """The age band label (18-29, 30-44, 45-64, 65+) of an age column."""
    band = F.lit(None).cast("string")
    for low, label in AGE_BANDS:
        band = F.when(age >= low, F.lit(label)).otherwise(band)
    return band


def reliability(scored: DataFrame, score_col: str, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Reliability curve: mean score and observed rate in equal-width score bins.

    Args:
        scored: rows with ``label`` and the score column.
        score_col: the probability column.
        bins: number of equal-width bins on [0, 1].

    Returns:
        Columns ``bin, mean_p, mean_y, n``, one row per non-empty bin.
    """
    b = F.least(F.floor(F.col(score_col) * bins), F.lit(bins - 1)).cast("int")
    rows = (scored.groupBy(b.alias("bin"))
            .agg(F.avg(score_col).alias("mean_p"), F.avg("label").alias("mean_y"), F.count("*").alias("n"))
            .orderBy("bin").toPandas())  # one row per bin
    return rows.astype({"bin": int, "n": int})


def expected_calibration_error(curve: pd.DataFrame) -> float:
    """ECE: the bin-size-weighted mean gap between mean score and observed rate."""
    if curve.empty:
        return float("nan")
    return float((curve["n"] * (curve["mean_p"] - curve["mean_y"]).abs()).sum() / curve["n"].sum())


def roc_points(scored: DataFrame, score_col: str) -> pd.DataFrame:
    """ROC curve from scores rounded to ``ROC_DECIMALS`` decimals.

    Args:
        scored: rows with ``label`` and the score column.
        score_col: the score column.

    Returns:
        Columns ``fpr, tpr`` from (0, 0) to (1, 1).
    """
    counts = (scored.groupBy(F.round(score_col, ROC_DECIMALS).alias("s"))
              .agg(F.sum("label").alias("pos"), F.sum(1 - F.col("label")).alias("neg"))
              .orderBy(F.desc("s")).toPandas())  # at most 1,001 rows: scores rounded to 3 decimals
    pos, neg = counts["pos"].cumsum(), counts["neg"].cumsum()
    tpr = pos / max(pos.iloc[-1], 1) if len(counts) else pd.Series(dtype=float)
    fpr = neg / max(neg.iloc[-1], 1) if len(counts) else pd.Series(dtype=float)
    return pd.concat([pd.DataFrame({"fpr": [0.0], "tpr": [0.0]}),
                      pd.DataFrame({"fpr": fpr.astype(float), "tpr": tpr.astype(float)})], ignore_index=True)


def decile_table(scored: DataFrame, score_col: str, key: str = "person_id") -> pd.DataFrame:
    """Lift and cumulative capture by score decile (1 = highest scores).

    Args:
        scored: rows with ``label``, the score column and a unique key (ties
            in score are broken by it, so the table is reproducible).
        score_col: the score column.
        key: the tie-breaking key.

    Returns:
        Columns ``decile, n, positives, rate, lift, cum_capture``.
    """
    # Deciles need one global order; the held-out set is a fraction of the
    # voters with three columns, so it is ranked locally rather than in a
    # window that would gather every row into one Spark task.
    local = scored.select(F.col(score_col).alias("s"), F.col(key).alias("k"), "label").toPandas()
    local = local.sort_values(["s", "k"], ascending=[False, True], kind="mergesort").reset_index(drop=True)
    # ntile's split: the first (n mod 10) deciles take one row more.
    local["decile"] = np.repeat(np.arange(1, 11), [len(local) // 10 + (i < len(local) % 10) for i in range(10)])
    table = (local.groupby("decile", as_index=False).agg(n=("label", "size"), positives=("label", "sum")))
    base = table["positives"].sum() / max(table["n"].sum(), 1)
    table["rate"] = table["positives"] / table["n"]
    table["lift"] = table["rate"] / base if base > 0 else np.nan
    table["cum_capture"] = table["positives"].cumsum() / max(table["positives"].sum(), 1)
    return table.astype({"decile": int, "n": int})


def fairness_table(scored: DataFrame, score_col: str, attributes: tuple[str, ...]) -> pd.DataFrame:
    """Score distribution and calibration by group, for each attribute present.

    Args:
        scored: rows with ``label``, the score column and the attribute columns
            (``age_band`` is derived from ``age``).
        score_col: the probability column.
        attributes: e.g. ``("age_band", "gender", "race")``; absent ones are skipped.

    Returns:
        Columns ``attribute, group, n, mean_score, mean_label, ece``.
    """
    frames = []
    for attribute in attributes:
        if attribute == "age_band" and "age" in scored.columns:
            group = age_band(F.col("age"))
        elif attribute in scored.columns:
            group = F.col(attribute).cast("string")
        else:
            continue
        b = F.least(F.floor(F.col(score_col) * CALIBRATION_BINS), F.lit(CALIBRATION_BINS - 1))
        by_bin = scored.groupBy(F.coalesce(group, F.lit("unknown")).alias("group"), b.alias("bin")).agg(
            F.count("*").alias("n"), F.sum(score_col).alias("sum_p"), F.sum("label").alias("sum_y"))
        rows = by_bin.groupBy("group").agg(
            F.sum("n").alias("n"),
            (F.sum("sum_p") / F.sum("n")).alias("mean_score"),
            (F.sum("sum_y") / F.sum("n")).alias("mean_label"),
            (F.sum(F.abs(F.col("sum_p") - F.col("sum_y"))) / F.sum("n")).alias("ece"),
        ).orderBy("group").toPandas()  # one row per group
        rows.insert(0, "attribute", attribute)
        frames.append(rows)
    columns = ["attribute", "group", "n", "mean_score", "mean_label", "ece"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def readable_feature(name: str) -> str:
    """A model input's name as a person reads it, from the pipeline's column for it.

    Args:
        name: a vector attribute's name: ``age__imp`` (imputed), ``county_id__ohe_28``
            (one category of a one-hot encoding), or a plain column name.

    Returns:
        ``age``, ``county_id=28``, or the name as it was.
    """
    column, marked, rest = name.partition("__")
    if not marked:
        return name
    stage, _, category = rest.partition("_")
    return f"{column}={category}" if stage == "ohe" and category else column


def feature_weights(model_stages: list, transformed: DataFrame, features_col: str = "features",
                    names: tuple[str, ...] = ()) -> pd.DataFrame:
    """Feature importances (trees) or coefficients (linear models), by name.

    Args:
        model_stages: the fitted pipeline's stages (the model is the first
            one with ``featureImportances``, ``coefficients`` or XGBoost's
            ``get_feature_importances``).
        transformed: any output of the pipeline (its ``features_col`` column
            carries the assembled names in its metadata).
        features_col: the model's input vector column.
        names: the inputs' names, when the vector's metadata does not carry them.

    Returns:
        Columns ``feature, value``, largest magnitude first (names as :func:`readable_feature` gives them).
    """
    attrs = transformed.schema[features_col].metadata.get("ml_attr", {}).get("attrs", {})
    names = dict(enumerate(names)) or {a["idx"]: a["name"] for group in attrs.values() for a in group}
    for stage in model_stages:
        if hasattr(stage, "featureImportances"):
            values = stage.featureImportances.toArray()
            break
        if hasattr(stage, "coefficients"):
            values = stage.coefficients.toArray()
            break
        if hasattr(stage, "get_feature_importances"):
            # XGBoost names inputs f0, f1, ... and leaves out those no split used.
            gains = stage.get_feature_importances(importance_type="total_gain")
            size = max([len(names), *(int(k[1:]) + 1 for k in gains)])
            values = np.array([gains.get(f"f{i}", 0.0) for i in range(size)])
            break
    else:
        return pd.DataFrame(columns=["feature", "value"])
    table = pd.DataFrame({"feature": [readable_feature(names.get(i, f"f{i}")) for i in range(len(values))],
                          "value": values})
    return table.reindex(table["value"].abs().sort_values(ascending=False).index).reset_index(drop=True)


def qini_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray, points: int = 101) -> pd.DataFrame:
    """Qini curve: incremental positives when targeting the top share by score.

    ``gain(k) = Y_T(k) - Y_C(k) * N_T(k) / N_C(k)`` over the k highest scores,
    divided by the number of rows so curves of different sizes compare.

    Args:
        y: outcomes (0/1).
        t: treatment indicators (0/1).
        score: predicted uplift (higher = target first).
        points: points on the returned curve.

    Returns:
        Columns ``fraction, gain``, from (0, 0).
    """
    fraction, gain = _qini_gain(y, t, score)
    grid = np.linspace(0.0, 1.0, points)
    return pd.DataFrame({"fraction": grid, "gain": np.interp(grid, fraction, gain)})


def _qini_gain(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-score, kind="stable")
    y, t = y[order].astype(float), t[order].astype(float)
    yt, yc = np.cumsum(y * t), np.cumsum(y * (1 - t))
    nt, nc = np.cumsum(t), np.cumsum(1 - t)
    gain = (yt - yc * np.divide(nt, nc, out=np.zeros_like(nt), where=nc > 0)) / len(y)
    fraction = np.arange(1, len(y) + 1) / len(y)
    return np.concatenate([[0.0], fraction]), np.concatenate([[0.0], gain])


def qini_coefficient(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting line (0 = no better than random).

    Args:
        y: outcomes (0/1).
        t: treatment indicators (0/1).
        score: predicted uplift.

    Returns:
        The mean over targeting depths of ``gain - depth * overall gain``.
    """
    fraction, gain = _qini_gain(y, t, score)
    return float(np.mean(gain[1:] - fraction[1:] * gain[-1]))


def qini_interval(y: np.ndarray, t: np.ndarray, score: np.ndarray, draws: int, seed: int,
                  level: float = 0.95) -> tuple[float, float]:
    """Bootstrap percentile interval of the Qini coefficient (rows resampled with replacement).

    Args:
        y: outcomes.
        t: treatment indicators.
        score: predicted uplift.
        draws: bootstrap replicates.
        seed: random seed.
        level: interval coverage.

    Returns:
        ``(low, high)``.
    """
    rng = np.random.default_rng(seed)
    n = len(y)
    stats = [qini_coefficient(y[i], t[i], score[i]) for i in (rng.integers(0, n, n) for _ in range(draws))]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def uplift_by_decile(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> pd.DataFrame:
    """Observed treatment effect (treated rate - control rate) by predicted-uplift decile.

    Args:
        y: outcomes.
        t: treatment indicators.
        score: predicted uplift.

    Returns:
        Columns ``decile, n, predicted, observed`` (decile 1 = highest predicted uplift).
    """
    frame = pd.DataFrame({"y": y, "t": t, "s": score})
    frame["decile"] = 10 - pd.qcut(frame["s"].rank(method="first"), 10, labels=False)
    rows = []
    for decile, g in frame.groupby("decile"):
        treated, control = g[g["t"] == 1]["y"], g[g["t"] == 0]["y"]
        observed = treated.mean() - control.mean() if len(treated) and len(control) else np.nan
        rows.append({"decile": int(decile), "n": len(g), "predicted": g["s"].mean(), "observed": observed})
    return pd.DataFrame(rows)


def _placements(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: each positive's share of negatives scored below it
    and each negative's share of positives scored above it (ties count half)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos, neg = score[positive], score[~positive]
    below = (ranks[positive] - pd.Series(pos).rank().to_numpy()) / len(neg)
    above = 1 - (ranks[~positive] - pd.Series(neg).rank().to_numpy()) / len(pos)
    return below, above


def paired_difference_se(metric: str, label: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of the difference of a metric between two models scored on the same rows.

    The two models' errors on shared rows are correlated, so the difference is
    far less noisy than either metric. For ``auc`` this is DeLong, DeLong and
    Clarke-Pearson's (1988) paired variance; for ``log_loss`` the standard
    error of the mean per-row difference. Written here because neither
    scikit-learn nor MLlib computes a paired AUC variance.

    Args:
        metric: ``auc`` or ``log_loss``.
        label: outcomes (0/1).
        a: the first model's probabilities.
        b: the second model's probabilities on the same rows.

    Returns:
        The standard error (0 with fewer than two rows of either class).
    """
    positive = label == 1
    if min(positive.sum(), (~positive).sum()) < 2:
        return 0.0
    if metric == "log_loss":
        def loss(p: np.ndarray) -> np.ndarray:
            p = np.clip(p, 1e-15, 1 - 1e-15)
            return -(label * np.log(p) + (1 - label) * np.log(1 - p))
        return float(np.std(loss(a) - loss(b), ddof=1) / np.sqrt(len(label)))
    (a_below, a_above), (b_below, b_above) = _placements(a, positive), _placements(b, positive)
    return float(np.sqrt(np.var(a_below - b_below, ddof=1) / positive.sum()
                         + np.var(a_above - b_above, ddof=1) / (~positive).sum()))
