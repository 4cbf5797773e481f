"""Voter segments: inputs, profiles and names on inline groups, the model's stability, and the job end to end."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from sklearn.metrics import adjusted_rand_score

from conftest import synthetic_state_settings
from votelake.config import ConfigError, UniverseRule, load_settings
from votelake.jobs import segment as job
from votelake.jobs import universes
from votelake.lakehouse import Lakehouse
from votelake.models import segments as model
from votelake.transforms import segments as seg

AS_OF = dt.date(2026, 9, 1)
SCORES = ("person_id string, state_voter_id string, state string, county_id int, as_of_date date, "
          "turnout_prob double, support_prob double, persuasion_uplift double")
FEATURES = ("person_id string, as_of_date date, is_active boolean, contacts_made int, digital_events int, "
            "digital_clicks int, age int, gender string, race string, party string")
INPUTS = ("turnout_prob", "support_prob", "persuasion_uplift", "contacts_made", "digital_events", "digital_clicks",
          "age")
# Five groups of voters, far apart on every input: mean turnout, support,
# persuasion, contacts made, digital events, digital clicks and age. The
# names are what the profile rules should call them against the whole population.
GROUPS = {
    "base, high turnout": (0.92, 0.90, 0.010, 3, 8, 3, 62),
    "base, low turnout": (0.22, 0.90, 0.010, 2, 6, 2, 33),
    "opposition": (0.55, 0.08, 0.000, 2, 6, 2, 55),
    "persuadable, low engagement": (0.55, 0.50, 0.090, 0, 0, 0, 45),
    "low-propensity unknown": (0.12, 0.45, 0.010, 2, 6, 2, 24),
}
PER_GROUP = 80


def _voters(seed: int = 0) -> list[tuple]:
    """``PER_GROUP`` voters per group: each input its group's mean plus a little noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for g, (turnout, support, uplift, contacts, events, clicks, age) in enumerate(GROUPS.values()):
        for i in range(PER_GROUP):
            rows.append((f"p{g}-{i:03d}", g + 1,
                         float(np.clip(turnout + rng.normal(0, 0.03), 0.01, 0.99)),
                         float(np.clip(support + rng.normal(0, 0.03), 0.01, 0.99)),
                         float(uplift + rng.normal(0, 0.004)),
                         # A count is its group's, one more for some voters.
                         *(int(count + (rng.random() < 0.3)) for count in (contacts, events, clicks)),
                         int(age + rng.integers(-4, 5)),
                         str(rng.choice(["F", "M"])), str(rng.choice(["W", "B", "O"])),
                         str(rng.choice(["DEM", "REP", "UNA"]))))
    return rows


@pytest.fixture(scope="module")
def voters(spark):
    """The grouped voters as gold.voter_scores and gold.voter_features rows, and their true group."""
    rows = _voters()
    scores = spark.createDataFrame([(r[0], f"S{r[0]}", "NC", 1 + r[1] % 3, AS_OF, r[2], r[3], r[4]) for r in rows],
                                   SCORES)
    features = spark.createDataFrame([(r[0], AS_OF, True, *r[5:]) for r in rows], FEATURES)
    truth = spark.createDataFrame([(r[0], r[1]) for r in rows], "person_id string, group int")
    return scores, features, truth


# Five segments on the inline inputs; one run per fit suffices for groups this far apart.
SEGMENTS = ("segments.k=5", f"segments.features=[{', '.join(INPUTS)}]", "segments.restarts=1", "segments.max_iter=10")


def _settings(*overrides: str):
    return load_settings(None, [*SEGMENTS, *overrides], environ={})


# --- inputs -------------------------------------------------------------------------------------------------------


def test_inputs_take_each_column_from_its_table_at_the_scores_as_of_date(spark):
    scores = spark.createDataFrame([
        ("a", "SA", "NC", 1, AS_OF, 0.9, 0.8, 0.01),
        ("b", "SB", "NC", 2, AS_OF, 0.2, 0.3, None),      # no features row of that date: kept, inputs unknown
    ], SCORES)
    features = spark.createDataFrame([
        ("a", AS_OF, True, 2, 5, 1, 40, "F", "W", "DEM"),
        ("a", dt.date(2024, 9, 1), True, 9, 9, 9, 38, "F", "W", "DEM"),   # an older as-of date: not this one
        ("b", dt.date(2024, 9, 1), True, 1, 1, 1, 60, "M", "B", "REP"),
    ], FEATURES)
    out = seg.segmentation_inputs(scores, features, ("support_prob", "digital_events", "age"), ("party",))
    expected = spark.createDataFrame([
        ("a", "SA", "NC", 1, 0.9, 0.8, 0.01, 5.0, 40.0, "DEM"),
        ("b", "SB", "NC", 2, 0.2, 0.3, None, None, None, None),
    ], "person_id string, state_voter_id string, state string, county_id int, turnout_prob double, "
       "support_prob double, persuasion_uplift double, digital_events double, age double, party string")
    assertDataFrameEqual(out, expected)


