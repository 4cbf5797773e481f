"""Quality and run time of identity resolution on a synthetic state.

Generates (or reuses) a synthetic state, then measures against its ground truth:

* duplicate-registration resolution (:func:`dedupe_registrations`): pairwise
  precision / recall over registrations, plus the recall on the pairs that
  involve a duplicate registration (new NCID, name variant) alone;
* record linkage (:func:`link_records`) of contacts and digital events:
  per-record precision / recall, where a predicted person counts as the true
  one when most of its registrations belong to that true person. For digital
  events the "identifiable" recall only counts events whose phone or e-mail
  appears anywhere in the voter file or in the contact history with their
  true person (the others cannot be linked from the data at all);
* wall times of each step (the machine may be shared; compare ratios).

Run: ``.venv/bin/python bench/resolve_quality.py --voters 200000`` (prints one
JSON document; the state is cached under ``--data`` so reruns skip generation).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import CONF_DIR, SparkSettings, SynthSettings
from votelake.resolve import (
    ResolveSettings,
    assign_person_ids,
    contact_records,
    dedupe_registrations,
    digital_records,
    link_records,
    ncvoter_registrations,
    pairwise_precision_recall,
    record_precision_recall,
)
from votelake.session import build_spark
from votelake.synth.generate import build_frames

FRAMES = ("ncvoter", "contacts", "digital", "truth_registrations", "truth_contacts", "truth_digital")


def synthetic_state(spark: SparkSession, voters: int, seed: int, data: Path) -> dict[str, DataFrame]:
    """The frames of a synthetic state, generated once into ``data`` as Parquet.

    Args:
        spark: the session.
        voters: persons in the state.
        seed: generator seed.
        data: cache folder for this size and seed.

    Returns:
        Frame name -> DataFrame read from the cache.
    """
    if not all((data / name / "_SUCCESS").exists() or any((data / name).glob("*.parquet")) for name in FRAMES):
        frames = build_frames(spark, SynthSettings(voters=voters, seed=seed, partitions=2, out=data),
                              CONF_DIR / "layouts")
        for name in FRAMES:
            frames[name].write.mode("overwrite").parquet(str(data / name))
    return {name: spark.read.parquet(str(data / name)) for name in FRAMES}


def registration_truth(truth_registrations: DataFrame) -> DataFrame:
    """``registration_key, true_person`` from the registration ground truth."""
    key = F.concat(F.lit("NC:"), F.col("county_id").cast("string"), F.lit("-"), F.col("voter_reg_num"))
    return truth_registrations.select(key.alias("registration_key"),
                                      F.col("person_id").cast("string").alias("true_person"))


def person_to_truth(ids: DataFrame, truth: DataFrame) -> DataFrame:
    """Each predicted person's majority true person (ties: smallest id)."""
    counts = ids.join(truth, on="registration_key", how="inner").groupBy("person_id", "true_person").count()
    return (counts.groupBy("person_id")
            .agg(F.max_by("true_person", F.struct(F.col("count"), -F.length("true_person"))).alias("mapped")))


