"""Rule-based identity resolution on hand-built registrations and records."""

from __future__ import annotations

import random

from pyspark.sql import Row
from pyspark.testing import assertDataFrameEqual

from votelake.resolve.relink import PreviousLinks, changed_rows, final_links, prefer_first, relink
from votelake.resolve.rules import MAX_ROUNDS, components, dedupe_by_rules, link_by_rules
from votelake.resolve.settings import ResolveSettings

REGISTRATIONS = (
    "registration_key string, state_voter_id string, first_name string, middle_name string, last_name string, "
    "birth_year int, gender string, zip5 string, phone string"
)
PERSONS = ("person_id string, state_voter_id string, first_name string, last_name string, address_key string, "
           "zip5 string, phone string, email string")
RECORDS = ("record_id string, claimed_state_voter_id string, first_name string, last_name string, "
           "address_key string, zip5 string, phone string, email string")


def test_dedupe_joins_moves_and_nicknames_and_keeps_namesakes_and_spouses_apart(spark):
    regs = spark.createDataFrame([
        # The same NCID in two counties (a move).
        ("a1", "N1", "ROBERT", "LEE", "HALL", 1970, "M", "27510", None),
        ("a2", "N1", "ROBERT", "LEE", "HALL", 1970, "M", "27601", None),
        # A new NCID under a nickname, same ZIP.
        ("b1", "N2", "WILLIAM", "JAMES", "PRICE", 1985, "M", "27510", None),
        ("b2", "N3", "BILL", None, "PRICE", 1985, "M", "27510", None),
        # Spouses born the same year sharing a landline stay two persons.
        ("c1", "N4", "MARGARET", "ANN", "COLE", 1990, "F", "27510", "+19195550101"),
        ("c2", "N5", "DAVID", None, "COLE", 1990, "M", "27510", "+19195550101"),
        # A namesake: same name and ZIP, another birth year.
        ("d1", "N6", "ROBERT", "LEE", "HALL", 1995, "M", "27510", None),
    ], REGISTRATIONS)
    expected = spark.createDataFrame(
        [("a1", "a1"), ("a2", "a1"), ("b1", "b1"), ("b2", "b1"), ("c1", "c1"), ("c2", "c2"), ("d1", "d1")],
        "registration_key string, cluster_id string")
    assertDataFrameEqual(dedupe_by_rules(regs), expected)


def test_namesakes_under_different_voter_ids_stay_apart_when_gender_or_middle_name_disagree(spark):
    regs = spark.createDataFrame([
        # Same last name, first-name alias, birth year and ZIP: the ZIP rule pairs them all.
        ("e1", "N10", "JORDAN", "ALEX", "REED", 1980, "M", "27510", None),
        ("e2", "N11", "JORDAN", "BETH", "REED", 1980, "F", "27510", None),   # other gender and middle name
        ("e3", "N12", "JORDAN", "CARL", "REED", 1980, "M", "27510", None),   # other middle name
        ("e4", "N13", "JORDAN", "A", "REED", 1980, "M", "27510", None),      # the initial of e1's middle name
        # The same voter id merges whatever the other fields say (a corrected record).
        ("f1", "N20", "DANA", "LYNN", "MOSS", 1975, "F", "27601", None),
        ("f2", "N20", "DANA", "MARIE", "MOSS", 1975, "M", "27601", None),
    ], REGISTRATIONS)
    expected = spark.createDataFrame(
        [("e1", "e1"), ("e2", "e2"), ("e3", "e3"), ("e4", "e1"), ("f1", "f1"), ("f2", "f1")],
        "registration_key string, cluster_id string")
    assertDataFrameEqual(dedupe_by_rules(regs), expected)


def test_components_of_chains_longer_than_the_round_limit(spark):
    """A chain of three times ``MAX_ROUNDS`` links, its keys in shuffled order,
    is one component; label propagation alone needs a round per link."""
    keys = [f"k{i:03d}" for i in range(3 * MAX_ROUNDS + 1)]
    random.Random(3).shuffle(keys)
    # Each link runs from its larger key to its smaller, as rule pairs do.
    chain = [(max(a, b), min(a, b)) for a, b in zip(keys, keys[1:])]
    edges = spark.createDataFrame(chain, "src string, dst string")
    every_key = spark.createDataFrame([(k,) for k in keys + ["lone", "unlinked"]], "registration_key string")
    expected = spark.createDataFrame([(k, "k000") for k in keys] + [("lone", "lone"), ("unlinked", "unlinked")],
                                     "registration_key string, cluster_id string")
    assertDataFrameEqual(components(edges, every_key), expected)


