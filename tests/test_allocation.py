"""Resource allocation: the value of a contact, capacities and budgets, and the plan against the naive one."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from votelake.config import AllocationSettings, ChannelSettings
from votelake.transforms import allocation as alloc

VOTERS = ("person_id string, state_voter_id string, state string, county_id int, precinct string, "
          "turnout_prob double, support_prob double, persuasion_uplift double")
DOOR = ChannelSettings(contact_rate=0.5, cost=2.0, capacity_per_county_week=1, gotv_effect=0.1)
TEXT = ChannelSettings(contact_rate=0.1, cost=0.5, budget=1.0, gotv_effect=0.0, persuasion_share=0.2)


def _voters(spark):
    return spark.createDataFrame([
        ("a", "A", "NC", 1, "P1", 0.5, 0.9, 0.10),    # door: 0.5 (2·0.5·0.1 + 0.1·1·0.8) = 0.09
        ("b", "B", "NC", 1, "P1", 0.9, 0.5, 0.05),    # door: 0.5 (2·0.9·0.05 + 0) = 0.045
        ("c", "C", "NC", 2, "P2", 0.5, 0.1, 0.00),    # an opponent: mobilising them costs votes
        ("d", "D", "NC", 2, "P2", 0.8, 0.6, None),    # no uplift: GOTV only, 0.5·0.1·0.64·0.2 = 0.0064
        ("e", "E", "NC", 1, "P1", 0.6, 0.7, 0.02),    # text: 0.1·(0.2·2·0.6·0.02) = 0.00048
    ], VOTERS)


def test_plan_fills_capacity_by_value_and_skips_voters_it_would_lose(spark):
    cfg = AllocationSettings(weeks=1, channels={"door": DOOR, "text": TEXT})
    plan = alloc.allocate(_voters(spark), cfg)
    expected = spark.createDataFrame([
        ("a", "A", "NC", 1, "P1", "door", 1, 0.5, 0.09, 2.0),
        ("d", "D", "NC", 2, "P2", "door", 1, 0.5, 0.0064, 2.0),
        # text: a budget of 1.0 at 0.5 per attempt buys two texts; c (no uplift, texts move no turnout) is worth 0
        ("b", "B", "NC", 1, "P1", "text", 1, 0.1, 0.0018, 0.5),
        ("e", "E", "NC", 1, "P1", "text", 2, 0.1, 0.00048, 0.5),
    ], "person_id string, state_voter_id string, state string, county_id int, precinct string, channel string, "
       "county_rank int, contact_rate double, expected_net_votes double, cost double")
    assertDataFrameEqual(plan, expected, rtol=1e-9)


def test_county_capacity_overrides_and_weeks(spark):
    cfg = AllocationSettings(weeks=2, channels={"door": DOOR}, county_capacity={"door": {2: 0}})
    plan = alloc.allocate(_voters(spark), cfg)
    # County 1: capacity 1 × 2 weeks = 2 doors, by value; county 2: none.
    assert sorted(r["person_id"] for r in plan.collect()) == ["a", "b"]


def test_summary_totals(spark):
    cfg = AllocationSettings(weeks=1, channels={"door": DOOR, "text": TEXT})
    summary = alloc.summarize(alloc.allocate(_voters(spark), cfg))
    total = summary.where((F.col("county_id") == alloc.STATEWIDE) & (F.col("channel") == "all")).first()
    assert total["attempts"] == 4 and total["cost"] == pytest.approx(5.0)
    assert total["expected_net_votes"] == pytest.approx(0.09 + 0.0064 + 0.0018 + 0.00048)
    assert total["cost_per_net_vote"] == pytest.approx(5.0 / (0.09 + 0.0064 + 0.0018 + 0.00048))


def test_plan_beats_the_naive_plan_on_the_truth(spark):
    """Scores are noisy estimates of the truth; the plan still wins more true net votes than support alone."""
    def u(stream: int) -> F.Column:
        return F.pmod(F.xxhash64("id", F.lit(stream)), F.lit(100_003)) / F.lit(100_003.0)

    truth = spark.range(20_000).select(
        F.col("id").cast("string").alias("person_id"), F.col("id").cast("string").alias("state_voter_id"),
        F.lit("NC").alias("state"), (F.col("id") % 4).cast("int").alias("county_id"), F.lit("P").alias("precinct"),
        u(1).alias("t"), u(2).alias("s"), (u(3) * 0.08 * 4 * u(2) * (1 - u(2))).alias("up"),
        u(4).alias("n1"), u(5).alias("n2"), u(6).alias("n3"))
    # The scores: the truth blurred by noise, as a model would see it.
    scored = truth.select("*", F.least(F.greatest(F.col("t") + (F.col("n1") - 0.5) * 0.3, F.lit(0.0)), F.lit(1.0))
                          .alias("turnout_prob"),
                          F.least(F.greatest(F.col("s") + (F.col("n2") - 0.5) * 0.3, F.lit(0.0)), F.lit(1.0))
                          .alias("support_prob"),
                          (F.col("up") * (0.5 + F.col("n3"))).alias("persuasion_uplift"))
    cfg = AllocationSettings(weeks=4, channels={
        "door": ChannelSettings(contact_rate=0.3, cost=3.0, capacity_per_county_week=250, gotv_effect=0.07),
        "text": ChannelSettings(contact_rate=0.1, cost=0.05, budget=100.0, gotv_effect=0.01, persuasion_share=0.2)})
    truth_values = {n: alloc.contact_value(c, "t", "s", "up") for n, c in cfg.channels.items()}

    def on_truth(plan) -> float:
        joined = plan.select("person_id", "channel").join(truth, on="person_id", how="inner")
        value = F.lit(0.0)
        for name, column in truth_values.items():
            value = F.when(F.col("channel") == name, column).otherwise(value)
        return joined.agg(F.sum(value)).first()[0]

    plan = alloc.allocate(scored, cfg)
    naive = alloc.allocate(scored, cfg, order=lambda name, channel: F.col("support_prob"))
    assert plan.count() == naive.count() == 4 * 250 * 4 + 2000
    planned, naive_votes = on_truth(plan), on_truth(naive)
    print(f"true expected net votes: plan {planned:.1f}, naive {naive_votes:.1f}")
    assert planned > 1.3 * naive_votes > 0
