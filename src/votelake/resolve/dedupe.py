"""Duplicate-registration resolution: which registrations are the same person.

Two kinds of evidence are combined into one graph whose connected components
are the persons:

* deterministic: registrations with the same ``state_voter_id`` are the same
  person (NC keeps a voter's NCID across counties, so a mover's old and new
  registrations share it). Each such group is joined by edges to its smallest
  registration key, with probability 1;
* probabilistic: a Splink ``dedupe_only`` model scores candidate pairs on
  names, birth year, gender, residence and phone; pairs at or above
  ``dedupe.match_threshold`` become edges.

The model is trained (prior from near-certain rules, u by random sampling, m by
EM) when none is given, and otherwise loaded from the given Splink JSON, so
the parameters of a run can be versioned and reused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from votelake.resolve import engine
from votelake.resolve.nicknames import first_name_aliases
from votelake.resolve.settings import ResolveSettings

logger = logging.getLogger(__name__)

UNKNOWN_GENDERS = ("U", "X", "N")


@dataclass(frozen=True)
class DedupeResult:
    """What :func:`dedupe_registrations` found.

    Attributes:
        clusters: ``registration_key, cluster_id`` for every input registration;
            ``cluster_id`` is the smallest registration key of the cluster.
        pairs: the edges the clusters were built from, for audit:
            ``registration_key_l, registration_key_r, match_probability,
            match_weight, matched_by`` (``"splink"`` for scored pairs at or
            above the threshold, ``"state_voter_id"`` for the deterministic
            edges; ``match_weight`` is null for those).
        model: the Splink model as JSON text (pass it back as ``model`` to
            score the next refresh with the same parameters).
    """

    clusters: DataFrame
    pairs: DataFrame
    model: str

    def unpersist(self) -> None:
        """Release the materialized results (held by the executors, independent of Splink's tables)."""
        self.clusters.unpersist()
        self.pairs.unpersist()


def prepare_registrations(registrations: DataFrame) -> DataFrame:
    """Registrations as Splink input: ``unique_id`` plus derived comparison columns.

    Args:
        registrations: rows in :data:`~votelake.resolve.inputs.REGISTRATION_SCHEMA`.

    Returns:
        The columns Splink compares: ``unique_id`` (the registration key),
        ``state_voter_id``, names, ``first_name_aliases`` (nicknames),
        ``last_name_soundex``, ``middle_initial``, ``name_suffix``,
        ``birth_year``, ``birth_date``, ``gender`` (unknown codes as null),
        ``address_key``, ``unit``, ``city``, ``zip5``, ``phone``, ``email``.
    """
    gender = F.upper(F.col("gender"))
    return registrations.select(
        F.col("registration_key").alias("unique_id"),
        "state_voter_id",
        "first_name",
        first_name_aliases(F.col("first_name")).alias("first_name_aliases"),
        "middle_name",
        F.substring("middle_name", 1, 1).alias("middle_initial"),
        "last_name",
        F.when(F.col("last_name").isNotNull(), F.soundex("last_name")).alias("last_name_soundex"),
        "name_suffix",
        F.col("birth_year").cast("int").alias("birth_year"),
        F.col("birth_date").cast("date").alias("birth_date"),
        F.when(~gender.isin(*UNKNOWN_GENDERS), gender).alias("gender"),
        "address_key",
        "unit",
        "city",
        "zip5",
        "phone",
        "email",
    )


def dedupe_comparisons(settings: ResolveSettings, present: set[str],
                       key_u: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """The comparisons of the registration model, for the columns that hold data.

    Args:
        settings: resolution settings (similarity mode and thresholds).
        present: optional columns with at least one value (``birth_date``,
            ``unit``, ``city``, ``phone``, ``email``, ``name_suffix``, ``gender``).
        key_u: counted u probabilities of the key-like levels (``address``,
            ``phone``, ``email``; see :func:`engine.key_collision_u`), fixed in
            the model because random sampling almost never observes them.

    Returns:
        Splink comparison dicts.
    """
    key_u = key_u or {}
    comparisons = [
        engine.first_name_comparison(settings),
        engine.middle_name_comparison(settings),
        engine.last_name_comparison(settings),
        engine.birth_comparison(settings, has_birth_date="birth_date" in present),
        engine.location_comparison(settings, with_unit="unit" in present, with_city="city" in present,
                                   u_same_address=key_u.get("address")),
    ]
    if "gender" in present:
        comparisons.append(engine.gender_comparison())
    if "name_suffix" in present:
        comparisons.append(engine.suffix_comparison())
    if "phone" in present:
        comparisons.append(engine.exact_comparison("phone", "phone", key_u.get("phone")))
    if "email" in present:
        comparisons.append(engine.exact_comparison("email", "e-mail", key_u.get("email")))
    return comparisons


def same_id_edges(prepared: DataFrame) -> DataFrame:
    """Deterministic edges: each registration to the smallest key sharing its state voter id.

    Args:
        prepared: :func:`prepare_registrations` output.

    Returns:
        ``unique_id_l, unique_id_r`` (one edge per non-smallest registration
        of a group; groups of one give none).
    """
    with_id = prepared.where(F.col("state_voter_id").isNotNull()).select("unique_id", "state_voter_id")
    first = with_id.groupBy("state_voter_id").agg(F.min("unique_id").alias("unique_id_l"))
    return (
        with_id.join(first, on="state_voter_id", how="inner")
        .where(F.col("unique_id") != F.col("unique_id_l"))
        .select("unique_id_l", F.col("unique_id").alias("unique_id_r"))
    )


def dedupe_registrations(
    spark: SparkSession,
    registrations: DataFrame,
    settings: ResolveSettings,
    model: str | Mapping[str, Any] | None = None,
) -> DedupeResult:
    """Cluster registrations into persons.

    Args:
        spark: the running session (Splink runs its SQL through it).
        registrations: rows in :data:`~votelake.resolve.inputs.REGISTRATION_SCHEMA`,
            ``registration_key`` unique and not null.
        settings: resolution settings; ``dedupe.match_threshold`` decides which
            scored pairs become edges.
        model: a saved Splink model (JSON text or dict) to score with; ``None``
            trains a new one on ``registrations``.

    Returns:
        A :class:`DedupeResult` (clusters, audit pairs, model JSON); its
        DataFrames are materialized (local checkpoints), call ``unpersist()``
        when done.
    """
    from splink import Linker, SettingsCreator
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    threshold = settings.dedupe.match_threshold
    prepared = prepare_registrations(registrations).persist()
    db_api = engine.spark_api(spark, settings)
    registered = []
    try:
        table = db_api.register(prepared)
        registered.append(table)
        if model is None:
            present = engine.present_columns(
                prepared, ["birth_date", "unit", "city", "phone", "email", "name_suffix", "gender"])
            key_u = {"address": engine.key_collision_u(prepared, "address_key", "zip5")}
            key_u.update({c: engine.key_collision_u(prepared, c) for c in ("phone", "email") if c in present})
            creator = SettingsCreator(
                link_type="dedupe_only",
                comparisons=[engine.with_default_m(c) for c in dedupe_comparisons(settings, present, key_u)],
                blocking_rules_to_generate_predictions=list(settings.dedupe.blocking_rules),
                em_convergence=settings.em_convergence,
                max_iterations=settings.em_max_iterations,
                retain_matching_columns=False,
                retain_intermediate_calculation_columns=False,
            )
            linker = Linker(table, creator, log_level=None)
            engine.train(linker, settings, settings.dedupe.prior_rules, settings.dedupe.prior_recall,
                         settings.dedupe.training_blocking_rules)
        else:
            linker = Linker(table, engine.model_dict(model), log_level=None)
        scored = linker.inference.predict(threshold_match_probability=threshold).as_spark_dataframe()
        splink_edges = scored.where(F.col("match_probability") >= threshold).select(
            F.col("unique_id_l").alias("registration_key_l"),
            F.col("unique_id_r").alias("registration_key_r"),
            "match_probability", "match_weight", F.lit("splink").alias("matched_by"))
        id_edges = same_id_edges(prepared).select(
            F.col("unique_id_l").alias("registration_key_l"),
            F.col("unique_id_r").alias("registration_key_r"),
            F.lit(1.0).alias("match_probability"),
            F.lit(None).cast("double").alias("match_weight"), F.lit("state_voter_id").alias("matched_by"))
        pairs = engine.materialize(splink_edges.unionByName(id_edges))
        nodes = db_api.register(prepared.select("unique_id"))
        edges = db_api.register(pairs.select(
            F.col("registration_key_l").alias("unique_id_l"),
            F.col("registration_key_r").alias("unique_id_r"),
            "match_probability"))
        registered += [nodes, edges]
        components = cluster_pairwise_predictions_at_threshold(
            nodes=nodes,
            edges=edges,
            db_api=db_api,
            node_id_column_name="unique_id",
            threshold_match_probability=threshold,
        ).as_spark_dataframe()
        # Name each cluster by its smallest key, whatever representative Splink chose.
        clusters = engine.materialize(components.select(
            F.col("unique_id").alias("registration_key"),
            F.min("unique_id").over(Window.partitionBy("cluster_id")).alias("cluster_id"),
        ))
        trained = engine.model_json(linker)
    finally:
        engine.close(db_api, registered)
        prepared.unpersist()
    return DedupeResult(clusters=clusters, pairs=pairs, model=trained)

