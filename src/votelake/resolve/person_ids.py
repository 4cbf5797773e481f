"""Stable person ids: clusters of registrations keep their person_id across refreshes."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def new_person_id(cluster_id: Column, salt: Column | None = None) -> Column:
    """A deterministic id for a cluster seen for the first time: ``P`` + 16 hex digits.

    Args:
        cluster_id: the cluster's id (its smallest registration key).
        salt: an optional suffix, used only to step around an id already taken.

    Returns:
        The id.
    """
    seed = cluster_id if salt is None else F.concat_ws("#", cluster_id, salt)
    return F.concat(F.lit("P"), F.substring(F.sha2(seed, 256), 1, 16))


def assign_person_ids(clusters: DataFrame, previous: DataFrame | None) -> DataFrame:
    """Give every cluster a person_id, keeping the ids of the previous refresh.

    A cluster takes the previous person_id held by most of its registrations
    (ties: the smaller id). When a person was split, the part holding most of
    their registrations (ties: the smaller cluster id) keeps the id and the
    other parts get new ones; when persons merged, the merged cluster keeps the
    id of the larger of them. A new id is a hash of the cluster id, stepped
    aside if a previous person already has it.

    Args:
        clusters: ``registration_key, cluster_id`` for every registration.
        previous: ``registration_key, person_id`` of the last refresh, or None.

    Returns:
        ``registration_key, person_id`` for every registration of ``clusters``.
    """
    if previous is None:
        return clusters.select("registration_key", new_person_id(F.col("cluster_id")).alias("person_id"))
    votes = (clusters.join(previous, on="registration_key", how="inner")
             .groupBy("cluster_id", "person_id").agg(F.count("*").alias("_votes")))
    by_cluster = Window.partitionBy("cluster_id").orderBy(F.desc("_votes"), "person_id")
    preferred = votes.select("*", F.row_number().over(by_cluster).alias("_rank")).where(F.col("_rank") == 1)
    by_person = Window.partitionBy("person_id").orderBy(F.desc("_votes"), "cluster_id")
    kept = (preferred.select("cluster_id", "person_id", F.row_number().over(by_person).alias("_claim"))
            .where(F.col("_claim") == 1).select("cluster_id", F.col("person_id").alias("_kept")))
    taken = previous.select(F.col("person_id").alias("_taken")).distinct()
    ids = clusters.select("cluster_id").distinct().join(kept, on="cluster_id", how="left")
    fresh = new_person_id(F.col("cluster_id"))
    candidates = ids.select("cluster_id", "_kept", fresh.alias("_fresh")).join(
        taken, F.col("_fresh") == F.col("_taken"), how="left")
    chosen = candidates.select(
        "cluster_id",
        F.coalesce(
            F.col("_kept"),
            F.when(F.col("_taken").isNull(), F.col("_fresh")).otherwise(new_person_id(F.col("cluster_id"), F.lit("1"))),
        ).alias("person_id"),
    )
    return clusters.join(chosen, on="cluster_id", how="inner").select("registration_key", "person_id")
