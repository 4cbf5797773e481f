"""Unit tests of the pure transforms on small hand-built DataFrames."""

from __future__ import annotations

import datetime as dt
from functools import reduce

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.models import propensity as prop
from votelake.transforms import features as feat
from votelake.transforms import silver
from votelake.transforms import training_sets
from votelake.transforms.standardize import clean_email, clean_name, parse_int, phone_e164

S = T.StringType()


def _strings(spark, columns, rows):
    return spark.createDataFrame(rows, T.StructType([T.StructField(c, S) for c in columns]))


def test_standardizers(spark):
    df = _strings(
        spark,
        ["name", "phone", "email", "num"],
        [
            ("  mary   ann ", "(919) 555-0142", " Ann.Smith@Example.COM ", "6.0"),
            ("", "1-919-555-0142", "not-an-email", "x"),
            (None, "555-0142", None, None),
        ],
    )
    out = df.select(
        clean_name("name").alias("name"),
        phone_e164(F.col("phone")).alias("phone"),
        clean_email(F.col("email")).alias("email"),
        parse_int(F.col("num")).alias("num"),
    )
    expected = spark.createDataFrame(
        [("MARY ANN", "+19195550142", "ann.smith@example.com", 6), (None, "+19195550142", None, None),
         (None, None, None, None)],
        "name string, phone string, email string, num int",
    )
    assertDataFrameEqual(out, expected)


def _snapshot_rows(spark, rows):
    """Registration snapshots in the registration_snapshots shape: (key, date, load id, attribute overrides)."""
    base = {c: None for c in silver.REGISTRATION_ATTRIBUTES}
    base.update(state="NC", state_voter_id="X", registration_id="X", is_active=True)
    schema = "registration_key string, snapshot_date date, _load_id string, " + ", ".join(
        f"{c} {_REG_TYPES.get(c, 'string')}" for c in silver.REGISTRATION_ATTRIBUTES)
    data = [(k, d, load, *[{**base, **over}[c] for c in silver.REGISTRATION_ATTRIBUTES]) for k, d, load, over in rows]
    return spark.createDataFrame(data, schema)


_REG_TYPES = {"county_id": "int", "is_active": "boolean", "birth_date": "date", "birth_year": "int",
              "registration_date": "date", "confidential": "boolean"}
S1, S2, S3 = dt.date(2024, 1, 1), dt.date(2024, 6, 1), dt.date(2025, 1, 1)


def test_registration_history_is_scd2(spark):
    snaps = _snapshot_rows(spark, [
        # R1: party changes at S2, then unchanged at S3 → two versions, the second current.
        ("NC:R1", S1, "L1", {"party": "DEM", "status": "ACTIVE"}),
        ("NC:R1", S2, "L2", {"party": "UNA", "status": "ACTIVE"}),
        ("NC:R1", S3, "L3", {"party": "UNA", "status": "ACTIVE", "phone": "+19195550100"}),
        # R2: listed at S1, gone at S2, back at S3 → a closed version and a new one.
        ("NC:R2", S1, "L1", {"address_line": "1 MAIN ST"}),
        ("NC:R2", S3, "L3", {"address_line": "1 MAIN ST"}),
        # R3: dropped from the newest snapshot → its only version ends at S3, not current.
        ("NC:R3", S1, "L1", {}),
        ("NC:R3", S2, "L2", {}),
        # the same snapshot loaded twice: the later load wins, no extra version
        ("NC:R3", S2, "L2b", {}),
    ])
    got = silver.registration_history(snaps).select(
        "registration_key", "version", "valid_from", "valid_to", "is_current", "party", "phone", "snapshots")
    expected = spark.createDataFrame([
        ("NC:R1", 1, S1, S2, False, "DEM", None, 1),
        ("NC:R1", 2, S2, None, True, "UNA", "+19195550100", 2),
        ("NC:R2", 1, S1, S2, False, None, None, 1),
        ("NC:R2", 2, S3, None, True, None, None, 1),
        ("NC:R3", 1, S1, S3, False, None, None, 2),
    ], "registration_key string, version int, valid_from date, valid_to date, is_current boolean, party string, "
       "phone string, snapshots int")
    assertDataFrameEqual(got, expected)


S4 = dt.date(2025, 6, 1)


