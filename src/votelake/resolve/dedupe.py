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
import json
from dataclasses import dataclass, field
from functools import reduce
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
        model: the Splink model as JSON text, with its term frequencies (pass
            it back as ``model`` to score the next refresh with the same parameters).
        figures: ``resolved`` (``all``, or ``changed`` for a refresh that
            resolved again only what changed, with its counts).
    """

    clusters: DataFrame
    pairs: DataFrame
    model: str
    figures: dict = field(default_factory=dict)

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


@dataclass(frozen=True)
class Previous:
    """The resolution a refresh starts from: the last build's registrations and person ids.

    Attributes:
        registrations: the registrations it resolved, in
            :data:`~votelake.resolve.inputs.REGISTRATION_SCHEMA`.
        person_ids: ``registration_key, person_id`` it gave them (one person
            id per cluster, as :func:`~votelake.resolve.ids.assign_person_ids` gives).
    """

    registrations: DataFrame
    person_ids: DataFrame


# The flag column of the registrations a refresh rescores (compared values new or changed).
CHANGED = "resolve_changed"


def changed_keys(prepared: DataFrame, before: DataFrame) -> DataFrame:
    """The registrations that are new or whose compared values changed since ``before``.

    Args:
        prepared: :func:`prepare_registrations` of the registrations now.
        before: the same of the previous resolution's registrations.

    Returns:
        ``unique_id`` of each such registration.
    """
    digest = F.sha2(F.to_json(F.struct(*[c for c in prepared.columns if c != "unique_id"])), 256)
    now = prepared.select("unique_id", digest.alias("_digest"))
    return now.join(before.select("unique_id", digest.alias("_digest")), on=["unique_id", "_digest"],
                    how="left_anti").select("unique_id")


def _only_pairs_with(model: dict[str, Any], flag: str) -> dict[str, Any]:
    """The model with every blocking rule narrowed to pairs where either side has ``flag`` set."""
    rules = []
    for rule in model.get("blocking_rules_to_generate_predictions", []):
        rule = dict(rule) if isinstance(rule, Mapping) else {"blocking_rule": rule}
        rule["blocking_rule"] = f"({rule['blocking_rule']}) AND (l.{flag} OR r.{flag})"
        rules.append(rule)
    return {**model, "blocking_rules_to_generate_predictions": rules}


def _no_edges(spark: SparkSession) -> DataFrame:
    """No edges, in the audit shape."""
    return spark.createDataFrame([], "registration_key_l string, registration_key_r string, "
                                     "match_probability double, match_weight double, matched_by string")


def _edge_frame(splink_edges: DataFrame, id_edges: DataFrame) -> DataFrame:
    """Scored and same-voter-id edges in one audit shape, materialized."""
    return engine.materialize(splink_edges.unionByName(id_edges.select(
        F.col("unique_id_l").alias("registration_key_l"),
        F.col("unique_id_r").alias("registration_key_r"),
        F.lit(1.0).alias("match_probability"),
        F.lit(None).cast("double").alias("match_weight"), F.lit("state_voter_id").alias("matched_by"))))


class _Splink:
    """Linkers, lookups and clusterings over one Splink API, dropped together by :meth:`close`."""

    def __init__(self, spark: SparkSession, settings: ResolveSettings) -> None:
        self.db_api = engine.spark_api(spark, settings)
        self.threshold = settings.dedupe.match_threshold
        self.registered: list = []

    def linker(self, prepared: DataFrame, model: Any, frequencies: Mapping[str, Any] | None):
        """A Linker over ``prepared`` that scores with the model's term frequencies (when it keeps them)."""
        from splink import Linker

        table = self.db_api.register(prepared)
        self.registered.append(table)
        linker = Linker(table, model, log_level=None)
        if frequencies:
            self.registered += engine.register_term_frequencies(self.db_api, linker, prepared, frequencies)
        return linker

    def edges(self, linker) -> DataFrame:
        """The scored pairs at or above the threshold, as audit edges."""
        scored = linker.inference.predict(threshold_match_probability=self.threshold).as_spark_dataframe()
        return scored.where(F.col("match_probability") >= self.threshold).select(
            F.col("unique_id_l").alias("registration_key_l"),
            F.col("unique_id_r").alias("registration_key_r"),
            "match_probability", "match_weight", F.lit("splink").alias("matched_by"))

    def clusters(self, keys: DataFrame, pairs: DataFrame) -> DataFrame:
        """Connected components of ``pairs`` over ``keys`` (``unique_id``), each named by its smallest key."""
        from splink.clustering import cluster_pairwise_predictions_at_threshold

        nodes = self.db_api.register(keys.select("unique_id"))
        edges = self.db_api.register(pairs.select(
            F.col("registration_key_l").alias("unique_id_l"),
            F.col("registration_key_r").alias("unique_id_r"),
            "match_probability"))
        self.registered += [nodes, edges]
        components = cluster_pairwise_predictions_at_threshold(
            nodes=nodes, edges=edges, db_api=self.db_api, node_id_column_name="unique_id",
            threshold_match_probability=self.threshold,
        ).as_spark_dataframe()
        # Name each cluster by its smallest key, whatever representative Splink chose.
        return engine.materialize(components.select(
            F.col("unique_id").alias("registration_key"),
            F.min("unique_id").over(Window.partitionBy("cluster_id")).alias("cluster_id"),
        ))

    def close(self) -> None:
        engine.close(self.db_api, self.registered)