def timed(fn, *args, **kwargs):
    """Call ``fn`` and return its result with the wall time in seconds."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - start, 1)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print (and optionally write) its JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", type=Path, default=None, help="cache folder (default /tmp/votelake-resolve-bench)")
    parser.add_argument("--shuffle-partitions", type=int, default=4)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    data = (args.data or Path("/tmp/votelake-resolve-bench")) / f"v{args.voters}-s{args.seed}"
    os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
    spark = build_spark(SparkSettings(
        master="local[2]", app_name="resolve-bench", shuffle_partitions=args.shuffle_partitions,
        driver_memory=args.driver_memory,
        conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false"},
    ))
    settings = ResolveSettings()
    result: dict = {"voters": args.voters, "seed": args.seed, "settings": settings.model_dump(mode="json")}

    frames, result["generate_s"] = timed(synthetic_state, spark, args.voters, args.seed, data)
    regs = ncvoter_registrations(frames["ncvoter"]).persist()
    truth = registration_truth(frames["truth_registrations"]).persist()
    result["registrations"] = regs.count()

    dedupe, result["dedupe_s"] = timed(dedupe_registrations, spark, regs, settings)
    pairwise = pairwise_precision_recall(dedupe.clusters, truth)
    result["dedupe"] = pairwise.as_dict()
    dup_persons = (frames["truth_registrations"].where(F.col("is_duplicate"))
                   .select(F.col("person_id").cast("string").alias("true_person")).distinct())
    dup_truth = truth.join(dup_persons, on="true_person", how="inner")
    dup_only = pairwise_precision_recall(
        dedupe.clusters.join(dup_truth.select("registration_key"), on="registration_key", how="inner"), dup_truth)
    result["dedupe"]["duplicate_pairs"] = dup_only.true_pairs
    result["dedupe"]["duplicate_pair_recall"] = dup_only.recall
    result["dedupe"]["splink_edges"] = dedupe.pairs.where(F.col("matched_by") == "splink").count()

    def first_ids() -> DataFrame:
        out = assign_person_ids(dedupe.clusters, None).persist()
        out.count()
        return out

    ids, result["assign_ids_s"] = timed(first_ids)
    persons = regs.join(ids, on="registration_key", how="inner").select(
        "person_id", "state_voter_id", "first_name", "last_name", "address_key", "zip5", "phone", "email")
    contacts = contact_records(frames["contacts"])
    digital = digital_records(frames["digital"])
    records = contacts.unionByName(digital)
    linked, result["link_s"] = timed(link_records, spark, records, persons, settings)
    mapping = person_to_truth(ids, truth)
    links = linked.links.join(mapping, on="person_id", how="left").select("record_id", F.col("mapped"))
    record_truth = (
        frames["truth_contacts"].select(F.col("contact_id").alias("record_id"), "person_id")
        .unionByName(frames["truth_digital"].select(F.col("event_id").alias("record_id"), "person_id"))
        .select("record_id", F.col("person_id").cast("string").alias("true_person")).persist()
    )
    contact_ids = contacts.select("record_id")
    digital_ids = digital.select("record_id")
    result["link"] = {
        "all": record_precision_recall(links, record_truth).as_dict(),
        "contacts": record_precision_recall(links, record_truth.join(contact_ids, "record_id", "inner")).as_dict(),
        "digital": record_precision_recall(links, record_truth.join(digital_ids, "record_id", "inner")).as_dict(),
        "matched_by": {r["matched_by"]: r["count"] for r in linked.links.groupBy("matched_by").count().collect()},
    }
    # Digital events whose phone / e-mail is known anywhere with their true person.
    known = (
        regs.join(truth, on="registration_key", how="inner").select("phone", F.lit(None).cast("string").alias("email"),
                                                                     "true_person")
        .unionByName(contacts.join(record_truth, on="record_id", how="inner").select("phone", "email", "true_person"))
    )
    known_phone = known.where(F.col("phone").isNotNull()).select("phone", F.col("true_person").alias("kp")).distinct()
    known_email = known.where(F.col("email").isNotNull()).select("email", F.col("true_person").alias("ke")).distinct()
    identifiable = (
        digital.join(record_truth, on="record_id", how="inner")
        .join(known_phone, on="phone", how="left").join(known_email, on="email", how="left")
        .where((F.col("kp") == F.col("true_person")) | (F.col("ke") == F.col("true_person")))
        .select("record_id", "true_person").distinct()
    )
    result["link"]["digital_identifiable"] = record_precision_recall(links, identifiable).as_dict()

    # Refresh: the same state scored with the saved models (no training) keeps every person id.
    rescored, result["dedupe_with_saved_model_s"] = timed(dedupe_registrations, spark, regs, settings, dedupe.model)
    ids2 = assign_person_ids(rescored.clusters, ids)
    result["refresh_person_ids_changed"] = (
        ids2.join(ids.withColumnRenamed("person_id", "before"), on="registration_key", how="inner")
        .where(F.col("person_id") != F.col("before")).count())
    print(json.dumps(result, indent=2, sort_keys=True))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    spark.stop()
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