@pytest.mark.parametrize("through", [S1, S2, S3])
def test_a_history_extended_by_newer_snapshots_equals_the_history_of_them_all(spark, through):
    snaps = _snapshot_rows(spark, [
        ("NC:R1", S1, "L1", {"party": "DEM"}), ("NC:R1", S2, "L2", {"party": "UNA"}),
        ("NC:R1", S3, "L3", {"party": "UNA", "phone": "+19195550100"}), ("NC:R1", S4, "L4", {"party": "UNA"}),
        # absent at S2, back at S3; absent at S2 and S3, back at S4
        ("NC:R2", S1, "L1", {}), ("NC:R2", S3, "L3", {}), ("NC:R2", S4, "L4", {}),
        ("NC:R7", S1, "L1", {}), ("NC:R7", S4, "L4", {"last_name": "ROE"}),
        # the same snapshot loaded twice (the later load wins); gone after S2
        ("NC:R3", S1, "L1", {}), ("NC:R3", S2, "L2", {}), ("NC:R3", S2, "L2b", {"middle_name": "Q"}),
        # new at S3; listed at S1 only; a name changed at S3 and changed back at S4
        ("NC:R4", S3, "L3", {}), ("NC:R4", S4, "L4", {}), ("NC:R5", S1, "L1", {}),
        ("NC:R6", S1, "L1", {"last_name": "LEE"}), ("NC:R6", S2, "L2", {"last_name": "LEE"}),
        ("NC:R6", S3, "L3", {"last_name": "KIM"}), ("NC:R6", S4, "L4", {"last_name": "LEE"}),
    ])
    before = F.col("snapshot_date") <= F.lit(through)
    extended = silver.extend_registration_history(silver.registration_history(snaps.where(before)),
                                                  snaps.where(~before), through)
    assertDataFrameEqual(extended.select(*silver.VERSION_COLUMNS),
                         silver.registration_history(snaps).select(*silver.VERSION_COLUMNS))


def test_registration_snapshots_standardize_and_keep_raw(spark):
    from votelake.canonical import FIELDS

    cols = list(FIELDS["voters"]) + ["_source_file", "_load_id"]
    values = {"state_voter_id": "ab1", "registration_id": "60-1", "first_name": "  mary  ann", "last_name": "Smith Jr.",
              "res_address1": "12 north main street", "res_address2": "apt 4", "res_zip": "27601.0",
              "phone": "(919) 555-0142", "email": " Ann@Example.COM", "cong_dist": "6.0", "status": "ACTIVE",
              "confidential": "N", "_source_file": "f", "_load_id": "L1"}
    df = spark.createDataFrame([tuple(values.get(c) for c in cols)], ", ".join(
        f"{c} {'int' if c in ('county_id', 'birth_year') else 'date' if c in ('birth_date', 'registration_date') else 'string'}"
        for c in cols)).select("*", F.lit(S1).alias("_snapshot_date"))
    got = silver.registration_snapshots(df, "NC").select(
        "registration_key", "state_voter_id", "first_name", "last_name", "name_suffix", "last_name_raw",
        "address_line", "address_key", "unit_number", "zip5", "phone", "email", "cong_dist", "is_active",
        "confidential")
    expected = spark.createDataFrame([(
        "NC:60-1", "AB1", "MARY ANN", "SMITH", "JR", "Smith Jr.", "12 N MAIN ST APT 4", "12 N MAIN ST", "4",
        "27601", "+19195550142", "ann@example.com", "6", True, False)],
        "registration_key string, state_voter_id string, first_name string, last_name string, name_suffix string, "
        "last_name_raw string, address_line string, address_key string, unit_number string, zip5 string, "
        "phone string, email string, cong_dist string, is_active boolean, confidential boolean")
    assertDataFrameEqual(got, expected)


def test_votes_are_keyed_to_persons_and_orphans_reported(spark):
    history = spark.createDataFrame([
        ("ab1", G24, "GENERAL", "EARLY", None, 92, "01"),
        ("AB1", G24, "GENERAL", "IN_PERSON", None, 92, "01"),  # the same vote twice: kept once
        ("CD2", G24, "GENERAL", "DID_NOT_VOTE", None, 92, "01"),  # a history record but not a vote
        ("EF3", G24, "GENERAL", "MAIL", None, 92, "01"),  # no such registration
        ("GH4", P24, "PRESIDENTIAL_PRIMARY", None, "REP", 92, "01"),
    ], "state_voter_id string, election_date date, election_type string, voting_method string, "
       "voted_party string, county_id int, precinct string")
    ids = spark.createDataFrame([("AB1", "P1"), ("CD2", "P2"), ("GH4", "P1")], "state_voter_id string, person_id string")
    votes, orphans = silver.votes(history, ids, "NC")
    assertDataFrameEqual(
        votes.select("person_id", "state_voter_id", "election_date", "election_type", "voted_party"),
        spark.createDataFrame([("P1", "AB1", G24, "GENERAL", None), ("P1", "GH4", P24, "PRESIDENTIAL_PRIMARY", "REP")],
                              "person_id string, state_voter_id string, election_date date, election_type string, "
                              "voted_party string"),
        checkRowOrder=False,
    )
    assert [r["state_voter_id"] for r in orphans.collect()] == ["EF3"]


