"""Target universes: rules, suppression, household deduplication and turf ranking (inline data)."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from votelake import exports
from votelake.config import UniverseRule
from votelake.transforms import universes as uni

SCORES = ("person_id string, state_voter_id string, state string, county_id int, precinct string, "
          "support_score int, turnout_score int, support_prob double, turnout_prob double")
SUPPRESSED = "person_id string, channel string, reason string"
GOTV = UniverseRule(description="GOTV", where="support_score >= 70 AND turnout_score BETWEEN 30 AND 80",
                    priority="support_prob * (1 - turnout_prob)", channel="door")


def _scores(spark):
    return spark.createDataFrame([
        ("p1", "v1", "NC", 1, "A", 90, 50, 0.9, 0.5),    # priority 0.45
        ("p2", "v2", "NC", 1, "A", 80, 40, 0.8, 0.4),    # 0.48: stands for household h1 (with p1)
        ("p3", "v3", "NC", 1, "A", 75, 35, 0.75, 0.35),  # 0.4875: first in turf A
        ("p4", "v4", "NC", 1, "B", 95, 60, 0.95, 0.6),   # no known household: a household of one
        ("p5", "v5", "NC", 1, "B", 60, 50, 0.6, 0.5),    # support too low
        ("p6", "v6", "NC", 1, "B", 85, 90, 0.85, 0.9),   # turnout too high
        ("p7", "v7", "NC", 2, "C", 70, 30, 0.7, 0.3),    # suppressed for doors
        ("p8", "v8", "NC", 2, "C", 70, 30, 0.7, 0.3),    # suppressed for texts only
        ("p9", "v9", "NC", 2, "C", 70, 30, 0.7, 0.3),    # ties p8: the person id breaks the tie
    ], SCORES)


def _households(spark):
    return spark.createDataFrame([("p1", "h1"), ("p2", "h1"), ("p3", "h3"), ("p4", None), ("p7", "h7"),
                                  ("p8", "h8"), ("p9", "h9")], "person_id string, household_id string")


MEMBERS = ("person_id string, state_voter_id string, household_id string, state string, county_id int, "
           "precinct string, priority double, household_voters int, turf_rank int")


def test_door_universe_follows_the_rule_dedupes_households_and_ranks_turfs(spark):
    suppressed = spark.createDataFrame([("p7", "door", "contact result: MOVED"), ("p8", "text", "opt out")],
                                       SUPPRESSED)
    members = uni.select_universe(_scores(spark), _households(spark), suppressed, GOTV)
    expected = spark.createDataFrame([
        ("p3", "v3", "h3", "NC", 1, "A", 0.4875, 1, 1),
        ("p2", "v2", "h1", "NC", 1, "A", 0.48, 2, 2),
        ("p4", "v4", None, "NC", 1, "B", 0.38, 1, 1),
        ("p8", "v8", "h8", "NC", 2, "C", 0.49, 1, 1),
        ("p9", "v9", "h9", "NC", 2, "C", 0.49, 1, 2),
    ], MEMBERS)
    assertDataFrameEqual(members, expected, rtol=1e-9)


def test_text_universe_reaches_people_not_households(spark):
    suppressed = spark.createDataFrame([("p7", "door", "contact result: MOVED"), ("p8", "*", "list: DNC")],
                                       SUPPRESSED)
    rule = GOTV.model_copy(update={"channel": "text"})
    members = uni.select_universe(_scores(spark), _households(spark), suppressed, rule)
    expected = spark.createDataFrame([
        ("p3", "v3", "h3", "NC", 1, "A", 0.4875, 1, 1),
        ("p2", "v2", "h1", "NC", 1, "A", 0.48, 1, 2),
        ("p1", "v1", "h1", "NC", 1, "A", 0.45, 1, 3),
        ("p4", "v4", None, "NC", 1, "B", 0.38, 1, 1),
        ("p7", "v7", "h7", "NC", 2, "C", 0.49, 1, 1),   # moved: no door, but a text reaches them
        ("p9", "v9", "h9", "NC", 2, "C", 0.49, 1, 2),   # p8 is on the do-not-contact list
    ], MEMBERS)
    assertDataFrameEqual(members, expected, rtol=1e-9)
    counts = uni.rule_counts(_scores(spark), suppressed, "text_gotv", rule)
    assertDataFrameEqual(counts, spark.createDataFrame([("text_gotv", 7, 1)],
                                                       "universe string, voters bigint, suppressed bigint"))


def test_a_universe_selects_by_segment(spark):
    segments = spark.createDataFrame([("p1", 1, "base, low turnout"), ("p2", 2, "undecided"),
                                      ("p3", 1, "base, low turnout"), ("p4", 3, "opposition")],
                                     "person_id string, segment_id int, segment_name string")
    rule = UniverseRule(description="the base at low turnout", where="segment_name LIKE 'base%'",
                        priority="turnout_prob", channel="text")
    nobody = spark.createDataFrame([], SUPPRESSED)
    scored = uni.with_segments(_scores(spark), segments)
    assert scored.count() == 9  # p5..p9 were not segmented: their segment is null
    members = uni.select_universe(scored, _households(spark), nobody, rule)
    expected = spark.createDataFrame([
        ("p1", "v1", "h1", "NC", 1, "A", 0.5, 1, 1),
        ("p3", "v3", "h3", "NC", 1, "A", 0.35, 1, 2),
    ], MEMBERS)
    assertDataFrameEqual(members, expected, rtol=1e-9)
    assert uni.select_universe(scored, _households(spark), nobody, rule.model_copy(
        update={"where": "segment_id = 3"})).select("person_id").collect() == [("p4",)]


def test_suppressions_from_lists_results_and_events(spark):
    lists = spark.createDataFrame([("OLD1", "requested"), ("NOBODY", "requested")],
                                  "state_voter_id string, reason string")
    voter_ids = spark.createDataFrame([("OLD1", "p1"), ("NEW1", "p1"), ("V2", "p2")],
                                      "state_voter_id string, person_id string")
    contacts = spark.createDataFrame([("p2", "MOVED"), ("p2", "CANVASSED"), (None, "OPTED_OUT"), ("p3", "OPTED_OUT")],
                                     "person_id string, result_code string")
    digital = spark.createDataFrame([("p4", "opt_out"), ("p4", "click")], "person_id string, event_type string")
    found = uni.suppressions(lists, voter_ids, contacts, digital, {"door": ("MOVED",), "text": ("OPTED_OUT",)},
                             {"text": ("opt_out",)})
    expected = spark.createDataFrame([
        ("p1", "*", "list: requested"),  # the list names the person's old registration
        ("p2", "door", "contact result: MOVED"),
        ("p3", "text", "contact result: OPTED_OUT"),
        ("p4", "text", "digital event: opt_out"),
    ], SUPPRESSED)
    assertDataFrameEqual(found, expected)


def test_hand_off_files_are_named_for_their_turf_with_a_manifest(spark, tmp_path):
    rows = spark.createDataFrame(
        [("37", "P 01/A", 1, "V1"), ("37", "P 01/A", 2, "V2"), ("37", None, 1, "V3"), ("9", "12", 1, "V4")],
        "county_id string, precinct string, turf_rank int, state_voter_id string")
    county, precinct = exports.TURF_COLUMNS
    written = tmp_path / "_written"
    (rows.select("*", F.col("county_id").alias(county), F.col("precinct").alias(precinct))
     .repartition(county, precinct).write.partitionBy(county, precinct).option("header", True).csv(str(written)))

    listed = exports.name_turf_files(written, tmp_path, "gotv", "b1", "csv")

    assert not written.exists()
    assert sorted((r["file"], r["county_id"], r["precinct"], r["voters"]) for r in listed) == [
        ("gotv_37_P-01-A_b1.csv", "37", "P 01/A", 2), ("gotv_37_none_b1.csv", "37", "", 1),
        ("gotv_9_12_b1.csv", "9", "12", 1)]
    assert exports.read_manifest(tmp_path) == [{**r, "voters": str(r["voters"])} for r in listed]
    one = spark.read.option("header", True).csv(str(tmp_path / "gotv_37_P-01-A_b1.csv"))
    assert sorted(r["state_voter_id"] for r in one.collect()) == ["V1", "V2"]
    # The manifest's leading underscore keeps it out of a reader of the folder.
    assert spark.read.option("header", True).csv(str(tmp_path)).count() == 4
