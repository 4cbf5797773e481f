"""Unit tests of the pure transforms on small hand-built DataFrames."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from votelake.transforms import features as feat
from votelake.transforms import silver
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


NCVOTER_COLS = [
    "ncid", "county_id", "county_desc", "voter_reg_num", "status_cd", "reason_cd", "first_name",
    "middle_name", "last_name", "name_suffix_lbl", "res_street_address", "res_city_desc", "zip_code",
    "full_phone_number", "party_cd", "race_code", "ethnic_code", "gender_code", "birth_year",
    "birth_state", "registr_dt", "precinct_abbrv", "cong_dist_abbrv", "nc_senate_abbrv",
    "nc_house_abbrv", "municipality_abbrv",
]


def _ncvoter_row(ncid, county, status, registered, first="ann", phone=""):
    values = {
        "ncid": ncid, "county_id": county, "county_desc": "wake", "voter_reg_num": "1", "status_cd": status,
        "reason_cd": "AV", "first_name": first, "middle_name": "", "last_name": "lee", "name_suffix_lbl": "",
        "res_street_address": "1 main st", "res_city_desc": "raleigh", "zip_code": "27601.0",
        "full_phone_number": phone, "party_cd": "dem", "race_code": "W", "ethnic_code": "NL",
        "gender_code": "F", "birth_year": "1980", "birth_state": "NC", "registr_dt": registered,
        "precinct_abbrv": "01", "cong_dist_abbrv": "2", "nc_senate_abbrv": "15", "nc_house_abbrv": "33",
        "municipality_abbrv": "",
    }
    return tuple(values[c] for c in NCVOTER_COLS)


def test_voters_keeps_active_registration_of_a_moved_voter(spark):
    bronze = _strings(
        spark,
        NCVOTER_COLS,
        [
            _ncvoter_row("AB1", "92", "R", "01/02/2010"),  # old county, removed after the move
            _ncvoter_row("AB1", "60", "A", "03/04/2020", phone="919.555.0100"),
            _ncvoter_row("CD2", "92", "I", "bad-date"),
            _ncvoter_row(" ", "92", "A", "01/01/2000"),  # no voter id: not a voter row
        ],
    ).withColumn("_loaded_at", F.lit(dt.datetime(2026, 9, 1, 12)))
    out = silver.voters(bronze, "NC", "MM/dd/yyyy").select(
        "voter_key", "county_id", "status_cd", "is_active", "first_name", "zip5", "phone", "registration_date",
        "snapshot_date",
    )
    expected = spark.createDataFrame(
        [
            ("NC:AB1", 60, "A", True, "ANN", "27601", "+19195550100", dt.date(2020, 3, 4), dt.date(2026, 9, 1)),
            ("NC:CD2", 92, "I", False, "ANN", "27601", None, None, dt.date(2026, 9, 1)),
        ],
        "voter_key string, county_id int, status_cd string, is_active boolean, first_name string, "
        "zip5 string, phone string, registration_date date, snapshot_date date",
    )
    assertDataFrameEqual(out, expected)


def test_latest_load_keeps_only_newest(spark):
    df = spark.createDataFrame([("20260101T000000-a", 1), ("20260301T000000-b", 2), ("20260301T000000-b", 3)],
                               "_load_id string, v int")
    assertDataFrameEqual(silver.latest_load(df).select("v"), spark.createDataFrame([(2,), (3,)], "v int"))


@pytest.mark.parametrize(
    "desc, kind",
    [("11/05/2024 GENERAL", "GENERAL"), ("03/05/2024 PRIMARY", "PRIMARY"),
     ("11/07/2023 MUNICIPAL GENERAL", "MUNICIPAL"), ("04/01/2025 SPECIAL", "OTHER")],
)
def test_election_type(spark, desc, kind):
    df = spark.createDataFrame([(desc,)], "d string")
    assert df.select(silver.election_type(F.col("d"))).first()[0] == kind


VOTERS_SCHEMA = (
    "voter_key string, state string, county_id int, precinct string, cong_dist string, is_active boolean, "
    "gender_code string, race_code string, ethnic_code string, party_cd string, birth_year int, "
    "registration_date date, phone string"
)
HISTORY_SCHEMA = "voter_key string, election_date date, election_type string, voting_method string, voted_party_cd string"
CONTACTS_SCHEMA = "voter_key string, attempted_at timestamp, is_contact boolean, support_id int"
DIGITAL_SCHEMA = "voter_key string, event_ts timestamp, event_type string"

G16, G20, G24 = dt.date(2016, 11, 8), dt.date(2020, 11, 3), dt.date(2024, 11, 5)
P24 = dt.date(2024, 3, 5)
ELECTIONS = [feat.Election(G16, "GENERAL"), feat.Election(G20, "GENERAL"), feat.Election(P24, "PRIMARY"),
             feat.Election(G24, "GENERAL")]


def _feature_inputs(spark):
    voters = spark.createDataFrame(
        [
            ("NC:1", "NC", 92, "01", "2", True, "F", "W", "NL", "DEM", 1960, dt.date(2000, 1, 1), "+19195550100"),
            # registered in 2019 and born 2000: eligible for 2020 only (18 in 2018, too late for 2016)
            ("NC:2", "NC", 92, "01", "2", True, "M", "B", "NL", "UNA", 2000, dt.date(2019, 6, 1), None),
            # registered after the cutoff: not in the training population
            ("NC:3", "NC", 60, "07", "12", True, "U", "U", "UN", "REP", 1990, dt.date(2025, 1, 1), None),
        ],
        VOTERS_SCHEMA,
    )
    history = spark.createDataFrame(
        [
            ("NC:1", G16, "GENERAL", "IN-PERSON", "DEM"),
            ("NC:1", G20, "GENERAL", "ABSENTEE BY MAIL", "DEM"),
            ("NC:1", P24, "PRIMARY", "IN-PERSON", "DEM"),
            ("NC:1", G24, "GENERAL", "IN-PERSON", "DEM"),  # the label election: must not leak
            ("NC:2", G24, "GENERAL", "IN-PERSON", "UNA"),
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
        "voter_key", "age", "generals_eligible", "generals_voted", "general_rate", "primaries_voted",
        "voted_last_general", "early_or_mail_share", "dem_ballots", "contact_attempts", "digital_events",
    )
    expected = spark.createDataFrame(
        [
            ("NC:1", 64, 2, 2, 1.0, 1, 1, 1 / 3, 1, 1, 0),
            ("NC:2", 24, 1, 0, 0.0, 0, 0, None, 0, 0, 0),
        ],
        "voter_key string, age int, generals_eligible int, generals_voted int, general_rate double, "
        "primaries_voted int, voted_last_general int, early_or_mail_share double, dem_ballots int, "
        "contact_attempts int, digital_events int",
    )
    assertDataFrameEqual(out, expected)


def test_no_event_after_cutoff_leaks(spark):
    """Adding events on or after the as-of date must not change any feature."""
    voters, history, contacts, digital = _feature_inputs(spark)
    before = feat.voter_features(voters, history, contacts, digital, G24, ELECTIONS)
    future_history = history.unionByName(
        spark.createDataFrame([("NC:2", dt.date(2026, 3, 3), "PRIMARY", "IN-PERSON", "REP")], HISTORY_SCHEMA)
    )
    future_contacts = contacts.unionByName(
        spark.createDataFrame([("NC:2", dt.datetime(2024, 11, 5), True, 5)], CONTACTS_SCHEMA)
    )
    future_digital = digital.unionByName(
        spark.createDataFrame([("NC:1", dt.datetime(2024, 11, 5, 0, 0, 1), "signup")], DIGITAL_SCHEMA)
    )
    after = feat.voter_features(voters, future_history, future_contacts, future_digital, G24, ELECTIONS)
    assertDataFrameEqual(after, before)


def test_turnout_and_support_labels(spark):
    _, history, contacts, _ = _feature_inputs(spark)
    assertDataFrameEqual(
        feat.turnout_labels(history, feat.Election(G24, "GENERAL")),
        spark.createDataFrame([("NC:1", 1.0), ("NC:2", 1.0)], "voter_key string, label double"),
    )
    # the later ID (2) wins over the earlier (1); both mean support
    assertDataFrameEqual(
        feat.support_labels(contacts, dt.date(2026, 9, 1)),
        spark.createDataFrame([("NC:1", 1.0)], "voter_key string, label double"),
    )


CONTACT_COLS = ["contact_id", "state_voter_id", "phone", "email", "channel", "attempted_at", "result_code",
                "survey_question", "support_id", "program"]
DIGITAL_COLS = ["event_id", "email", "phone", "channel", "event_type", "event_ts", "campaign"]


def test_contacts_and_digital_are_keyed_by_id_then_phone_then_email(spark):
    voters = spark.createDataFrame(
        [("NC:A1", "+19195550100"), ("NC:B2", "+19195550200"), ("NC:C3", "+19195550300"),
         ("NC:D4", "+19195550300")],  # a shared phone identifies nobody
        "voter_key string, phone string",
    )
    bronze_contacts = _strings(spark, CONTACT_COLS, [
        ("c1", "a1", "", "", "door", "2026-07-01T10:00:00", "canvassed", "SUPPORT_2026", "2", "id_2026"),
        ("c2", "", "(919) 555-0200", "Pat@Example.org", "phone", "2026-07-02T10:00:00", "NO_ANSWER", "", "", ""),
        ("c3", "ZZ9", "919-555-0300", "", "text", "2026-07-03T10:00:00", "REPLIED", "", "9", ""),
        ("c4", "", "", "", "door", "not a time", "CANVASSED", "", "", ""),  # no timestamp: not a contact row
    ])
    keyed = silver.contacts(bronze_contacts, voters, "NC", "yyyy-MM-dd'T'HH:mm:ss")
    assertDataFrameEqual(
        keyed.select("contact_id", "voter_key", "matched_by", "channel", "is_contact", "support_id"),
        spark.createDataFrame(
            [("c1", "NC:A1", "state_voter_id", "DOOR", True, 2), ("c2", "NC:B2", "phone", "PHONE", False, None),
             ("c3", None, "none", "TEXT", True, None)],
            "contact_id string, voter_key string, matched_by string, channel string, is_contact boolean, "
            "support_id int",
        ),
    )
    emails = silver.email_owners(bronze_contacts, keyed)
    bronze_digital = _strings(spark, DIGITAL_COLS, [
        ("e1", "", "9195550100", "email", "open", "2026-07-05T08:00:00", "x"),
        ("e2", " pat@example.org", "", "web", "signup", "2026-07-06T08:00:00", "x"),
        ("e3", "nobody@example.net", "", "sms", "click", "2026-07-07T08:00:00", "x"),
    ])
    assertDataFrameEqual(
        silver.digital_events(bronze_digital, voters, emails, "yyyy-MM-dd'T'HH:mm:ss").select(
            "event_id", "voter_key", "matched_by"
        ),
        spark.createDataFrame(
            [("e1", "NC:A1", "phone"), ("e2", "NC:B2", "email"), ("e3", None, "none")],
            "event_id string, voter_key string, matched_by string",
        ),
    )


def test_malformed_landing_rows_are_quarantined_not_dropped(spark, tmp_path):
    from votelake.jobs.ingest import read_landing, split_bronze
    from votelake.landing import list_files
    from votelake.layouts import Layout

    layout = Layout(name="t", format="delimited", columns=("a", "b", "c"), delimiter="\t")
    (tmp_path / "f.txt").write_text("a\tb\tc\n1\t2\t3\n4\t5\n6\t7\t8\t9\n10\t11\t12\n")
    # Spark only evaluates the corrupt-record column on materialized input; the job persists too.
    parsed = read_landing(spark, layout, list_files(str(tmp_path))).cache()
    good, bad = split_bronze(parsed, "t", "L1", dt.datetime(2026, 1, 1))
    assertDataFrameEqual(
        good.select("a", "b", "c", "_load_id"),
        spark.createDataFrame([("1", "2", "3", "L1"), ("10", "11", "12", "L1")], "a string, b string, c string, _load_id string"),
    )
    assertDataFrameEqual(
        bad.select("source", "raw"),
        spark.createDataFrame([("t", "4\t5"), ("t", "6\t7\t8\t9")], "source string, raw string"),
    )
    assert good.count() + bad.count() == 4