VOTERS_SCHEMA = (
    "person_id string, state_voter_id string, state_voter_ids array<string>, state string, county_id int, "
    "precinct string, cong_dist string, state_senate string, state_house string, is_active boolean, status string, "
    "gender string, race string, ethnicity string, party string, birth_year int, first_registered date, phone string"
)
HISTORY_SCHEMA = "person_id string, election_date date, election_type string, voting_method string, voted_party string"
CONTACTS_SCHEMA = "person_id string, attempted_at timestamp, is_contact boolean, support_id int"
DIGITAL_SCHEMA = "person_id string, event_ts timestamp, event_type string"

G16, G20, G24 = dt.date(2016, 11, 8), dt.date(2020, 11, 3), dt.date(2024, 11, 5)
P24 = dt.date(2024, 3, 5)
ELECTIONS = [feat.Election(G16, "GENERAL"), feat.Election(G20, "GENERAL"), feat.Election(P24, "PRIMARY"),
             feat.Election(G24, "GENERAL")]


def _feature_inputs(spark):
    voters = spark.createDataFrame(
        [
            ("NC:1", "1", ["1"], "NC", 92, "01", "2", "14", "33", True, "ACTIVE", "F", "WHITE", "NOT_HISPANIC", "DEM",
             1960, dt.date(2000, 1, 1), "+19195550100"),
            # registered in 2019 and born 2000: eligible for 2020 only (18 in 2018, too late for 2016)
            ("NC:2", "2", ["2"], "NC", 92, "01", "2", "14", "33", True, "ACTIVE", "M", "BLACK", "NOT_HISPANIC", "UNA",
             2000, dt.date(2019, 6, 1), None),
            # registered after the cutoff: not in the training population
            ("NC:3", "3", ["3"], "NC", 60, "07", "12", "2", "5", True, "ACTIVE", "U", "UNKNOWN", "UNKNOWN", "REP", 1990,
             dt.date(2025, 1, 1), None),
        ],
        VOTERS_SCHEMA,
    )
    history = spark.createDataFrame(
        [
            ("NC:1", G16, "GENERAL", "IN_PERSON", "DEM"),
            ("NC:1", G20, "GENERAL", "MAIL", "DEM"),
            ("NC:1", P24, "PRESIDENTIAL_PRIMARY", "IN_PERSON", "DEM"),  # counted with primaries
            ("NC:1", G24, "GENERAL", "IN_PERSON", "DEM"),  # the label election: must not leak
            ("NC:2", G24, "GENERAL", "IN_PERSON", "UNA"),
        ],
        HISTORY_SCHEMA,
    )
    contacts = spark.createDataFrame(
        [("NC:1", dt.datetime(2024, 10, 1), True, 1), ("NC:1", dt.datetime(2026, 7, 1), True, 2)],
        CONTACTS_SCHEMA,
    )
    digital = spark.createDataFrame([("NC:2", dt.datetime(2024, 12, 1), "click")], DIGITAL_SCHEMA)
    return voters, history, contacts, digital


def test_features_use_only_events_before_as_of(spark):
    voters, history, contacts, digital = _feature_inputs(spark)
    out = feat.voter_features(voters, history, contacts, digital, G24, ELECTIONS).select(
        "person_id", "age", "generals_eligible", "generals_voted", "general_rate", "primaries_voted",
        "voted_last_general", "early_or_mail_share", "dem_ballots", "contact_attempts", "digital_events",
    )
    expected = spark.createDataFrame(
        [
            ("NC:1", 64, 2, 2, 1.0, 1, 1, 1 / 3, 1, 1, 0),
            ("NC:2", 24, 1, 0, 0.0, 0, 0, None, 0, 0, 0),
        ],
        "person_id string, age int, generals_eligible int, generals_voted int, general_rate double, "
        "primaries_voted int, voted_last_general int, early_or_mail_share double, dem_ballots int, "
        "contact_attempts int, digital_events int",
    )
    assertDataFrameEqual(out, expected)


