"""Stable person ids across refreshes.

Cluster ids change whenever the clustering changes; person ids must not. Each
refresh maps this run's clusters onto the previous run's person ids:

1. **Votes.** Every registration that had a person id in ``previous`` votes
   for that id in its current cluster; a cluster's votes for an id are the
   number of its registrations that carried it.
2. **Owner of an id.** A previous id goes to the cluster with the most votes
   for it; ties go to the cluster whose smallest registration key is smallest.
   So on a **split** the largest part keeps the id and the other parts get new
   ones.
3. **Id of a cluster.** Among the ids a cluster owns, it keeps the one with the
   most votes; ties go to the smallest id. So on a **merge** the cluster keeps
   the id most of its registrations had, and the other ids are retired (never
   handed to another cluster in this run).
4. **New ids.** A cluster that owns no previous id gets
   ``"P" + sha256(smallest registration key)[:16]``; should that id already be
   in ``previous`` (a registration that led an earlier cluster now leads a new
   one), the hash of ``smallest key + "#" + all keys, sorted`` is used instead.
   Both depend only on the cluster's keys, so re-running a refresh gives the
   same ids.

Registrations that left the data simply stop voting; an id whose registrations
all left is retired.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

ID_PREFIX = "P"
HASH_CHARS = 16


def _new_id(text: Column) -> Column:
    return F.concat(F.lit(ID_PREFIX), F.substring(F.sha2(text, 256), 1, HASH_CHARS))


def assign_person_ids(clusters: DataFrame, previous: DataFrame | None) -> DataFrame:
    """Give every cluster a person id, keeping the previous run's ids where they apply.

    Args:
        clusters: ``registration_key, cluster_id`` (one row per registration).
        previous: the last run's ``registration_key, person_id``, or ``None`` on
            the first run.

    Returns:
        ``registration_key, person_id`` for every registration in ``clusters``.
        See the module docstring for how splits, merges and ties are decided.
    """
    members = clusters.select("registration_key", "cluster_id")
    leaders = members.groupBy("cluster_id").agg(
        F.min("registration_key").alias("first_key"),
        F.concat_ws(",", F.array_sort(F.collect_list("registration_key"))).alias("all_keys"),
    )
    if previous is None:
        kept = None
        used = None
    else:
        prev = previous.select("registration_key", F.col("person_id").alias("prev_id")).where(
            F.col("prev_id").isNotNull())
        votes = (
            members.join(prev, on="registration_key", how="inner")
            .groupBy("cluster_id", "prev_id")
            .agg(F.count("*").alias("votes"))
            .join(leaders.select("cluster_id", "first_key"), on="cluster_id", how="inner")
        )
        by_id = Window.partitionBy("prev_id").orderBy(F.col("votes").desc(), F.col("first_key"))
        owned = votes.withColumn("_owner_rank", F.row_number().over(by_id)).where(F.col("_owner_rank") == 1)
        by_cluster = Window.partitionBy("cluster_id").orderBy(F.col("votes").desc(), F.col("prev_id"))
        kept = (
            owned.withColumn("_keep_rank", F.row_number().over(by_cluster))
            .where(F.col("_keep_rank") == 1)
            .select("cluster_id", F.col("prev_id").alias("kept_id"))
        )
        used = prev.select(F.col("prev_id").alias("taken_id")).distinct()

    candidates = leaders.select(
        "cluster_id",
        _new_id(F.col("first_key")).alias("plain_id"),
        _new_id(F.concat_ws("#", F.col("first_key"), F.col("all_keys"))).alias("salted_id"),
    )
    if used is None:
        ids = candidates.select("cluster_id", F.col("plain_id").alias("person_id"))
    else:
        taken = candidates.join(used, on=candidates["plain_id"] == used["taken_id"], how="left")
        fresh = F.when(F.col("taken_id").isNull(), F.col("plain_id")).otherwise(F.col("salted_id"))
        ids = (
            taken.select("cluster_id", fresh.alias("fresh_id"))
            .join(kept, on="cluster_id", how="left")
            .select("cluster_id", F.coalesce(F.col("kept_id"), F.col("fresh_id")).alias("person_id"))
        )
    return members.join(ids, on="cluster_id", how="inner").select("registration_key", "person_id")


def several_voter_ids(registrations: DataFrame) -> DataFrame:
    """Persons whose registrations carry more than one statewide voter id.

    A state issues one id per voter, so each such person is either a true
    duplicate registration or two people merged: the figure to watch.

    Args:
        registrations: ``person_id`` and ``state_voter_id`` of the current registrations.

    Returns:
        ``person_id``, ``voter_ids`` (distinct, sorted) and ``n_ids`` for each such person.
    """
    ids = registrations.where(F.col("state_voter_id").isNotNull()).groupBy("person_id").agg(
        F.array_sort(F.collect_set("state_voter_id")).alias("voter_ids"))
    return ids.select("person_id", "voter_ids", F.size("voter_ids").alias("n_ids")).where(F.col("n_ids") > 1)