def test_an_input_of_neither_table_fails_naming_it(spark, voters):
    scores, features, _ = voters
    with pytest.raises(ValueError, match="income"):
        seg.segmentation_inputs(scores, features, ("age", "income"))


def test_protected_attributes_are_not_inputs_unless_included(spark, voters):
    scores, features, _ = voters
    configured = ["segments.categorical=[party, gender, race]", "segments.features=[support_prob, age, ethnicity]"]
    settings = _settings(*configured)
    assert seg.excluded_inputs(settings) == ("race", "ethnicity", "gender")
    numeric, categorical = seg.input_columns(settings.segments.features, settings.segments.categorical,
                                             seg.excluded_inputs(settings))
    assert (numeric, categorical) == (("support_prob", "age"), ("party",))
    columns = seg.segmentation_inputs(scores, features, numeric, categorical).columns
    assert not {"gender", "race", "ethnicity"} & set(columns)

    included = _settings(*configured, "segments.include_protected=true")
    assert seg.input_columns(included.segments.features, included.segments.categorical,
                             seg.excluded_inputs(included)) == (("support_prob", "age", "ethnicity"),
                                                                ("party", "gender", "race"))


def test_categorical_inputs_become_one_column_per_listed_value(spark):
    rows = spark.createDataFrame([("a", "DEM", 1.0), ("b", "REP", 2.0), ("c", None, 3.0), ("d", "GRN", 4.0)],
                                 "person_id string, party string, age double")
    levels = {"party": ["DEM", "REP", "Dem."]}  # "Dem." is spelt like DEM as a name: it gets its own column
    assert seg.indicator_names(levels) == {("party", "DEM"): "party__dem", ("party", "REP"): "party__rep",
                                           ("party", "Dem."): "party__dem_2"}
    expected = spark.createDataFrame([("a", 1.0, 1.0, 0.0, 0.0), ("b", 2.0, 0.0, 1.0, 0.0),
                                      ("c", 3.0, 0.0, 0.0, 0.0), ("d", 4.0, 0.0, 0.0, 0.0)],
                                     "person_id string, age double, party__dem double, party__rep double, "
                                     "party__dem_2 double")
    assertDataFrameEqual(seg.with_indicators(rows, levels), expected)


# --- profiles and names -------------------------------------------------------------------------------------------


def _assigned(voters, segment=None):
    """The inline voters' inputs with ``segment_id`` given by a test (default: the true group)."""
    scores, features, truth = voters
    rows = seg.segmentation_inputs(scores, features, INPUTS).join(truth, on="person_id", how="inner")
    segment = F.col("group") if segment is None else segment
    return rows.select(*[c for c in rows.columns if c != "group"], segment.cast("int").alias("segment_id"))


def test_profiles_name_each_group_by_its_scores_against_the_population(spark, voters):
    profiles = seg.profiles(_assigned(voters), INPUTS, top=2)
    expected = spark.createDataFrame([(i, name, PER_GROUP, 0.2) for i, name in enumerate(GROUPS, start=1)],
                                     "segment_id int, segment_name string, voters bigint, share double")
    assertDataFrameEqual(profiles.select("segment_id", "segment_name", "voters", "share"), expected)
    by_id = {r["segment_id"]: r for r in profiles.collect()}
    for i, means in enumerate(GROUPS.values(), start=1):
        assert by_id[i]["mean_turnout_prob"] == pytest.approx(means[0], abs=0.02)
        assert by_id[i]["mean_support_prob"] == pytest.approx(means[1], abs=0.02)
    # The persuadable group stands out by its uplift and its silence: no contact, no digital event.
    persuadable = by_id[4]["top_features"].split("; ")
    assert len(persuadable) == 2 and persuadable[0].startswith("persuasion_uplift +")
    print({r["segment_name"]: r["top_features"] for r in by_id.values()})


