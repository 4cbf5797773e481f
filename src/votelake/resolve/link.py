"""Linking contact-history and digital records to resolved persons.

Rules are tried in order of trust; the first that finds a person wins:

1. ``state_voter_id``: the record's claimed state voter id belongs to exactly
   one person;
2. ``phone`` / ``email``: the record's phone (then e-mail) belongs to exactly one
   person in the person table;
3. ``splink``: a Splink ``link_only`` model over first name (with nicknames),
   last name, residence (street line and ZIP) and phone scores the record
   against every registration of the candidate persons; the best person wins
   when its probability reaches ``link.match_threshold`` and no other person
   scores within ``link.ambiguity_margin`` of it;
4. ``record_phone`` / ``record_email`` (when ``link.propagate_record_keys``): a
   phone or e-mail carried by records linked in steps 1-3 that points at
   exactly one person (counting the person table too) links the records still
   unlinked, e.g. web events keyed by an e-mail a canvasser recorded.

Records no rule links keep a null ``person_id`` and ``matched_by = "none"``;
nothing is dropped. Deterministic links carry ``match_probability`` 1.0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Mapping

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from votelake.resolve import engine
from votelake.resolve.nicknames import first_name_aliases
from votelake.resolve.settings import ResolveSettings

logger = logging.getLogger(__name__)

RECORD_PREFIX = "r:"
PERSON_PREFIX = "p:"
_COMPARED = ["first_name", "first_name_aliases", "last_name", "last_name_soundex", "address_key", "zip5",
             "phone", "email"]


@dataclass(frozen=True)
class LinkResult:
    """What :func:`link_records` found.

    Attributes:
        links: ``record_id, person_id, match_probability, matched_by``, one row
            per input record (``person_id`` null and ``matched_by = "none"``
            when unlinked).
        model: the Splink model as JSON text, or ``None`` when no record
            needed the probabilistic step.
    """

    links: DataFrame
    model: str | None

    def unpersist(self) -> None:
        """Release the materialized links."""
        self.links.unpersist()


def _compared_columns() -> list[Column | str]:
    return [
        "first_name",
        first_name_aliases(F.col("first_name")).alias("first_name_aliases"),
        "last_name",
        F.when(F.col("last_name").isNotNull(), F.soundex("last_name")).alias("last_name_soundex"),
        "address_key",
        "zip5",
        "phone",
        "email",
    ]


def prepare_records(records: DataFrame) -> DataFrame:
    """Records as the left input of the Splink model.

    Args:
        records: rows in :data:`~votelake.resolve.inputs.RECORD_SCHEMA`.

    Returns:
        ``unique_id`` (``"r:" + record_id``) and the compared columns.
    """
    return records.select(F.concat(F.lit(RECORD_PREFIX), F.col("record_id")).alias("unique_id"),
                          *_compared_columns())


def prepare_persons(persons: DataFrame) -> DataFrame:
    """Distinct person rows as the right input of the Splink model.

    Args:
        persons: rows in :data:`~votelake.resolve.inputs.PERSON_SCHEMA`.

    Returns:
        ``unique_id`` (``"p:" + person_id + ":" + a hash of the row``),
        ``person_id`` and the compared columns.
    """
    fields = ["first_name", "last_name", "address_key", "zip5", "phone", "email"]
    distinct = persons.select("person_id", *fields).dropDuplicates()
    row_hash = F.substring(F.sha2(F.concat_ws("|", *[F.coalesce(F.col(c), F.lit("")) for c in fields]), 256), 1, 16)
    return distinct.select(
        F.concat(F.lit(PERSON_PREFIX), F.col("person_id"), F.lit(":"), row_hash).alias("unique_id"),
        "person_id",
        *_compared_columns(),
    )


def unique_owners(keyed: DataFrame, key: str, owner: str = "person_id") -> DataFrame:
    """Key values that belong to exactly one owner.

    Args:
        keyed: rows with the key and owner columns (nulls ignored).
        key: the key column (phone, e-mail, state voter id).
        owner: the owner column.

    Returns:
        ``key`` and ``<key>_owner``.
    """
    return (
        keyed.where(F.col(key).isNotNull() & F.col(owner).isNotNull())
        .groupBy(key)
        .agg(F.countDistinct(owner).alias("_owners"), F.min(owner).alias(f"{key}_owner"))
        .where(F.col("_owners") == 1)
        .select(key, f"{key}_owner")
    )


def link_comparisons(settings: ResolveSettings, present: set[str],
                     key_u: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """The comparisons of the record-to-person model.

    Args:
        settings: resolution settings.
        present: columns that hold data on both sides (``phone``, ``email``).
        key_u: counted u probabilities of the key-like levels.

    Returns:
        Splink comparison dicts.
    """
    key_u = key_u or {}
    comparisons = [
        engine.first_name_comparison(settings),
        engine.last_name_comparison(settings),
        engine.location_comparison(settings, with_unit=False, with_city=False,
                                   u_same_address=key_u.get("address")),
    ]
    if "phone" in present:
        comparisons.append(engine.exact_comparison("phone", "phone", key_u.get("phone")))
    if "email" in present:
        comparisons.append(engine.exact_comparison("email", "e-mail", key_u.get("email")))
    return comparisons


def _deterministic(recs: DataFrame, persons: DataFrame, settings: ResolveSettings) -> DataFrame:
    """Records with the first deterministic link found (columns ``det_person``, ``det_rule``)."""
    ls = settings.link
    out = recs
    rules: list[tuple[str, str]] = []
    if ls.use_state_voter_id:
        ids = unique_owners(persons, "state_voter_id").withColumnRenamed("state_voter_id", "claimed_state_voter_id")
        out = out.join(ids, on="claimed_state_voter_id", how="left")
        rules.append(("state_voter_id_owner", "state_voter_id"))
    if ls.use_phone:
        out = out.join(unique_owners(persons, "phone"), on="phone", how="left")
        rules.append(("phone_owner", "phone"))
    if ls.use_email:
        out = out.join(unique_owners(persons, "email"), on="email", how="left")
        rules.append(("email_owner", "email"))
    person = F.coalesce(*[F.col(c) for c, _ in rules]) if rules else F.lit(None).cast("string")
    rule = F.lit(None).cast("string")
    for column, name in reversed(rules):
        rule = F.when(F.col(column).isNotNull(), F.lit(name)).otherwise(rule)
    return out.select(*recs.columns, person.alias("det_person"), rule.alias("det_rule"))


def _best_person(scored: DataFrame, person_rows: DataFrame, margin: float, threshold: float) -> DataFrame:
    """Per record, the best-scoring person when it is clear enough.

    Args:
        scored: Splink predictions (``unique_id_l/_r``, ``match_probability``).
        person_rows: ``unique_id, person_id`` of the right input.
        margin: required lead over the runner-up person.
        threshold: minimum probability.

    Returns:
        ``record_id, splink_person, splink_probability``.
    """
    left_is_record = F.col("unique_id_l").startswith(RECORD_PREFIX)
    pairs = scored.select(
        F.when(left_is_record, F.col("unique_id_l")).otherwise(F.col("unique_id_r")).alias("record_uid"),
        F.when(left_is_record, F.col("unique_id_r")).otherwise(F.col("unique_id_l")).alias("unique_id"),
        "match_probability",
    ).join(person_rows, on="unique_id", how="inner")
    per_person = pairs.groupBy("record_uid", "person_id").agg(F.max("match_probability").alias("p"))
    by_score = Window.partitionBy("record_uid").orderBy(F.col("p").desc(), "person_id")
    ranked = per_person.select("*", F.row_number().over(by_score).alias("_rank"),
                               F.lead("p").over(by_score).alias("_runner_up"))
    clear = (F.col("_rank") == 1) & (F.col("p") >= threshold) & (
        F.col("_runner_up").isNull() | (F.col("p") - F.col("_runner_up") > margin))
    return ranked.where(clear).select(
        F.expr(f"substring(record_uid, {len(RECORD_PREFIX) + 1})").alias("record_id"),
        F.col("person_id").alias("splink_person"),
        F.col("p").alias("splink_probability"),
    )


def _train_link_model(db_api, records: DataFrame, persons: DataFrame, persons_table, settings: ResolveSettings,
                      registered: list) -> str:
    """Train the record-to-person model on ``records`` against the person rows.

    Args:
        db_api: the Splink API (:func:`~votelake.resolve.engine.spark_api`).
        records: :func:`prepare_records` of the records to train on.
        persons: :func:`prepare_persons` without ``person_id``.
        persons_table: ``persons`` registered with ``db_api``.
        settings: resolution settings (``link``).
        registered: the tables registered here are added to it (for :func:`~votelake.resolve.engine.close`).

    Returns:
        The model JSON with the term frequencies it was trained with.
    """
    from splink import Linker, SettingsCreator

    ls = settings.link
    records_table = db_api.register(records, dataset_display_name=f"__votelake_training_records_{db_api.id}")
    registered.append(records_table)
    keys = ["phone", "email"]
    present = engine.present_columns(records, keys) & engine.present_columns(persons, keys)
    key_u = {"address": engine.key_collision_u(persons, "address_key", "zip5")}
    key_u.update({c: engine.key_collision_u(persons, c) for c in present})
    comparisons = [engine.with_default_m(c) for c in link_comparisons(settings, present, key_u)]
    both = records.unionByName(persons)  # the values term frequencies are counted over (Splink's own choice)
    frequencies = engine.term_frequencies(both, engine.tf_columns({"comparisons": comparisons}))
    creator = SettingsCreator(
        link_type="link_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=list(ls.blocking_rules),
        em_convergence=settings.em_convergence,
        max_iterations=settings.em_max_iterations,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker([records_table, persons_table], creator, log_level=None)
    registered += engine.register_term_frequencies(db_api, linker, both, frequencies)
    engine.train(linker, settings, ls.prior_rules, ls.prior_recall, ls.training_blocking_rules)
    return engine.with_frequencies(engine.model_json(linker), frequencies) if frequencies else \
        engine.model_json(linker)


def _splink_links(spark: SparkSession, candidates: DataFrame, persons: DataFrame, settings: ResolveSettings,
                  model: str | Mapping[str, Any] | None, reached_only: bool = False,
                  train_on: DataFrame | None = None) -> tuple[DataFrame, str]:
    """Score candidate records against persons with Splink (train when no model is given).

    A trained model keeps the name frequencies it was trained with
    (:func:`~votelake.resolve.engine.term_frequencies` over both inputs), so
    that a pair's score depends only on the pair and a refresh can score only
    the records a change reaches. A model saved without them scores with the
    frequencies of its input, as Splink does.

    Args:
        spark: the session.
        candidates: the records to score.
        persons: the person rows to score them against.
        settings: resolution settings (``link``).
        model: a saved link model, or None to train one.
        reached_only: return only the ids of the records with a pair at or
            above ``link.match_threshold`` (``record_id``), not their best person.
        train_on: the records to train on, when no model is given.

    Returns:
        ``record_id, splink_person, splink_probability`` of the records with a
        clear best person (or the reached ``record_id``), materialized, and the model JSON.
    """
    from splink import Linker

    ls = settings.link
    left = prepare_records(candidates).persist()
    right_full = prepare_persons(persons).persist()
    right = right_full.drop("person_id")
    training = prepare_records(train_on).persist() if model is None else None
    db_api = engine.spark_api(spark, settings)
    registered: list = []
    try:
        persons_table = db_api.register(right, dataset_display_name=f"__votelake_persons_{db_api.id}")
        registered.append(persons_table)
        if model is None:
            model = _train_link_model(db_api, training, right, persons_table, settings, registered)
        # The candidates are scored by the model as saved, whether trained now or before: the same scores.
        records_table = db_api.register(left, dataset_display_name=f"__votelake_records_{db_api.id}")
        registered.append(records_table)
        linker = Linker([records_table, persons_table], engine.model_dict(model), log_level=None)
        frequencies = engine.frequencies_of(model)
        if frequencies:
            registered += engine.register_term_frequencies(db_api, linker, left.unionByName(right), frequencies)
        scored = linker.inference.predict(threshold_match_probability=ls.match_threshold).as_spark_dataframe()
        if reached_only:
            left_is_record = F.col("unique_id_l").startswith(RECORD_PREFIX)
            uid = F.when(left_is_record, F.col("unique_id_l")).otherwise(F.col("unique_id_r"))
            best = engine.materialize(scored.where(F.col("match_probability") >= ls.match_threshold).select(
                F.regexp_replace(uid, f"^{RECORD_PREFIX}", "").alias("record_id")).distinct())
        else:
            best = engine.materialize(_best_person(
                scored, right_full.select("unique_id", "person_id"), ls.ambiguity_margin, ls.match_threshold))
        model_text = model if isinstance(model, str) else json.dumps(dict(model), indent=2, sort_keys=True)
    finally:
        engine.close(db_api, registered)
        for frame in (left, right_full, training):
            if frame is not None:
                frame.unpersist()
    return best, model_text


# What the model's pass keeps of each record: it depends on the record and the persons only.
LOCAL_COLUMNS = ("det_person", "det_rule", "splink_person", "splink_probability")


def _named() -> Column:
    """Records the model can work with: a name. Records with only a phone or an
    e-mail (digital events) are left to the key rules."""
    return F.col("last_name").isNotNull() & (F.col("first_name").isNotNull() | F.col("address_key").isNotNull())


def _record_columns(records: DataFrame) -> DataFrame:
    return records.select("record_id", "claimed_state_voter_id", "first_name", "last_name", "address_key",
                          "zip5", "phone", "email")


def local_links(spark: SparkSession, records: DataFrame, persons: DataFrame, settings: ResolveSettings,
                model: str | Mapping[str, Any] | None = None) -> tuple[DataFrame, str | None]:
    """Each record's deterministic link and the model's best person: what depends on it and the persons only.

    Args:
        spark: the running session.
        records: rows in :data:`~votelake.resolve.inputs.RECORD_SCHEMA`, ``record_id`` unique.
        persons: rows in :data:`~votelake.resolve.inputs.PERSON_SCHEMA`.
        settings: resolution settings (``link`` section).
        model: a saved link model, or None to train one on the records that carry a name.

    Returns:
        ``record_id`` and :data:`LOCAL_COLUMNS` for every record (materialized; the model's
        columns are null where a key linked the record), and the model JSON (None when no
        record needed the model).
    """
    first = _deterministic(_record_columns(records), persons, settings).persist()
    try:
        named = first.where(_named()).drop("det_person", "det_rule")
        # The model scores only the named records no key links: a key's person wins over the model's
        # (finish_links), so scoring the others would be work whose result is never used.
        unlinked = first.where(_named() & F.col("det_person").isNull()).drop("det_person", "det_rule")
        # A row or none: whether any named record is left for the model.
        has_candidates = unlinked.limit(1).count() > 0
        trained: str | None = None
        if has_candidates:
            # Trained on every named record (more pairs for EM).
            best, trained = _splink_links(spark, unlinked, persons, settings, model, train_on=named)
            local = first.join(best, on="record_id", how="left")
        else:
            local = first.select("*", F.lit(None).cast("string").alias("splink_person"),
                                 F.lit(None).cast("double").alias("splink_probability"))
        local = engine.materialize(local.select("record_id", *LOCAL_COLUMNS))
    finally:
        first.unpersist()
    return local, trained


def finish_links(local: DataFrame, records: DataFrame, persons: DataFrame, settings: ResolveSettings) -> DataFrame:
    """The links from each record's :func:`local_links`, then the keys linked records carry (over all records).

    Args:
        local: :func:`local_links` of every record.
        records: the records (``record_id``, ``phone``, ``email``).
        persons: the person rows linked to.
        settings: resolution settings (``link.propagate_record_keys``).

    Returns:
        ``record_id, person_id, match_probability, matched_by`` for every record.
    """
    pass1 = records.select("record_id", "phone", "email").join(local, on="record_id", how="inner").select(
        "record_id", "phone", "email",
        F.coalesce("det_person", "splink_person").alias("person_id"),
        F.when(F.col("det_person").isNotNull(), F.col("det_rule"))
        .when(F.col("splink_person").isNotNull(), F.lit("splink")).alias("matched_by"),
        F.when(F.col("det_person").isNotNull(), F.lit(1.0))
        .otherwise(F.col("splink_probability")).alias("match_probability"),
    )
    if settings.link.propagate_record_keys:
        pass1 = _propagate(pass1, persons)
    return pass1.select(
        "record_id",
        "person_id",
        "match_probability",
        F.coalesce(F.col("matched_by"), F.lit("none")).alias("matched_by"),
    )


def reached_records(spark: SparkSession, records: DataFrame, persons: DataFrame, settings: ResolveSettings,
                    model: str | Mapping[str, Any]) -> DataFrame:
    """The named records the model scores at or above ``link.match_threshold`` with any of the person rows.

    Args:
        spark: the running session.
        records: rows in :data:`~votelake.resolve.inputs.RECORD_SCHEMA`.
        persons: person rows (a refresh passes those that changed).
        settings: resolution settings.
        model: the link model (keeping its term frequencies, so a score depends only on the pair).

    Returns:
        ``record_id`` of each such record, materialized.
    """
    reached, _ = _splink_links(spark, _record_columns(records).where(_named()), persons, settings, model,
                               reached_only=True)
    return reached


def link_records(
    spark: SparkSession,
    records: DataFrame,
    persons: DataFrame,
    settings: ResolveSettings,
    model: str | Mapping[str, Any] | None = None,
) -> LinkResult:
    """Link contact-history and digital records to persons.

    Args:
        spark: the running session (Splink runs its SQL through it).
        records: rows in :data:`~votelake.resolve.inputs.RECORD_SCHEMA`,
            ``record_id`` unique; any other column may be null.
        persons: rows in :data:`~votelake.resolve.inputs.PERSON_SCHEMA` (one row
            per registration of a person is fine).
        settings: resolution settings (``link`` section).
        model: a saved Splink link model (JSON text or dict); ``None`` trains
            one on the records that carry a name.

    Returns:
        A :class:`LinkResult`: one link row per record (see the module
        docstring for the rules and their order) and the model JSON.
    """
    local, trained = local_links(spark, records, persons, settings, model)
    links = engine.materialize(finish_links(local, records, persons, settings))
    local.unpersist()
    return LinkResult(links=links, model=trained)


def _propagate(pass1: DataFrame, persons: DataFrame) -> DataFrame:
    """Link still-unlinked records by phones/e-mails that linked records tie to one person."""
    out = pass1
    for key in ("phone", "email"):
        evidence = (
            pass1.where(F.col("person_id").isNotNull()).select(key, "person_id")
            .unionByName(persons.select(key, "person_id"))
        )
        owners = unique_owners(evidence, key).withColumnRenamed(f"{key}_owner", f"record_{key}_owner")
        out = out.join(owners, on=key, how="left")
    propagated = F.coalesce("record_phone_owner", "record_email_owner")
    unlinked = F.col("person_id").isNull()
    rule = F.when(F.col("record_phone_owner").isNotNull(), F.lit("record_phone")).otherwise(F.lit("record_email"))
    return out.select(
        *[c for c in pass1.columns if c not in ("person_id", "matched_by", "match_probability")],
        F.when(unlinked, propagated).otherwise(F.col("person_id")).alias("person_id"),
        F.when(unlinked & propagated.isNotNull(), rule).otherwise(F.col("matched_by")).alias("matched_by"),
        F.when(unlinked & propagated.isNotNull(), F.lit(1.0)).otherwise(F.col("match_probability"))
        .alias("match_probability"),
    )