def test_features_at_several_dates_in_one_pass_are_those_at_each_date(spark):
    """The build's one pass over the sources equals computing each date on its own, schema included."""
    voters, history, contacts, digital = _feature_inputs(spark)
    dates = [G16, G20, dt.date(2024, 6, 1), G24]
    each = [feat.voter_features(voters, history, contacts, digital, d, ELECTIONS) for d in dates]
    together = feat.voter_features_as_of(voters, history, contacts, digital, dates, ELECTIONS)
    assert together.schema == each[0].schema
    assertDataFrameEqual(together, reduce(DataFrame.unionByName, each))
    assert {r["as_of_date"] for r in together.select("as_of_date").distinct().collect()} == set(dates)


def test_a_registration_dated_after_a_vote_counts_from_that_vote(spark):
    # Re-registered in 2022 after a move, with votes in 2016 and 2020 under the same id.
    voters = spark.createDataFrame(
        [("NC:4", "4", ["4"], "NC", 92, "01", "2", "14", "33", True, "ACTIVE", "F", "WHITE", "NOT_HISPANIC", "DEM",
          1960, dt.date(2022, 5, 1), None)], VOTERS_SCHEMA)
    history = spark.createDataFrame(
        [("NC:4", G16, "GENERAL", "IN_PERSON", None), ("NC:4", G20, "GENERAL", "MAIL", None)], HISTORY_SCHEMA)
    contacts = spark.createDataFrame([], CONTACTS_SCHEMA)
    digital = spark.createDataFrame([], DIGITAL_SCHEMA)
    out = feat.voter_features(voters, history, contacts, digital, G24, ELECTIONS).select(
        "person_id", "generals_eligible", "generals_voted", "general_rate")
    assertDataFrameEqual(out, spark.createDataFrame(
        [("NC:4", 2, 2, 1.0)], "person_id string, generals_eligible int, generals_voted int, general_rate double"))
    # As of 2020 only the 2016 vote is known: in the 2020 electorate, eligible for one general.
    in_2020 = feat.voter_features(voters, history, contacts, digital, G20, ELECTIONS)
    assert [(r["generals_eligible"], r["generals_voted"]) for r in in_2020.collect()] == [(1, 1)]


def test_turnout_inputs_do_not_grow_with_the_depth_of_the_history(spark):
    """The election ahead always has one more general behind it than the newest example learnt from:
    a voter who voted in every general must give the turnout model the same inputs with two generals
    on file as with three."""
    voters, _, contacts, digital = _feature_inputs(spark)
    voters = voters.where(F.col("person_id") == "NC:1")
    history = spark.createDataFrame(
        [("NC:1", day, "GENERAL", "IN_PERSON", None) for day in (G16, G20, G24)], HISTORY_SCHEMA)
    target = feat.Target(dt.date(2026, 11, 3), "midterm")

    def turnout_inputs(elections, rows):
        features = feat.voter_features(voters, rows, contacts, digital, dt.date(2026, 1, 1), elections)
        return prop.model_frame(feat.with_target_election(features, target), prop.TURNOUT)

    deep = turnout_inputs(ELECTIONS, history)
    shallow = turnout_inputs([e for e in ELECTIONS if e.date != G16], history.where(F.col("election_date") != G16))
    assertDataFrameEqual(shallow, deep)


def test_no_event_after_cutoff_leaks(spark):
    """Adding events on or after the as-of date must not change any feature."""
    voters, history, contacts, digital = _feature_inputs(spark)
    before = feat.voter_features(voters, history, contacts, digital, G24, ELECTIONS)
    future_history = history.unionByName(
        spark.createDataFrame([("NC:2", dt.date(2026, 3, 3), "PRIMARY", "IN_PERSON", "REP")], HISTORY_SCHEMA)
    )
    future_contacts = contacts.unionByName(
        spark.createDataFrame([("NC:2", dt.datetime(2024, 11, 5), True, 5)], CONTACTS_SCHEMA)
    )
    future_digital = digital.unionByName(
        spark.createDataFrame([("NC:1", dt.datetime(2024, 11, 5, 0, 0, 1), "signup")], DIGITAL_SCHEMA)
    )
    after = feat.voter_features(voters, future_history, future_contacts, future_digital, G24, ELECTIONS)
    assertDataFrameEqual(after, before)