def test_two_segments_earning_one_name_are_numbered_by_size(spark, voters):
    # The first group split in two: 50 voters in segment 1, 30 in segment 6.
    split = F.when((F.col("group") == 1) & (F.substring_index("person_id", "-", -1).cast("int") >= 50), 6)
    profiles = seg.profiles(_assigned(voters, split.otherwise(F.col("group"))), INPUTS)
    expected = spark.createDataFrame([(1, "base, high turnout"), (6, "base, high turnout (2)"),
                                      (2, "base, low turnout"), (3, "opposition"), (4, "persuadable, low engagement"),
                                      (5, "low-propensity unknown")], "segment_id int, segment_name string")
    assertDataFrameEqual(profiles.select("segment_id", "segment_name"), expected)


def test_segment_ids_follow_size(spark):
    rows = spark.createDataFrame([("a", 7), ("b", 7), ("c", 2), ("d", 2), ("e", 2), ("f", 0)],
                                 "person_id string, cluster int")
    order = model.by_size(rows)
    assert order == {2: 1, 7: 2, 0: 3}
    expected = spark.createDataFrame([("a", 2), ("b", 2), ("c", 1), ("d", 1), ("e", 1), ("f", 3)],
                                     "person_id string, segment_id int")
    assertDataFrameEqual(seg.relabelled(rows, order), expected)


# --- the model ----------------------------------------------------------------------------------------------------