def dedupe_registrations(
    spark: SparkSession,
    registrations: DataFrame,
    settings: ResolveSettings,
    model: str | Mapping[str, Any] | None = None,
    previous: Previous | None = None,
) -> DedupeResult:
    """Cluster registrations into persons.

    A model keeps the term frequencies it was trained with, so a pair's score
    depends only on the two registrations. Given ``previous``, only what
    changed is resolved again (:func:`_refresh`), with the same clusters as
    resolving everything.

    Args:
        spark: the running session (Splink runs its SQL through it).
        registrations: rows in :data:`~votelake.resolve.inputs.REGISTRATION_SCHEMA`,
            ``registration_key`` unique and not null.
        settings: resolution settings; ``dedupe.match_threshold`` decides which
            scored pairs become edges.
        model: a saved Splink model (JSON text or dict) to score with; ``None``
            trains a new one on ``registrations``.
        previous: the last resolution, made with this same ``model``; used only
            with a model that keeps its term frequencies.

    Returns:
        A :class:`DedupeResult` (clusters, audit pairs, model JSON, figures);
        its DataFrames are materialized (local checkpoints), call
        ``unpersist()`` when done.
    """
    from splink import SettingsCreator

    prepared = prepare_registrations(registrations).persist()
    splink = _Splink(spark, settings)
    try:
        if model is None:
            present = engine.present_columns(
                prepared, ["birth_date", "unit", "city", "phone", "email", "name_suffix", "gender"])
            key_u = {"address": engine.key_collision_u(prepared, "address_key", "zip5")}
            key_u.update({c: engine.key_collision_u(prepared, c) for c in ("phone", "email") if c in present})
            comparisons = [engine.with_default_m(c) for c in dedupe_comparisons(settings, present, key_u)]
            frequencies = engine.term_frequencies(prepared, engine.tf_columns({"comparisons": comparisons}))
            creator = SettingsCreator(
                link_type="dedupe_only",
                comparisons=comparisons,
                blocking_rules_to_generate_predictions=list(settings.dedupe.blocking_rules),
                em_convergence=settings.em_convergence,
                max_iterations=settings.em_max_iterations,
                retain_matching_columns=False,
                retain_intermediate_calculation_columns=False,
            )
            linker = splink.linker(prepared, creator, frequencies)
            engine.train(linker, settings, settings.dedupe.prior_rules, settings.dedupe.prior_recall,
                         settings.dedupe.training_blocking_rules)
            text = engine.with_frequencies(engine.model_json(linker), frequencies)
        else:
            frequencies = engine.frequencies_of(model)
            text = model if isinstance(model, str) else json.dumps(dict(model), indent=2, sort_keys=True)
            scoring = engine.model_dict(model)
            if previous is not None and frequencies is not None:
                clusters, pairs, figures = _refresh(splink, prepared, scoring, frequencies, previous)
                return DedupeResult(clusters=clusters, pairs=pairs, model=text, figures=figures)
            linker = splink.linker(prepared, scoring, frequencies)
        pairs = _edge_frame(splink.edges(linker), same_id_edges(prepared))
        clusters = splink.clusters(prepared, pairs)
        figures = {"resolved": "all"}
    finally:
        splink.close()
        prepared.unpersist()
    return DedupeResult(clusters=clusters, pairs=pairs, model=text, figures=figures)


