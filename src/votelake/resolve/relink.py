"""Linking records to persons, again only where a change can reach them.

A record's link comes in two parts:

* a **local** part that depends on the record and the person rows only: the
  rules' first pass (the first key owned by exactly one person), the
  deterministic keys and the model's best person (the model keeps its term
  frequencies, so a pair's score depends only on the pair);
* a **global** part over every record: phones and e-mails that linked records
  carry become keys for the records still unlinked, and the rules' link is
  preferred to the model's.

A refresh keeps the local part of every record no change reaches and computes
it for the others: new records, records sharing a key value with a person row
that changed (added, removed, or now another person's), and records the model
scores at or above its threshold with such a row (old or new). The global part
is then computed over all records, as it is cheap (joins, no scoring). The
result is what linking every record gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.resolve import engine, link, rules
from votelake.resolve.settings import ResolveSettings

Method = Literal["rules", "splink"]
# What a record's link keeps between builds: the rules' first pass and the model's local pass.
LOCAL_COLUMNS = ("rule_person", "rule_matched_by", *link.LOCAL_COLUMNS)


@dataclass(frozen=True)
class PreviousLinks:
    """What the last build linked: each record's local part, and the person rows that changed since.

    Attributes:
        local: ``record_id`` and :data:`LOCAL_COLUMNS` of the records it linked.
        changed: person rows (``person_id, state_voter_id, first_name,
            last_name, address_key, zip5, phone, email``) in the rows it linked
            to or in the rows now, not in both (:func:`changed_rows`).
    """

    local: DataFrame
    changed: DataFrame


def changed_rows(before: DataFrame, now: DataFrame) -> DataFrame:
    """The rows in one of two frames and not in the other (nulls compare equal, as in SQL's EXCEPT).

    Args:
        before: rows linked to before.
        now: the same columns now.

    Returns:
        The distinct rows of either side missing from the other.
    """
    return before.subtract(now).unionByName(now.subtract(before)).distinct()


def local_links(spark: SparkSession, records: DataFrame, persons: DataFrame, settings: ResolveSettings,
                model: str | Mapping[str, Any] | None, method: Method) -> tuple[DataFrame, str | None]:
    """The local part of each record's link (the rules' first pass; with Splink, its deterministic and model pass).

    Args:
        spark: the session.
        records: rows in :data:`~votelake.resolve.inputs.RECORD_SCHEMA`, ``record_id`` unique.
        persons: the person rows.
        settings: resolution settings (``link``).
        model: the link model (None: Splink trains one; unused with ``rules``).
        method: ``splink`` (the rules' link, then the model's) or ``rules``.

    Returns:
        ``record_id`` and :data:`LOCAL_COLUMNS` for every record (materialized),
        and the model JSON when one was trained or used (else None).
    """
    by_keys = rules.link_by_person_keys(records, persons).select(
        "record_id", F.col("person_id").alias("rule_person"), F.col("matched_by").alias("rule_matched_by"))
    if method == "rules":
        nulls = [F.lit(None).cast("double" if c == "splink_probability" else "string").alias(c)
                 for c in link.LOCAL_COLUMNS]
        return engine.materialize(by_keys.select("*", *nulls)), None
    modelled, trained = link.local_links(spark, records, persons, settings, model=model)
    local = engine.materialize(by_keys.join(modelled, on="record_id", how="inner").select(
        "record_id", *LOCAL_COLUMNS))
    modelled.unpersist()
    return local, trained


def final_links(local: DataFrame, records: DataFrame, persons: DataFrame, settings: ResolveSettings,
                method: Method) -> DataFrame:
    """Each record's link from the local parts of all records.

    Args:
        local: :func:`local_links` of every record.
        records: the records (``record_id``, ``phone``, ``email``).
        persons: the person rows.
        settings: resolution settings.
        method: see :func:`local_links`.

    Returns:
        ``record_id, person_id, match_probability, matched_by`` for every record.
    """
    first = local.select("record_id", F.col("rule_person").alias("person_id"),
                         F.col("rule_matched_by").alias("matched_by")).join(
        records.select("record_id", "phone", "email"), on="record_id", how="inner")
    by_rules = rules.link_by_learnt_keys(first)
    if method == "rules":
        return by_rules
    return prefer_first(by_rules, link.finish_links(local, records, persons, settings))


def prefer_first(first: DataFrame, second: DataFrame) -> DataFrame:
    """Per record, the first linkage's person where it found one, else the second's.

    A unique exact key (name and address, ...) is as sure as a phone: the
    rules' link wins, the model's fills in the records the rules leave.

    Args:
        first: ``record_id, person_id, match_probability, matched_by`` (every record).
        second: the same columns for the same records.

    Returns:
        One row per record in the same columns.
    """
    found = F.col("f.person_id").isNotNull()
    return first.alias("f").join(second.alias("s"), on="record_id", how="left").select(
        "record_id",
        *[F.when(found, F.col(f"f.{c}")).otherwise(F.col(f"s.{c}")).alias(c)
          for c in ("person_id", "match_probability")],
        F.when(found, F.col("f.matched_by")).otherwise(F.coalesce(F.col("s.matched_by"), F.lit("none")))
        .alias("matched_by"),
    )


def reached(spark: SparkSession, records: DataFrame, changed: DataFrame, settings: ResolveSettings,
            model: str | Mapping[str, Any] | None, method: Method) -> DataFrame:
    """The records whose local part a changed person row can change.

    Args:
        spark: the session.
        records: the records kept from the last build.
        changed: :func:`changed_rows` of the person rows.
        settings: resolution settings.
        model: the link model (with ``splink``; it keeps its term frequencies).
        method: see :func:`local_links`.

    Returns:
        ``record_id`` of each record sharing a key of :data:`~votelake.resolve.rules.LINK_KEYS`
        with a changed row, or scored at or above the threshold with one.
    """
    def long(df: DataFrame, *keep: str) -> DataFrame:
        # One row per present key value, so that one join finds every shared key.
        pairs = F.explode(F.array(*[F.struct(F.lit(name).alias("key"), F.col(name).alias("value"))
                                    for name in rules.LINK_KEYS]))
        return df.select(*keep, pairs.alias("_k")).select(*keep, "_k.key", "_k.value").where(
            F.col("value").isNotNull())

    keys = long(rules.with_link_keys(changed)).distinct()
    by_key = long(rules.claimed_keys(records, "record_id"), "record_id").join(
        keys, on=["key", "value"], how="left_semi").select("record_id")
    # A row or none: with no changed row, the model has nothing to score.
    if method == "rules" or changed.limit(1).count() == 0:
        return by_key.distinct()
    by_model = link.reached_records(spark, records, changed, settings, model)
    return by_key.unionByName(by_model).distinct()


def relink(spark: SparkSession, records: DataFrame, persons: DataFrame, settings: ResolveSettings,
           model: str | Mapping[str, Any] | None, method: Method = "splink", previous: PreviousLinks | None = None,
           ) -> tuple[DataFrame, str | None, dict[str, Any]]:
    """The local part of every record's link: kept from ``previous`` where no change reaches it.

    Args:
        spark: the session.
        records: rows in :data:`~votelake.resolve.inputs.RECORD_SCHEMA`, ``record_id`` unique (persisted).
        persons: the person rows now.
        settings: resolution settings.
        model: the link model (None: train one); a refresh needs one that keeps its term frequencies.
        method: see :func:`local_links`.
        previous: the last build's links, or None to link every record.

    Returns:
        ``record_id`` and :data:`LOCAL_COLUMNS` of every record (materialized; pass it to
        :func:`final_links`), the model JSON (None when not needed), and the figures
        (``linked_again``: ``all``, or the count of records linked again).
    """
    if previous is None:
        local, trained = local_links(spark, records, persons, settings, model, method)
        return local, trained, {"linked_again": "all"}
    kept = previous.local.join(records.select("record_id"), on="record_id", how="left_semi")
    seen = kept.select("record_id")
    new = records.join(seen, on="record_id", how="left_anti").select("record_id")
    again = new.unionByName(reached(spark, records.join(seen, on="record_id", how="left_semi"), previous.changed,
                                    settings, model, method)).distinct()
    again = engine.materialize(again)
    figures = {"linked_again": again.count()}  # a figure reported; materialized, read twice below
    fresh, trained = local_links(spark, records.join(again, on="record_id", how="left_semi"), persons, settings,
                                 model, method)
    local = engine.materialize(fresh.unionByName(kept.join(again, on="record_id", how="left_anti").select(
        "record_id", *LOCAL_COLUMNS)))
    fresh.unpersist()
    again.unpersist()
    return local, trained, figures