def test_adjusted_rand_index_from_the_contingency_table_matches_sklearn(spark):
    first = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    second = [1, 1, 0, 0, 2, 2, 2, 2, 1, 1]
    pairs = spark.createDataFrame(list(zip(first, second)), "a int, b int")
    assert model.adjusted_rand_index(pairs, "a", "b") == pytest.approx(adjusted_rand_score(first, second), abs=1e-12)
    # The same partition under other labels is 1; so are two one-segment assignments (as sklearn has it).
    renamed = spark.createDataFrame([(x, 9 - x) for x in first], "a int, b int")
    assert model.adjusted_rand_index(renamed, "a", "b") == pytest.approx(1.0)
    assert model.adjusted_rand_index(spark.createDataFrame([(1, 1)] * 4, "a int, b int"), "a", "b") == 1.0
    # By hand: n = [[2, 1, 0], [0, 1, 2]] has index 1 + 1 = 2, row pairs 3 + 3 = 6, column pairs 1 + 1 + 1 = 3,
    # expected 6 · 3 / C(6, 2) = 1.2 and maximum (6 + 3) / 2 = 4.5: ARI = 0.8 / 3.3 = 8/33.
    hand = spark.createDataFrame([(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (1, 2)], "a int, b int")
    assert model.adjusted_rand_index(hand, "a", "b") == pytest.approx(8 / 33, abs=1e-12)


@pytest.mark.parametrize("algorithm, restarts", [("bisecting", 1), ("kmeans", 3)])
def test_two_seeds_find_the_same_segments(spark, voters, algorithm, restarts):
    scores, features, truth = voters
    cfg = _settings(f"segments.algorithm={algorithm}", f"segments.restarts={restarts}").segments
    rows = seg.segmentation_inputs(scores, features, INPUTS).cache()
    fits = [model.fit(rows, INPUTS, cfg, seed) for seed in (cfg.seed, cfg.stability_seed)]
    assert [len(costs) for _, costs in fits] == [restarts, restarts]
    first, second = (model.assign(fitted, rows) for fitted, _ in fits)
    pairs = (first.select("person_id", F.col("cluster").alias("first"), "distance")
             .join(second.select("person_id", F.col("cluster").alias("second")), on="person_id", how="inner")
             .join(truth, on="person_id", how="inner"))
    ari = model.adjusted_rand_index(pairs, "first", "second")
    print(f"{algorithm}, best of {restarts}: adjusted Rand index between seeds {ari:.4f}")
    assert ari >= 0.9
    assert model.adjusted_rand_index(pairs, "first", "group") >= 0.9  # and they are the true groups
    labels = pairs.select("first", "second").toPandas()  # 400 rows: compared with scikit-learn
    assert ari == pytest.approx(adjusted_rand_score(labels["first"], labels["second"]), abs=1e-12)
    assert pairs.agg(F.min("distance")).first()[0] >= 0.0
    rows.unpersist()


# --- configuration ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("override, named", [
    ("segments.kk=4", "segments.kk"),
    ("segments.k=1", "segments.k"),
    ("segments.stability_seed=12", "stability_seed"),  # the re-fit's runs would include the fit's seed 12
    ("segments.features=[age, age]", "listed twice"),
    ("segments.algorithm=dbscan", "segments.algorithm"),
])
def test_bad_segment_settings_fail_naming_the_key(override, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(None, [override], environ={})


# --- the job ------------------------------------------------------------------------------------------------------


def _lakehouse(spark, settings, voters):
    """gold.voter_features and gold.voter_scores written from the inline voters, in their declared schemas.

    Written, not published: the scores' contract checks are test_publish.py's subject, and here they would
    only lengthen the test.
    """
    scores, features, _ = voters
    lake = Lakehouse.open(spark, settings, job="build")

    def declared(rows, name):
        # Every declared column: the rows' own, else null (0 where the column may not be null).
        return rows.select(*[(F.col(f.name) if f.name in rows.columns else F.lit(None if f.nullable else 0))
                             .cast(f.dataType).alias(f.name) for f in lake.table(name).schema.fields])

    filled = features.select("*", F.lit("NC").alias("state"), F.concat(F.lit("S"), "person_id").alias("state_voter_id"))
    written = lake.write(declared(filled, "gold.voter_features"), "gold.voter_features", "overwrite")
    given = {"feature_version": F.lit(written.version), "scoring_run_id": F.lit("run-1"),
             "scored_at": F.lit(dt.datetime(2026, 9, 2, 8, 0)), "state_voter_ids": F.array("state_voter_id")}
    rows = scores.select("*", *[v.alias(k) for k, v in given.items()])
    lake.write(declared(rows, "gold.voter_scores"), "gold.voter_scores", "overwrite")


def test_segment_job_publishes_segments_and_profiles_and_logs_the_run(spark, voters, tmp_path):
    settings = synthetic_state_settings(tmp_path, 1000, *SEGMENTS, "segments.categorical=[gender, race]")
    _lakehouse(spark, settings, voters)

    summary = job.run(spark, settings)
    print({k: v for k, v in summary.items() if k != "quality"})
    assert summary["published"] and summary["k"] == summary["segments"] == 5
    assert summary["voters"] == len(GROUPS) * PER_GROUP
    assert summary["stability_ari"] >= 0.9
    assert summary["protected_excluded"] == ["race", "ethnicity", "gender"]
    assert not {"gender", "race"} & {i.split("__")[0] for i in summary["inputs"]}

    lake = Lakehouse.open(spark, settings)
    published = {name: lake.read(name, version=v) for name, v in summary["tables"].items()}
    for name, rows in published.items():
        contract = lake.published[name]
        assert [(f.name, f.dataType) for f in rows.schema] == [(f.name, f.dataType) for f in contract.schema]
        assert lake.published_contract(name) == contract
    profiles = published["gold.segment_profiles"].orderBy("segment_id").collect()
    for r in profiles:
        print(r["segment_id"], r["segment_name"], r["voters"], r["top_features"])
    assert sum(r["voters"] for r in profiles) == summary["voters"] == published["gold.voter_segments"].count()
    assert {r["segment_name"] for r in profiles} == set(GROUPS)
    assert {r["mlflow_run_id"] for r in profiles} == {summary["mlflow_run_id"]}
    # Each true group is one segment.
    _, _, truth = voters
    segments = published["gold.voter_segments"].join(truth, on="person_id", how="inner")
    assert model.adjusted_rand_index(segments, "segment_id", "group") == pytest.approx(1.0)

    client = MlflowClient(settings.mlflow.tracking_uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.metrics["stability_ari"] >= 0.9
    assert run.data.params["protected_excluded"] == "race,ethnicity,gender"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {model.PROFILE_FIGURE, model.STABILITY_FIGURE, model.PROFILE_TABLE} <= artifacts
    assert client.get_model_version("votelake-segments", summary["model_version"]).run_id == run.info.run_id

    # The same scores and settings again: nothing new is published.
    again = job.run(spark, settings)
    assert not again["published"] and again["tables"] == summary["tables"]

    # A universe may select by segment, from the segmentation of the scores it reads and no other.
    definitions = {"base": UniverseRule(description="base", where="segment_name LIKE 'base%'",
                                        priority="turnout_prob", channel="text"),
                   "all": UniverseRule(description="all", where="turnout_prob > 0", priority="1", channel="door")}
    assert universes.segments_used(definitions) == ["base"]
    version = summary["tables"]["gold.voter_segments"]
    universes.check_segments(lake, version, "run-1", ["base"])
    with pytest.raises(RuntimeError, match="does not exist: run the segment job first"):
        universes.check_segments(lake, None, "run-1", ["base"])
    with pytest.raises(RuntimeError, match="segments scoring run run-1, not run-2 .*run the segment job again"):
        universes.check_segments(lake, version, "run-2", ["base"])