def test_precinct_party_shares_come_from_the_other_half(spark):
    parties = ["DEM", "REP", None, "DEM", "UNA"]
    rows = ([(f"a{i}", 1, "P1", parties[i % 5]) for i in range(60)]
            + [(f"b{i}", 1, "P2", "REP") for i in range(6)]  # too small: no shares
            + [("c0", 1, None, "DEM")])
    schema = "person_id string, county_id int, precinct string, party string"
    voters = spark.createDataFrame(rows, schema)
    shares = feat.precinct_party_shares(voters)
    # Expected: the halves by the same hash, then each half gets the other's shares.
    halves = {r["person_id"]: r["h"] for r in voters.select(
        "person_id", F.pmod(F.xxhash64("person_id"), F.lit(2)).alias("h")).collect()}
    p1 = [r for r in rows if r[2] == "P1"]
    def other_half(h):
        others = [r for r in p1 if halves[r[0]] != h]
        return (sum(r[3] == "DEM" for r in others) / len(others), sum(r[3] == "REP" for r in others) / len(others))
    expected = spark.createDataFrame(
        [(r[0], *other_half(halves[r[0]])) for r in p1] + [(f"b{i}", None, None) for i in range(6)],
        "person_id string, precinct_dem_share double, precinct_rep_share double")
    assertDataFrameEqual(shares, expected)
    # A voter's own party never moves their own feature.
    flipped = voters.select("person_id", "county_id", "precinct", F.when(F.col("person_id") == "a0", "REP")
                            .otherwise(F.col("party")).alias("party"))
    mine = lambda frame: frame.where(F.col("person_id") == "a0").collect()  # noqa: E731
    assert mine(feat.precinct_party_shares(flipped)) == mine(shares)


def test_turnout_and_support_labels(spark):
    _, history, contacts, _ = _feature_inputs(spark)
    assertDataFrameEqual(
        feat.turnout_labels(history, feat.Election(G24, "GENERAL")),
        spark.createDataFrame([("NC:1", 1.0), ("NC:2", 1.0)], "person_id string, label double"),
    )
    # the later ID (2) wins over the earlier (1); both mean support
    assertDataFrameEqual(
        feat.support_labels(contacts, dt.date(2026, 9, 1)),
        spark.createDataFrame([("NC:1", 1.0)], "person_id string, label double"),
    )


def test_contacts_and_digital_take_links_and_keep_unmatched(spark):
    records = spark.createDataFrame([
        ("c1", "DOOR", dt.datetime(2026, 7, 1, 10), "canvassed", "support_2026", 2, "id_2026", "L1"),
        ("c1", "DOOR", dt.datetime(2026, 7, 1, 10), "canvassed", "support_2026", 2, "id_2026", "L0"),  # older copy
        ("c2", "PHONE", dt.datetime(2026, 7, 2, 10), "NO_ANSWER", None, None, None, "L1"),
        ("c3", "TEXT", dt.datetime(2026, 7, 3, 10), "REPLIED", None, 9, None, "L1"),
    ], "record_id string, channel string, attempted_at timestamp, result string, survey_question string, "
       "support_id int, program string, _load_id string")
    links = spark.createDataFrame([("c1", "P1", None, "state_voter_id"), ("c2", "P2", 0.999, "splink")],
                                  "record_id string, person_id string, match_probability double, matched_by string")
    got = silver.contacts(records, links).select(
        "contact_id", "person_id", "matched_by", "result_code", "is_contact", "survey_question", "support_id")
    expected = spark.createDataFrame([
        ("c1", "P1", "state_voter_id", "CANVASSED", True, "SUPPORT_2026", 2),
        ("c2", "P2", "splink", "NO_ANSWER", False, None, None),
        ("c3", None, "none", "REPLIED", True, None, None),
    ], "contact_id string, person_id string, matched_by string, result_code string, is_contact boolean, "
       "survey_question string, support_id int")
    assertDataFrameEqual(got, expected)


