"""The published scores: per-voter predictions assembled into ``gold.voter_scores`` rows, no I/O.

The score job applies the champion models (:func:`votelake.models.scoring.apply_model`);
these functions turn the predictions into the published tables: the
probability frame of the voters, deciles within the state, the scores
table in its contract's column order and the precinct calibration rows.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake import publish
from votelake.models import totals

if TYPE_CHECKING:
    from votelake.models.tracking import ChampionModel

# The published value column of each model kind, and the keys of precinct results.
VALUE = {"turnout": "prob", "support": "prob", "persuasion": "uplift"}
KEYS = list(totals.RESULT_KEYS)
# Decile columns of the published values (within the state, 10 = highest).
DECILES = {"turnout_decile": "turnout_prob", "support_decile": "support_prob", "persuasion_decile": "persuasion_uplift"}


def to_score(prob: Column) -> Column:
    """A probability as a 0-100 integer score (an uplift as percentage points)."""
    return F.round(prob * 100).cast("int")


def county_names(persons: DataFrame) -> DataFrame:
    """The county name of every county id, as precinct results spell it.

    Args:
        persons: ``silver.persons`` (only ``county_id`` and ``county_name`` are read).

    Returns:
        ``county_id, county_name`` (trimmed, upper case), one row per county id.
    """
    name = F.upper(F.trim(F.col("county_name")))
    return (persons.where(F.col("county_id").isNotNull())
            .groupBy("county_id").agg(F.min(name).alias("county_name"))
            .select("county_id", "county_name"))


def probability_frame(rows: DataFrame, predictions: dict[str, DataFrame],
                      counties: DataFrame | None = None) -> DataFrame:
    """One row per voter: the precinct keys and every model's prediction.

    Args:
        rows: feature rows (``person_id``, ``county_id``, ``precinct``).
        predictions: by model kind, ``person_id`` and ``p``
            (:func:`votelake.models.scoring.apply_model`).
        counties: :func:`county_names`, to add ``county_name`` (the key of
            precinct results); None leaves it out.

    Returns:
        ``person_id, county_id, [county_name,] precinct`` and ``<kind>_prob``
        (``persuasion_uplift``) for each kind in ``predictions``.
    """
    out = rows.select("person_id", "county_id", F.trim(F.col("precinct")).alias("precinct"))
    if counties is not None:
        out = out.join(F.broadcast(counties), on="county_id", how="left")
    for kind, preds in predictions.items():
        out = out.join(preds.select("person_id", F.col("p").alias(f"{kind}_{VALUE[kind]}")),
                       on="person_id", how="left")
    return out


def with_deciles(scores: DataFrame, values: dict[str, str]) -> DataFrame:
    """Add the decile (1-10, 10 = highest) of value columns within each state.

    Cut points are approximate percentiles (``percentile_approx``, one
    aggregation per state), so no global sort or single-partition window
    runs at state scale; ties at a cut point share the lower decile.

    Args:
        scores: rows with ``state`` and the value columns.
        values: decile column name → value column.

    Returns:
        ``scores`` with the decile columns (null where the value is null).
    """
    quantiles = [i / 10 for i in range(1, 10)]
    cuts = scores.groupBy("state").agg(*[F.percentile_approx(v, quantiles, 10_000).alias(f"_cuts_{d}")
                                         for d, v in values.items()])

    def decile(name: str, value: str) -> Column:
        below = F.size(F.filter(F.col(f"_cuts_{name}"), lambda cut: cut < F.col(value)))
        return F.when(F.col(value).isNotNull(), (below + 1).cast("int")).alias(name)

    joined = scores.join(F.broadcast(cuts), on="state", how="left")
    return joined.select(*scores.columns, *[decile(d, v) for d, v in values.items()])


def scoring_run_id(feature_version: int, as_of: dt.date, models: dict[str, ChampionModel],
                   calibration: dict, target: dict | None = None, code: str | None = None) -> str:
    """The identity of a scoring run: a hash of everything that determines its scores.

    Args:
        feature_version: Delta version of ``gold.voter_features`` read.
        as_of: the scoring as-of date.
        models: the champion models by kind (each known by its MLflow run too:
            another tracking store numbers its registered versions from 1 again).
        calibration: the calibration settings (as JSON-able values).
        target: the election the turnout scores predict (``date``, ``type``).
        code: the version of the code scoring (new code may score differently).

    Returns:
        16 hex digits; the same inputs give the same id, so re-publishing a run is a no-op.
    """
    inputs = {"feature_version": feature_version, "as_of": as_of.isoformat(),
              "models": {k: [m.label, m.run_id] for k, m in sorted(models.items())}, "calibration": calibration}
    if target is not None:
        inputs["target_election"] = target
    if code is not None:
        inputs["code"] = code
    return publish.fingerprint(inputs)


def voter_scores(
    features: DataFrame,
    probabilities: DataFrame,
    models: dict[str, ChampionModel],
    feature_version: int,
    scoring_run: str,
    scored_at: dt.datetime,
) -> DataFrame:
    """Assemble the published scores table from features and predictions.

    Args:
        features: the scoring as-of date's feature rows of active voters.
        probabilities: :func:`probability_frame` of the same voters: the model
            predictions ``<kind>_prob`` (``persuasion_uplift``) of the kinds with a
            champion (the others are absent and their columns null), and, for
            calibrated kinds, ``<kind>_prob_calibrated``.
        models: the champion models by kind (for names, versions, run ids).
        feature_version: Delta version of the features read.
        scoring_run: :func:`scoring_run_id`.
        scored_at: the run's timestamp.

    Returns:
        DataFrame in the ``gold.voter_scores`` schema (its contract's column
        order): ``<kind>_prob`` (and its score and decile) is the calibrated
        probability where there is one, else the model's; ``<kind>_prob_model``
        is the model's.
    """
    present = [c for c in probabilities.columns if c != "person_id" and c.startswith(tuple(VALUE))]
    joined = features.join(probabilities.select("person_id", *present), on="person_id", how="left")

    def col(name: str) -> Column:
        return F.col(name) if name in present else F.lit(None).cast("double")

    def model_columns(kind: str) -> dict[str, Column]:
        model = models.get(kind)
        value = f"{kind}_{VALUE[kind]}"
        calibrated = f"{value}{totals.CALIBRATED}"
        published = col(calibrated) if calibrated in present else col(value)
        return {
            "score": to_score(published).alias(f"{kind}_score"),
            "value": published.alias(value),
            "model_value": col(value).alias(f"{value}_model"),
            "model": F.lit(model.label if model else None).cast("string").alias(f"{kind}_model"),
            "run_id": F.lit(model.run_id if model else None).cast("string").alias(f"{kind}_run_id"),
        }

    turnout, support, persuasion = (model_columns(k) for k in ("turnout", "support", "persuasion"))
    scores = joined.select(
        "person_id", "state_voter_id", "state_voter_ids", "state", "county_id", "precinct", "cong_dist",
        "state_senate", "state_house",
        turnout["score"], turnout["value"], turnout["model_value"],
        support["score"], support["value"], support["model_value"],
        persuasion["score"], persuasion["value"],
        turnout["model"], support["model"], persuasion["model"],
        turnout["run_id"], support["run_id"], persuasion["run_id"],
        F.lit(feature_version).cast("bigint").alias("feature_version"),
        F.lit(scoring_run).alias("scoring_run_id"),
        "as_of_date",
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )
    ranked = with_deciles(scores, DECILES)
    return ranked.select(
        "person_id", "state_voter_id", "state_voter_ids", "state", "county_id", "precinct", "cong_dist",
        "state_senate", "state_house",
        "turnout_score", "turnout_prob", "turnout_prob_model", "turnout_decile",
        "support_score", "support_prob", "support_prob_model", "support_decile",
        "persuasion_score", "persuasion_uplift", "persuasion_decile",
        "turnout_model", "support_model", "persuasion_model",
        "turnout_run_id", "support_run_id", "persuasion_run_id",
        "feature_version", "scoring_run_id", "as_of_date", "scored_at",
    )


def calibration_rows(
    calibration: totals.Calibration,
    counties: DataFrame,
    election_date: dt.date,
    results_file: str,
    models: dict[str, ChampionModel],
    scoring_run: str,
    scored_at: dt.datetime,
) -> DataFrame | None:
    """The ``gold.precinct_calibration`` rows of one calibration.

    Args:
        calibration: :func:`votelake.models.totals.calibrate_to_results` output.
        counties: :func:`county_names` (to add ``county_id``).
        election_date: the election the results are for.
        results_file: the results file or folder read.
        models: the champion models by kind (for run ids).
        scoring_run: :func:`scoring_run_id`.
        scored_at: the run's timestamp.

    Returns:
        One row per calibrated kind per voter-file precinct (voters without a
        county or precinct, never shifted, are left out), in the table's
        schema; None when no kind was calibrated.
    """
    parts = [
        table.select(F.lit(kind).alias("kind"), *KEYS, "delta", "n", "target", "predicted_before",
                     "predicted_after",
                     F.lit(models[kind].run_id if kind in models else None).cast("string").alias("run_id"))
        for kind, table in calibration.shifts.items()
    ]
    if not parts:
        return None
    ids = counties.groupBy("county_name").agg(F.min("county_id").alias("county_id"))
    rows = reduce(DataFrame.unionByName, parts)
    return (rows.where(F.col("county_name").isNotNull() & F.col("precinct").isNotNull())
            .join(F.broadcast(ids), on="county_name", how="left")
            .select("kind", F.col("county_id").cast("int").alias("county_id"), "county_name", "precinct",
                    F.lit(election_date).cast("date").alias("election_date"), "delta", "n", "target",
                    "predicted_before", "predicted_after", "run_id",
                    F.lit(results_file).alias("results_file"), F.lit(scoring_run).alias("scoring_run_id"),
                    F.lit(scored_at).cast("timestamp").alias("scored_at")))