def _refresh(splink: _Splink, prepared: DataFrame, model: dict[str, Any], frequencies: Mapping[str, Any],
             previous: Previous) -> tuple[DataFrame, DataFrame, dict[str, Any]]:
    """Resolve again only the clusters a change can reach; keep every other cluster as it was.

    The clusters are the connected components of the match graph, and a
    pair's score depends only on the pair. An edge between two unchanged
    registrations was an edge before, inside one previous cluster. So a
    previous cluster with no changed or removed member and no edge to a
    changed registration is a component as it stands. The others (the
    affected clusters), with the new and changed registrations, are resolved
    afresh among themselves, and no edge leaves them: the result is what
    resolving every registration would give.

    Args:
        splink: the Splink API in use.
        prepared: :func:`prepare_registrations` of every registration now (persisted).
        model: the Splink settings dict.
        frequencies: the model's term frequencies.
        previous: the last resolution with this model.

    Returns:
        Clusters (every registration), the pairs scored among the affected
        ones, and the figures: registrations changed, removed and resolved again.
    """
    before = prepare_registrations(previous.registrations)
    changed = changed_keys(prepared, before).withColumn(CHANGED, F.lit(True))
    flagged = engine.materialize(prepared.join(changed, on="unique_id", how="left")
                                 .fillna(False, subset=[CHANGED]))
    is_changed = flagged.where(F.col(CHANGED)).select("unique_id")
    removed = before.select("unique_id").join(prepared.select("unique_id"), on="unique_id", how="left_anti")
    figures = {"resolved": "changed", "changed_registrations": is_changed.count(),  # a figure reported
               "removed_registrations": removed.count()}  # a figure reported
    # 1. Pairs with a changed side: which previous clusters a change reaches.
    seeds = [is_changed, removed]
    if figures["changed_registrations"]:
        touched = splink.edges(splink.linker(flagged, _only_pairs_with(model, CHANGED), frequencies))
        ids = same_id_edges(prepared)
        seeds += [touched.select(F.col(c).alias("unique_id")) for c in ("registration_key_l", "registration_key_r")]
        for side in ("unique_id_l", "unique_id_r"):
            # Same-voter-id edges with a changed side: both their ends are reached.
            touching = ids.join(is_changed.withColumnRenamed("unique_id", side), on=side, how="left_semi")
            seeds += [touching.select(F.col(end).alias("unique_id")) for end in ("unique_id_l", "unique_id_r")]
    owners = previous.person_ids.where(F.col("person_id").isNotNull()).select(
        F.col("registration_key").alias("unique_id"), "person_id")
    reached = reduce(DataFrame.unionByName, seeds).join(owners, on="unique_id", how="inner").select(
        "person_id").distinct()
    placed = prepared.select("unique_id").join(owners, on="unique_id", how="left")
    # A registration without a previous person is new (so changed): it is resolved again.
    again = placed.join(reached.withColumn("_reached", F.lit(True)), on="person_id", how="left").where(
        F.col("person_id").isNull() | F.col("_reached")).select("unique_id")
    affected = engine.materialize(prepared.join(again, on="unique_id", how="left_semi"))
    figures["registrations_resolved_again"] = affected.count()  # a figure reported; affected is materialized
    # 2. The affected registrations resolved among themselves.
    if figures["registrations_resolved_again"]:
        pairs = _edge_frame(splink.edges(splink.linker(affected, model, frequencies)), same_id_edges(affected))
        fresh = splink.clusters(affected, pairs)
    else:
        pairs = _no_edges(prepared.sparkSession)
        fresh = prepared.sparkSession.createDataFrame([], "registration_key string, cluster_id string")
    kept = placed.join(again, on="unique_id", how="left_anti").select(
        F.col("unique_id").alias("registration_key"),
        F.min("unique_id").over(Window.partitionBy("person_id")).alias("cluster_id"))
    clusters = engine.materialize(fresh.unionByName(kept))
    flagged.unpersist()
    affected.unpersist()
    return clusters, pairs, figures