def test_records_link_by_the_first_unique_key_and_never_to_an_ambiguous_one(spark):
    persons = spark.createDataFrame([
        ("p1", "N1", "ANNA", "BELL", "12 OAK ST", "27510", "+19195550101", None),
        ("p2", "N2", "JOHN", "SMITH", "40 ELM ST", "27510", None, None),
        ("p3", "N3", "JOHN", "SMITH", "77 PINE RD", "27510", None, None),
        ("p4", "N4", "CARLA", "DIAZ", "5 MAPLE AVE", "27511", None, None),
        ("p5", "N5", "DAVID", "DIAZ", "5 MAPLE AVE", "27511", None, None),
    ], PERSONS)
    records = spark.createDataFrame([
        ("r1", "N1", None, None, None, None, None, None),                       # claimed voter id
        ("r2", None, None, None, None, None, "+19195550101", "anna@x.org"),     # phone
        ("r3", None, None, None, None, None, None, "anna@x.org"),               # e-mail learnt from r2
        ("r4", None, "JOHN", "SMITH", "40 ELM ST", "27510", None, None),        # name and address
        ("r5", None, "JOHN", "SMITH", None, "27510", None, None),               # two John Smiths: none
        ("r6", None, "CRALA", "DIAZ", "5 MAPLE AVE", "27511", None, None),      # typo: initial and address
        ("r7", None, "CARLA", "DIAS", "5 MAPLE AVE", "27511", None, None),      # typo: first name and address
        ("r8", None, "ANNA", "BELL", None, "27510", None, None),                # name and ZIP
        ("r9", None, "ZOE", "KING", "1 BAY ST", "27510", None, None),           # nobody
    ], RECORDS)
    expected = spark.createDataFrame([
        Row("r1", "p1", 1.0, "state_voter_id"),
        Row("r2", "p1", 1.0, "phone"),
        Row("r3", "p1", 1.0, "email_from_records"),
        Row("r4", "p2", 1.0, "name_address"),
        Row("r5", None, None, "none"),
        Row("r6", "p4", 1.0, "initial_address"),
        Row("r7", "p4", 1.0, "first_name_address"),
        Row("r8", "p1", 1.0, "name_zip"),
        Row("r9", None, None, "none"),
    ], "record_id string, person_id string, match_probability double, matched_by string")
    assertDataFrameEqual(link_by_rules(records, persons), expected)


def test_rule_links_win_and_the_model_fills_the_rest(spark):
    schema = "record_id string, person_id string, match_probability double, matched_by string"
    by_rules = spark.createDataFrame([("r1", "p1", 1.0, "name_address"), ("r2", None, None, "none"),
                                      ("r3", None, None, "none")], schema)
    by_model = spark.createDataFrame([("r1", "p9", 0.97, "splink"), ("r2", "p2", 0.99, "splink"),
                                      ("r3", None, None, "none")], schema)
    expected = spark.createDataFrame([("r1", "p1", 1.0, "name_address"), ("r2", "p2", 0.99, "splink"),
                                      ("r3", None, None, "none")], schema)
    assertDataFrameEqual(prefer_first(by_rules, by_model), expected)


def test_a_refresh_links_again_only_the_records_a_changed_person_row_reaches(spark):
    settings = ResolveSettings()
    before = spark.createDataFrame([
        ("p1", "N1", "ANNA", "BELL", "1 OAK ST", "27510", "+19195550101", "anna@x.org"),
        ("p2", "N2", "JOHN", "SMITH", "40 ELM ST", "27510", None, None),
        ("p3", "N3", "JOHN", "SMITH", "9 PINE RD", "27510", None, None),
    ], PERSONS)
    # John Smith of Elm Street moves; Zoe King registers.
    now = before.where("person_id != 'p2'").unionByName(spark.createDataFrame([
        ("p2", "N2", "JOHN", "SMITH", "7 ASH CT", "27510", None, None),
        ("p4", "N4", "ZOE", "KING", "1 BAY ST", "27510", None, None),
    ], PERSONS))
    records = spark.createDataFrame([
        ("r1", "N1", None, None, None, None, None, None),                       # claimed voter id
        ("r2", None, None, None, None, None, "+19195550101", "anna@x.org"),     # phone
        ("r4", None, "JOHN", "SMITH", "40 ELM ST", "27510", None, None),        # the old address: reached
        ("r5", None, "ZOE", "KING", "1 BAY ST", "27510", None, None),           # the new person: reached
    ], RECORDS)
    # A new record: Anna Bell's e-mail.
    records_now = records.unionByName(spark.createDataFrame([
        ("r6", None, None, None, None, None, None, "anna@x.org")], RECORDS))
    kept, _, figures = relink(spark, records, before, settings, None, "rules")
    assert figures == {"linked_again": "all"}
    previous = PreviousLinks(kept, changed_rows(before, now))
    local, _, figures = relink(spark, records_now, now, settings, None, "rules", previous)
    assert figures == {"linked_again": 3}  # r4, r5 and the new r6
    everything, _, _ = relink(spark, records_now, now, settings, None, "rules")
    assertDataFrameEqual(local, everything)
    expected = spark.createDataFrame([
        Row("r1", "p1", 1.0, "state_voter_id"), Row("r2", "p1", 1.0, "phone"),
        Row("r4", None, None, "none"), Row("r5", "p4", 1.0, "name_address"),
        Row("r6", "p1", 1.0, "email"),
    ], "record_id string, person_id string, match_probability double, matched_by string")
    assertDataFrameEqual(final_links(local, records_now, now, settings, "rules"), expected)
    assertDataFrameEqual(link_by_rules(records_now, now), expected)

