"""Identity resolution with real Splink on the shared local SparkSession.

Unit behaviour runs on small hand-built DataFrames (deterministic NCID rule,
stable person ids through merges and splits, unmatched records kept); one
module fixture resolves a 5,000-voter synthetic state end to end and checks
precision and recall against its ground truth. The model trained there is
reused (as saved JSON) to score the hand-built data, which exercises loading a
versioned model.
"""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.config import CONF_DIR, SynthSettings
from votelake.resolve import (
    PERSON_SCHEMA,
    Previous,
    RECORD_SCHEMA,
    REGISTRATION_SCHEMA,
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
from votelake.resolve.ids import HASH_CHARS
from votelake.resolve.link import local_links
from votelake.synth.generate import build_outputs, build_registrations

LAYOUTS = CONF_DIR / "layouts"
CLUSTERS = T.StructType([
    T.StructField("registration_key", T.StringType(), False),
    T.StructField("cluster_id", T.StringType(), False),
])
IDS = T.StructType([
    T.StructField("registration_key", T.StringType(), False),
    T.StructField("person_id", T.StringType(), True),
])


def new_id(text: str) -> str:
    return "P" + hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


# ------------------------------------------------------------------ settings


def test_settings_are_strict_and_frozen():
    with pytest.raises(ValidationError):
        ResolveSettings(blocking="x")
    with pytest.raises(ValidationError):
        ResolveSettings.model_validate({"dedupe": {"match_treshold": 0.9}})
    with pytest.raises(ValidationError):
        ResolveSettings(name_similarity=(0.8, 0.9))
    settings = ResolveSettings()
    with pytest.raises(ValidationError):
        settings.seed = 1


def test_builtin_similarity_mode_needs_no_jar():
    from votelake.resolve.dedupe import dedupe_comparisons
    from votelake.resolve.link import link_comparisons

    settings = ResolveSettings(string_similarity="levenshtein")
    sql = str(dedupe_comparisons(settings, {"unit", "city", "phone", "gender", "name_suffix"})) + str(
        link_comparisons(settings, {"phone", "email"}))
    assert "jaro" not in sql and "levenshtein(first_name_l, first_name_r) <= 1" in sql


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_splink_tables_are_local_checkpoints_unless_a_work_folder_is_set(spark, tmp_path, as_uri):
    from votelake.resolve import engine

    pairs = spark.range(8).where("id % 2 = 0")
    # The default: the tables Splink breaks lineage after are local checkpoints; no folder, nothing shared.
    local = engine.spark_api(spark, ResolveSettings(string_similarity="levenshtein"))
    broken = local._break_lineage_and_repartition(pairs, "__splink__df_predict", "__splink__df_predict_t")
    kept = local._break_lineage_and_repartition(pairs, "__splink__m_u_counts", "__splink__m_u_counts_t")
    assert local.work_dir is None and local.checkpoints == [broken] and kept is pairs
    assertDataFrameEqual(broken, pairs)
    engine.close(local)
    # With a work folder: Splink's Parquet in a per-run folder there, removed on close.
    # A folder every executor reads is a URI on a cluster (s3a://, abfss://): kept as written, and removed too.
    work_dir = f"file://{tmp_path}" if as_uri else tmp_path
    parquet = engine.spark_api(spark, ResolveSettings(string_similarity="levenshtein", work_dir=work_dir))
    assert parquet.work_dir.startswith("file:/" if as_uri else "/")
    written = parquet._break_lineage_and_repartition(pairs, "__splink__df_predict", "__splink__df_predict_t")
    run_folder = tmp_path / parquet.work_dir.rsplit("/", 1)[-1]
    assert [p.name for p in run_folder.iterdir()] == ["__splink__df_predict_t"] and not parquet.checkpoints
    assertDataFrameEqual(written, pairs)
    engine.close(parquet)
    assert not run_folder.exists()


# ------------------------------------------------------------- person ids


def test_first_run_ids_hash_the_smallest_key(spark):
    clusters = spark.createDataFrame(
        [("NC:1-1", "NC:1-1"), ("NC:1-2", "NC:1-1"), ("NC:2-9", "NC:2-9")], CLUSTERS)
    expected = spark.createDataFrame(
        [("NC:1-1", new_id("NC:1-1")), ("NC:1-2", new_id("NC:1-1")), ("NC:2-9", new_id("NC:2-9"))], IDS)
    assertDataFrameEqual(assign_person_ids(clusters, None), expected)


def test_ids_survive_splits_and_merges(spark):
    previous = spark.createDataFrame([
        ("k1", "PA"), ("k2", "PA"), ("k3", "PA"),  # A splits: {k1,k2} and {k3}
        ("k4", "PB"),                              # B (1 registration) merges into C
        ("k5", "PC"), ("k6", "PC"),
        ("k8", "PD"),                              # D's only registration left the data
    ], IDS)
    clusters = spark.createDataFrame([
        ("k1", "k1"), ("k2", "k1"),
        ("k3", "k3"),
        ("k4", "k4"), ("k5", "k4"), ("k6", "k4"),
        ("k7", "k7"),                              # a new registration
    ], CLUSTERS)
    expected = spark.createDataFrame([
        ("k1", "PA"), ("k2", "PA"),                # the larger part keeps the id
        ("k3", new_id("k3")),                      # the smaller part gets a new one
        ("k4", "PC"), ("k5", "PC"), ("k6", "PC"),  # the merge keeps the majority's id
        ("k7", new_id("k7")),
    ], IDS)
    assertDataFrameEqual(assign_person_ids(clusters, previous), expected)


def test_ties_and_hash_collisions_are_deterministic(spark):
    # {a,b,c} had the id derived from "a"; now "a" is alone and the id stays with {b,c}.
    previous = spark.createDataFrame(
        [("a", new_id("a")), ("b", new_id("a")), ("c", new_id("a")), ("x", "PX"), ("y", "PY")], IDS)
    clusters = spark.createDataFrame(
        [("a", "a"), ("b", "b"), ("c", "b"), ("x", "x"), ("y", "x"), ("z", "z")], CLUSTERS)
    expected = spark.createDataFrame([
        ("a", new_id("a#a")),                      # its plain id is taken: salted with its keys
        ("b", new_id("a")), ("c", new_id("a")),
        ("x", "PX"), ("y", "PX"),                  # one vote each: the smaller id wins
        ("z", new_id("z")),
    ], IDS)
    assertDataFrameEqual(assign_person_ids(clusters, previous), expected)
    # Same inputs, same ids.
    assertDataFrameEqual(assign_person_ids(clusters, previous), expected)


# ------------------------------------------------------------- evaluation


def test_pairwise_scores_count_pairs(spark):
    truth = spark.createDataFrame([("a", "1"), ("b", "1"), ("c", "1"), ("d", "2"), ("e", "3")],
                                  "registration_key string, person string")
    predicted = spark.createDataFrame([("a", "x"), ("b", "x"), ("c", "y"), ("d", "y"), ("e", None)],
                                      "registration_key string, cluster_id string")
    scores = pairwise_precision_recall(predicted, truth)
    # true pairs: ab ac bc; predicted: ab cd; correct: ab
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == (3, 2, 1)
    assert scores.precision == pytest.approx(0.5) and scores.recall == pytest.approx(1 / 3)


def test_record_scores(spark):
    truth = spark.createDataFrame([("r1", "1"), ("r2", "2"), ("r3", None), ("r4", "4")],
                                  "record_id string, person string")
    links = spark.createDataFrame([("r1", "1"), ("r2", "9"), ("r3", None)], "record_id string, person string")
    scores = record_precision_recall(links, truth)
    assert (scores.linked, scores.correct, scores.linkable, scores.records) == (2, 1, 3, 4)
    assert scores.precision == pytest.approx(0.5) and scores.recall == pytest.approx(1 / 3)


# ------------------------------------------------- 5,000-voter synthetic state


@pytest.fixture(scope="module")
def state(spark, tmp_path_factory):
    """A 5,000-voter synthetic state (stored once as Parquet) and its resolution."""
    root = tmp_path_factory.mktemp("resolve")
    synth = SynthSettings(voters=5000, seed=42, partitions=2, out=root)
    # Store the registration table once: every output derives from it.
    build_registrations(spark, synth).write.parquet(str(root / "registrations"))
    frames = build_outputs(spark, synth, LAYOUTS, spark.read.parquet(str(root / "registrations")))
    names = ("ncvoter", "contacts", "digital", "truth_registrations", "truth_contacts", "truth_digital")
    for name in names:
        frames[name].write.parquet(str(root / name))
    data = {name: spark.read.parquet(str(root / name)) for name in names}
    # A looser EM tolerance than the default keeps the test short (fewer iterations).
    settings = ResolveSettings(work_dir=root / "work", em_convergence=1e-3)
    regs = ncvoter_registrations(data["ncvoter"]).persist()
    dedupe = dedupe_registrations(spark, regs, settings)
    ids = assign_person_ids(dedupe.clusters, None).persist()
    persons = regs.join(ids, on="registration_key", how="inner").select(*PERSON_SCHEMA.fieldNames())
    records = contact_records(data["contacts"]).unionByName(digital_records(data["digital"]))
    linked = link_records(spark, records, persons, settings)
    yield {"data": data, "regs": regs, "dedupe": dedupe, "ids": ids, "linked": linked, "settings": settings}
    dedupe.unpersist()
    linked.unpersist()
    ids.unpersist()
    regs.unpersist()


def _truth_keys(data):
    key = F.concat(F.lit("NC:"), F.col("county_id").cast("string"), F.lit("-"), F.col("voter_reg_num"))
    return data["truth_registrations"].select(key.alias("registration_key"),
                                              F.col("person_id").cast("string").alias("true_person"))


@pytest.mark.slow  # Splink training on a 5,000-voter state: minutes on 2 cores
def test_synthetic_duplicates_resolved(state):
    truth = _truth_keys(state["data"])
    scores = pairwise_precision_recall(state["dedupe"].clusters, truth)
    assert scores.true_pairs > 200
    assert scores.precision >= 0.99, scores
    assert scores.recall >= 0.97, scores
    # Every registration is clustered exactly once, and the model is reusable JSON.
    assert state["dedupe"].clusters.count() == state["regs"].count()
    assert '"link_type": "dedupe_only"' in state["dedupe"].model


@pytest.mark.slow  # Splink training on a 5,000-voter state: minutes on 2 cores
def test_synthetic_records_linked(state):
    data = state["data"]
    truth = _truth_keys(data)
    counts = state["ids"].join(truth, on="registration_key", how="inner").groupBy("person_id", "true_person").count()
    mapping = counts.groupBy("person_id").agg(F.max_by("true_person", "count").alias("mapped"))
    links = state["linked"].links
    mapped = links.join(mapping, on="person_id", how="left").select("record_id", "mapped")
    contacts = data["truth_contacts"].select(F.col("contact_id").alias("record_id"),
                                             F.col("person_id").cast("string"))
    scores = record_precision_recall(mapped, contacts)
    assert scores.precision >= 0.98, scores
    assert scores.recall >= 0.95, scores
    digital = data["truth_digital"].select(F.col("event_id").alias("record_id"), F.col("person_id").cast("string"))
    assert record_precision_recall(mapped, digital).precision >= 0.98
    # Nothing is dropped: one link row per record.
    assert links.count() == contacts.count() + digital.count()
    assert links.select("record_id").distinct().count() == links.count()


@pytest.mark.slow  # Splink training on a 5,000-voter state: minutes on 2 cores
def test_a_refresh_resolves_again_only_what_changed_with_the_clusters_of_resolving_everything(spark, state):
    """About 4% of the registrations change: removed, moved, renamed, or registered again under a new key."""
    regs, model, settings = state["regs"], state["dedupe"].model, state["settings"]
    # The saved model (with its term frequencies) scores every pair as the training run did.
    again = dedupe_registrations(spark, regs, settings, model=model)
    assertDataFrameEqual(again.clusters, state["dedupe"].clusters)
    again.unpersist()

    draw = F.abs(F.xxhash64("registration_key")) % 100
    changed = regs.where(draw != 0).select(
        "registration_key", "state_voter_id", "first_name", "middle_name",
        F.when(draw == 2, F.concat("last_name", F.lit("S"))).otherwise(F.col("last_name")).alias("last_name"),
        "name_suffix", "birth_year", "birth_date", "gender",
        F.when(draw == 1, F.concat(F.lit("9"), "address_key")).otherwise(F.col("address_key")).alias("address_key"),
        "unit", "city", "zip5", "phone", "email")
    registered_again = regs.where(draw == 3).select(
        F.concat("registration_key", F.lit("-2")).alias("registration_key"),
        F.concat(F.lit("NEW"), "state_voter_id").alias("state_voter_id"),
        *[c for c in REGISTRATION_SCHEMA.fieldNames() if c not in ("registration_key", "state_voter_id")])
    now = changed.unionByName(registered_again).persist()
    refreshed = dedupe_registrations(spark, now, settings, model=model,
                                     previous=Previous(regs, state["ids"]))
    everything = dedupe_registrations(spark, now, settings, model=model)
    assertDataFrameEqual(refreshed.clusters, everything.clusters)
    figures = refreshed.figures
    assert figures["removed_registrations"] == regs.where(draw == 0).count() > 0
    edited = ((draw == 1) & F.col("address_key").isNotNull()) | ((draw == 2) & F.col("last_name").isNotNull())
    assert figures["changed_registrations"] == regs.where(edited).count() + registered_again.count()
    assert figures["registrations_resolved_again"] < now.count() / 4, figures
    # Registered again under a new key: most join the person they duplicate.
    joined = refreshed.clusters.where(F.col("registration_key").endswith("-2")).join(
        refreshed.clusters.withColumnRenamed("registration_key", "other"), on="cluster_id", how="inner").where(
        F.col("other") != F.col("registration_key"))
    assert joined.select("registration_key").distinct().count() >= 0.9 * registered_again.count()
    for result in (refreshed, everything):
        result.unpersist()
    now.unpersist()


# --------------------------------------- hand-built data scored with the saved models


@pytest.mark.slow  # Splink training on a 5,000-voter state: minutes on 2 cores
def test_same_state_voter_id_is_one_person(spark, state):
    regs = spark.createDataFrame([
        ("NC:1-1", "AA1", "JOHN", "Q", "SMITH", None, 1980, None, "M", "12 OAK ST", None, "RALEIGH", "27601",
         None, None),
        # Same NCID, nothing else in common: joined by the deterministic rule.
        ("NC:2-2", "AA1", "ZED", None, "QUIMBY", None, 1950, None, "F", "9 ELM RD", None, "BOONE", "28607",
         None, None),
        ("NC:3-3", "BB2", "MARY", "ANN", "JONES", None, 1970, None, "F", "400 PINE DR", "4", "DURHAM", "27701",
         "+19195550100", None),
        # A duplicate registration under a new NCID: same person by the model.
        ("NC:3-4", "CC3", "MARY", "ANN", "JONES", None, 1970, None, "F", "400 PINE DR", "4", "DURHAM", "27701",
         "+19195550100", None),
        ("NC:4-5", "DD4", "PETER", None, "PAN", None, 1990, None, "M", "1 LAKE WAY", None, "CARY", "27511",
         None, None),
    ], REGISTRATION_SCHEMA)
    result = dedupe_registrations(spark, regs, state["settings"], model=state["dedupe"].model)
    expected = spark.createDataFrame([
        ("NC:1-1", "NC:1-1"), ("NC:2-2", "NC:1-1"),
        ("NC:3-3", "NC:3-3"), ("NC:3-4", "NC:3-3"),
        ("NC:4-5", "NC:4-5"),
    ], CLUSTERS)
    assertDataFrameEqual(result.clusters, expected)
    rules = {(r.registration_key_l, r.registration_key_r): r.matched_by for r in result.pairs.collect()}
    assert rules[("NC:1-1", "NC:2-2")] == "state_voter_id"
    assert rules[("NC:3-3", "NC:3-4")] == "splink"
    result.unpersist()


@pytest.mark.slow  # Splink training on a 5,000-voter state: minutes on 2 cores
def test_records_linked_by_rule_and_unmatched_kept(spark, state):
    persons = spark.createDataFrame([
        ("P1", "AA1", "JOHN", "SMITH", "12 OAK ST", "27601", "+19195550001", None),
        ("P2", "BB2", "MARY", "JONES", "400 PINE DR", "27701", "+19195550002", None),
        ("P3", "CC3", "PETER", "PAN", "1 LAKE WAY", "27511", "+19195550009", None),
        ("P4", "DD4", "WENDY", "DARLING", "1 LAKE WAY", "27511", "+19195550009", None),  # shares P3's phone
    ], PERSON_SCHEMA)
    records = spark.createDataFrame([
        ("c1", "AA1", None, None, None, None, None, None),                        # claimed id
        ("c2", None, "MARY", None, None, None, "+19195550002", "mary@example.org"),  # unique phone
        ("c3", None, "JOHN", "SMITH", "12 OAK ST", "27601", None, None),          # name + address
        ("d1", None, None, None, None, None, None, "mary@example.org"),           # e-mail seen on c2
        ("d2", None, None, None, None, None, "+19195550009", None),               # phone of two people
        ("d3", None, None, None, None, None, None, "nobody@example.net"),         # unknown
    ], RECORD_SCHEMA)
    result = link_records(spark, records, persons, state["settings"], model=state["linked"].model)
    links = result.links.select("record_id", "person_id", "matched_by")
    expected = spark.createDataFrame([
        ("c1", "P1", "state_voter_id"),
        ("c2", "P2", "phone"),
        ("c3", "P1", "splink"),
        ("d1", "P2", "record_email"),
        ("d2", None, "none"),
        ("d3", None, "none"),
    ], "record_id string, person_id string, matched_by string")
    assertDataFrameEqual(links, expected)
    probabilities = {r.record_id: r.match_probability for r in result.links.collect()}
    assert probabilities["c1"] == 1.0 and probabilities["d3"] is None
    assert probabilities["c3"] >= state["settings"].link.match_threshold
    result.unpersist()


@pytest.mark.slow  # Splink training on a 5,000-voter state: minutes on 2 cores
def test_the_model_scores_only_the_named_records_no_key_links(spark, state):
    """A key's person wins over the model's, so the model's columns stay empty where a key linked."""
    persons = spark.createDataFrame([
        ("P1", "AA1", "JOHN", "SMITH", "12 OAK ST", "27601", "+19195550001", None),
        ("P2", "BB2", "MARY", "JONES", "400 PINE DR", "27701", "+19195550002", None),
    ], PERSON_SCHEMA)
    records = spark.createDataFrame([
        ("c1", "AA1", "JOHN", "SMITH", "12 OAK ST", "27601", None, None),  # claimed id, and a name the model matches
        ("c2", None, "JOHN", "SMITH", "12 OAK ST", "27601", None, None),   # the same name alone
    ], RECORD_SCHEMA)
    local, _ = local_links(spark, records, persons, state["settings"], model=state["linked"].model)
    expected = spark.createDataFrame([("c1", "P1", "state_voter_id", None), ("c2", None, None, "P1")],
                                     "record_id string, det_person string, det_rule string, splink_person string")
    assertDataFrameEqual(local.select("record_id", "det_person", "det_rule", "splink_person"), expected)
    local.unpersist()