def test_the_target_election_is_declared_or_the_next_general_and_never_in_the_past():
    assert feat.target_election(None, None, dt.date(2026, 3, 1)) == feat.Target(dt.date(2026, 11, 3), "midterm")
    assert feat.target_election(None, None, dt.date(2024, 11, 6)) == feat.Target(dt.date(2025, 11, 4), "off_year")
    declared = feat.target_election(dt.date(2028, 11, 7), None, dt.date(2026, 3, 1))
    assert declared == feat.Target(dt.date(2028, 11, 7), "presidential")
    with pytest.raises(ValueError, match="2024-11-05 is before the data's as-of date 2026-03-01"):
        feat.target_election(dt.date(2024, 11, 5), "presidential", dt.date(2026, 3, 1))


def test_turnout_learns_from_the_newest_generals_of_each_level():
    days = ["2014-11-04", "2016-11-08", "2017-11-07", "2018-11-06", "2019-11-05", "2020-11-03", "2022-11-08",
            "2024-11-05"]
    elections = [feat.Election(dt.date.fromisoformat(d), "GENERAL") for d in days]
    elections.append(feat.Election(dt.date(2024, 3, 5), "PRIMARY"))
    elections.append(feat.Election(dt.date(2018, 8, 7), "GENERAL"))  # a special election typed general (Ohio)
    chosen = feat.training_generals(elections, dt.date(2024, 11, 6), per_level=2)
    assert [e.date.isoformat() for e in chosen] == [
        "2017-11-07", "2018-11-06", "2019-11-05", "2020-11-03", "2022-11-08", "2024-11-05"]


def test_turnout_examples_leave_out_registrations_off_the_rolls(spark):
    day = dt.date(2022, 11, 8)
    level_columns = ("general_rate double, presidential_rate double, midterm_rate double, off_year_rate double, "
                     "voted_last_presidential int, voted_last_midterm int, voted_last_general int")
    record = (0.5, 1.0, 0.0, None, 1, 0, 1)
    features = spark.createDataFrame(
        [(p, day, 40, status, *record) for p, status in
         [("p1", "ACTIVE"), ("p2", "INACTIVE"), ("p3", "REMOVED"), ("p4", "DENIED"), ("p5", None)]],
        f"person_id string, as_of_date date, age int, status string, {level_columns}")
    # p3 voted before a removal the file does not date; p4's application was never accepted.
    history = spark.createDataFrame([("p1", day), ("p3", day)], "person_id string, election_date date")
    examples = training_sets.turnout_training_set(features, history, [feat.Election(day, "GENERAL")])
    assertDataFrameEqual(examples.select("person_id", "label"), spark.createDataFrame(
        [("p1", 1.0), ("p2", 0.0), ("p5", 0.0)], "person_id string, label double"))


def test_turnout_examples_are_measured_as_far_ahead_as_the_target(spark):
    """A score 61 days ahead learns from features 61 days ahead of each past general, aged to its day."""
    day, ahead = dt.date(2022, 11, 8), dt.date(2022, 9, 8)
    schema = ("person_id string, as_of_date date, age int, reg_tenure_years double, status string, "
              "general_rate double, presidential_rate double, midterm_rate double, off_year_rate double, "
              "voted_last_presidential int, voted_last_midterm int, voted_last_general int")
    features = spark.createDataFrame([
        ("p1", ahead, 40, 1.0, "ACTIVE", 0.5, 1.0, 0.0, None, 1, 0, 1),
        ("p1", day, 40, 1.2, "ACTIVE", 0.6, 1.0, 0.5, None, 1, 1, 1),  # voted in the primary in between
        ("p2", ahead, 18, 0.1, "ACTIVE", None, None, None, None, None, None, None),  # no history yet
        ("p2", day, 18, 0.3, "ACTIVE", None, None, None, None, None, None, None),
        ("p3", day, 50, 0.0, "ACTIVE", None, None, None, None, None, None, None),  # registered in between
        ("p4", ahead, 16, 0.1, "ACTIVE", None, None, None, None, None, None, None),  # pre-registered at 16
    ], schema)
    history = spark.createDataFrame([("p1", day, "GENERAL")],
                                    "person_id string, election_date date, election_type string")
    general = feat.Election(day, "GENERAL")
    examples = training_sets.turnout_training_set(features, history, [general], horizon_days=61)
    assertDataFrameEqual(
        examples.select("person_id", "as_of_date", "age", "reg_tenure_years", "same_level_rate", "label"),
        spark.createDataFrame([("p1", ahead, 40, 1.0 + 61 / 365.25, 0.0, 1.0),
                               ("p2", ahead, 18, 0.1 + 61 / 365.25, None, 0.0)],
                              "person_id string, as_of_date date, age int, reg_tenure_years double, "
                              "same_level_rate double, label double"))
    dates = [ahead, day, dt.date(2023, 1, 1)]
    assert training_sets.turnout_generals(dates, history, per_level=2, horizon_days=61) == [general]
    with pytest.raises(ValueError, match="30 days before the past generals"):
        training_sets.turnout_generals(dates, history, per_level=2, horizon_days=30)
    # Built for a target a cycle away, the table holds one general's date at this horizon, not both: no model
    # learns from what happens to be there.
    earlier = feat.Election(dt.date(2020, 11, 3), "GENERAL")
    both = history.unionByName(spark.createDataFrame([("p1", earlier.date, "GENERAL")], history.schema))
    with pytest.raises(ValueError, match=r"1 of 2 dates missing, e.g. 2020-09-03"):
        training_sets.turnout_generals(dates, both, per_level=2, horizon_days=61)


