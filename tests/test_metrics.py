"""The campaign metrics mart on inline data: every figure of every row."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from votelake.config import AllocationSettings, ChannelSettings
from votelake.transforms import metrics

CONTACTS = ("contact_id string, person_id string, channel string, attempted_at timestamp, result_code string, "
            "is_contact boolean, support_id int, program string")
MART = ("state string, county_id int, precinct string, program string, channel string, week_start date, "
        "attempts bigint, contacts_made bigint, contact_rate double, survey_ids bigint, support_ids bigint, "
        "undecided_ids bigint, conversions bigint, conversion_rate double, opens bigint, clicks bigint, "
        "engaged bigint, recipients bigint, engagement_rate double, election_date date, turnout_contacted double, "
        "turnout_not_contacted double, cost double, expected_net_votes double, cost_per_net_vote double")
CFG = AllocationSettings(channels={
    "door": ChannelSettings(contact_rate=0.5, cost=2.0, capacity_per_county_week=1, gotv_effect=0.1),
    "phone": ChannelSettings(contact_rate=0.2, cost=1.0, budget=10.0, persuasion_share=0.5)})
MON, NEXT_MON, ELECTION = dt.date(2026, 6, 1), dt.date(2026, 6, 8), dt.date(2026, 11, 3)


def _t(day: int) -> dt.datetime:
    return dt.datetime(2026, 6, day, 17, 0)


def test_campaign_metrics(spark):
    contacts = spark.createDataFrame([
        ("c1", "p1", "door", _t(1), "CANVASSED", True, 3, "id"),      # undecided
        ("c2", "p1", "phone", _t(10), "CANVASSED", True, 1, "id"),    # then support: a conversion
        ("c3", "p2", "door", _t(2), "NOT_HOME", False, None, "id"),
        ("c4", None, "door", _t(3), "CANVASSED", True, 2, "id"),       # matched to no person
        ("c5", "p3", "DOOR", _t(2), "CANVASSED", True, 5, "id"),     # silver spells channels in capitals
    ], CONTACTS)
    persons = spark.createDataFrame([
        ("p1", "NC", 1, "A", "x@example.org", "+19195550100"),
        ("p2", "NC", 1, "A", None, "+19195550101"),
        ("p3", "NC", 1, "B", None, None),
        ("p4", "NC", 1, "A", None, None),                                # never contacted
    ], "person_id string, state string, county_id int, precinct string, email string, phone string")
    scores = spark.createDataFrame(
        [("p1", 0.5, 0.9, 0.1)], "person_id string, turnout_prob double, support_prob double, persuasion_uplift double")
    history = spark.createDataFrame([("p1", ELECTION, "GENERAL"), ("p2", ELECTION, "GENERAL")],
                                    "person_id string, election_date date, election_type string")
    digital = spark.createDataFrame([
        ("p1", "EMAIL", "sent", dt.datetime(2026, 6, 5, 8), "june"),
        ("p4", "EMAIL", "sent", dt.datetime(2026, 6, 5, 8), "june"),
        ("p1", "email", "open", dt.datetime(2026, 6, 5, 9), "june"),
        ("p1", "email", "click", dt.datetime(2026, 6, 5, 9, 2), "june"),
        ("p1", "SMS", "sent", dt.datetime(2026, 6, 6, 11), None),
        ("p2", "SMS", "sent", dt.datetime(2026, 6, 6, 11), None),
        ("p2", "sms", "opt_out", dt.datetime(2026, 6, 6, 12), None),
    ], "person_id string, channel string, event_type string, event_ts timestamp, campaign string")

    mart = metrics.campaign_metrics(contacts, digital, persons, history, scores, CFG)
    door = 2 * 1.0 * 0.5 * 0.1 + 0.1 * 4 * 0.5 * (1 - 0.5) * (2 * 0.9 - 1)
    phone = 2 * 0.5 * 0.5 * 0.1
    # A door contact made with p1 is worth 2·0.5·0.1 + 0.1·4·0.5·0.5·(2·0.9 − 1) = 0.18 net votes.
    expected = spark.createDataFrame([
        ("NC", 1, "A", "id", "door", MON, 2, 1, 0.5, 1, 0, 1, 0, None, None, None, None, None, None,
         ELECTION, 1.0, 0.0, 4.0, door, 4.0 / door),
        ("NC", 1, "B", "id", "door", MON, 1, 1, 1.0, 1, 0, 0, 0, None, None, None, None, None, None,
         ELECTION, 0.0, None, 2.0, None, None),
        (None, None, None, "id", "door", MON, 1, 1, 1.0, 1, 1, 0, 0, None, None, None, None, None, None,
         None, None, None, 2.0, None, None),
        # A phone contact made with p1: 2·0.5·0.5·0.1 = 0.05; p1 was undecided before: one conversion of one.
        ("NC", 1, "A", "id", "phone", NEXT_MON, 1, 1, 1.0, 1, 1, 0, 1, 1.0, None, None, None, None, None,
         ELECTION, 1.0, 0.0, 1.0, phone, 1.0 / phone),
        # Digital: one of the two e-mail recipients engaged; neither SMS recipient did.
        ("NC", 1, "A", "june", "email", MON, None, None, None, None, None, None, None, None, 1, 1, 1, 2, 0.5,
         None, None, None, None, None, None),
        ("NC", 1, "A", "sms", "sms", MON, None, None, None, None, None, None, None, None, 0, 0, 0, 2, 0.0,
         None, None, None, None, None, None),
    ], MART)
    assertDataFrameEqual(mart, expected, rtol=1e-9)