def test_with_target_election_carries_the_voters_record_at_that_level(spark):
    rows = spark.createDataFrame(
        [("p1", 1.0, 0.0, None, 1, 0, 1), ("p2", 0.5, None, None, 0, None, 0)],
        "person_id string, presidential_rate double, midterm_rate double, off_year_rate double, "
        "voted_last_presidential int, voted_last_midterm int, voted_last_general int")
    schema = ("person_id string, target_level string, same_level_rate double, voted_last_same_level int")
    midterm = feat.with_target_election(rows, feat.Target(dt.date(2026, 11, 3), "midterm"))
    assertDataFrameEqual(midterm.select("person_id", "target_level", "same_level_rate", "voted_last_same_level"),
                         spark.createDataFrame([("p1", "midterm", 0.0, 0), ("p2", "midterm", None, None)], schema))
    presidential = feat.with_target_election(rows, feat.Target(dt.date(2028, 11, 7), "presidential"))
    assertDataFrameEqual(
        presidential.select("person_id", "target_level", "same_level_rate", "voted_last_same_level"),
        spark.createDataFrame([("p1", "presidential", 1.0, 1), ("p2", "presidential", 0.5, 0)], schema))


def test_with_target_election_ages_voters_to_the_election_day(spark):
    """Training examples measure age and tenure on their election day; a score two years ahead does too."""
    schema = "person_id string, as_of_date date, age int, reg_tenure_years double, " \
        "presidential_rate double, midterm_rate double, voted_last_presidential int, voted_last_midterm int"
    rows = spark.createDataFrame([("p1", dt.date(2026, 9, 1), 40, 2.0, 1.0, 0.5, 1, 0),
                                  ("p2", dt.date(2026, 9, 1), None, None, None, None, 0, 0)], schema)
    ahead = feat.with_target_election(rows, feat.Target(dt.date(2028, 11, 7), "presidential"))
    tenure = 2.0 + (dt.date(2028, 11, 7) - dt.date(2026, 9, 1)).days / 365.25
    assertDataFrameEqual(ahead.select(*rows.columns), spark.createDataFrame(
        [("p1", dt.date(2026, 9, 1), 42, tenure, 1.0, 0.5, 1, 0),
         ("p2", dt.date(2026, 9, 1), None, None, None, None, 0, 0)], schema))
    # On its election day (a training example), the features are those measured.
    assertDataFrameEqual(
        feat.with_target_election(rows, feat.Target(dt.date(2026, 9, 1), "midterm")).select(*rows.columns), rows)


def test_a_person_answers_for_every_active_voter_id_it_holds(spark):
    current = spark.createDataFrame([
        ("P1", "r1", "A2", True, dt.date(2010, 1, 1)),
        ("P1", "r2", "A1", True, dt.date(2020, 1, 1)),   # the representative: registered last
        ("P1", "r3", "A3", False, dt.date(2022, 1, 1)),  # inactive: not one of its ids
        ("P2", "r4", "B1", False, dt.date(2015, 1, 1)),  # no active registration: its representative's id
    ], "person_id string, registration_key string, state_voter_id string, is_active boolean, registration_date date")
    expected = spark.createDataFrame(
        [("P1", "A1", ["A1", "A2"], 3), ("P2", "B1", ["B1"], 1)],
        "person_id string, state_voter_id string, state_voter_ids array<string>, registrations int")
    reps = silver.representatives(current)
    assertDataFrameEqual(reps.select("person_id", "state_voter_id", "state_voter_ids", "registrations"), expected)
