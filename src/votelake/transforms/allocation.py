"""Allocation of limited contact capacity to the voters where it wins the most net votes.

The expected net votes of one attempt on voter *i* through channel *c* are

    rate_c × ( 2 · t_i · u_i · share_c  +  g_c · 4 t_i (1 − t_i) · (2 s_i − 1) )

with ``t`` the turnout probability, ``s`` the support probability, ``u`` the
persuasion model's uplift (the change in support probability from a door
conversation), ``rate_c`` the channel's contact rate, ``share_c`` the share of
the door uplift the channel delivers and ``g_c`` its turnout effect at 50%
propensity (:class:`votelake.config.ChannelSettings`). Persuading a voter who
votes moves the margin by two votes per unit of support; turning out a voter
adds their expected margin ``2s − 1``, so mobilising the other side's voters
counts against the plan.

Channels are filled in the configured order and each voter gets at most one
contact: per county up to its capacity (``capacity_per_county_week`` ×
``weeks``), then statewide up to the budget (``budget`` / ``cost``
attempts), highest value first, only where the value is positive. For a
single capacity per county this greedy choice is optimal; across channels it
is the usual heuristic of filling the most effective channel first.

The naive plan, for comparison, fills the same capacities by support score
alone (:func:`allocate` with ``order``).
"""

from __future__ import annotations

import math
from functools import reduce
from typing import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.config import AllocationSettings, ChannelSettings

VOTER_COLUMNS = ("person_id", "state_voter_id", "state", "county_id", "precinct")
STATEWIDE = -1


def contact_value(channel: ChannelSettings, turnout: str = "turnout_prob", support: str = "support_prob",
                  uplift: str = "persuasion_uplift") -> Column:
    """Expected net votes of one attempt through ``channel`` (null without a turnout or support probability).

    Args:
        channel: the channel's rate, effects and share.
        turnout, support, uplift: the probability columns (the scores, or the truth's).

    Returns:
        The value column; a missing uplift counts as none.
    """
    t, s = F.col(turnout), F.col(support)
    persuade = F.lit(2.0 * channel.persuasion_share) * t * F.coalesce(F.col(uplift), F.lit(0.0))
    mobilise = F.lit(channel.gotv_effect * 4.0) * t * (1 - t) * (2 * s - 1)
    return F.lit(channel.contact_rate) * (persuade + mobilise)


def _capacity(name: str, channel: ChannelSettings, cfg: AllocationSettings) -> Column:
    overrides = cfg.county_capacity.get(name, {})
    weekly = F.lit(channel.capacity_per_county_week)
    for county, capacity in sorted(overrides.items()):
        weekly = F.when(F.col("county_id") == county, F.lit(capacity)).otherwise(weekly)
    return weekly * cfg.weeks


def allocate(voters: DataFrame, cfg: AllocationSettings,
             order: Callable[[str, ChannelSettings], Column] | None = None) -> DataFrame:
    """Choose who gets which contact.

    Args:
        voters: ``gold.voter_scores`` rows (the voter columns and the probabilities).
        cfg: channels, capacities, budgets, weeks.
        order: the ranking per channel; default the expected net votes (and
            only voters with a positive value). The naive plan passes the
            support probability.

    Returns:
        ``person_id, state_voter_id, state, county_id, precinct, channel,
        county_rank, contact_rate, expected_net_votes, cost``: one row per
        voter contacted; ``county_rank`` orders each county's attempts of
        the channel.
    """
    remaining = voters.select(*VOTER_COLUMNS, "turnout_prob", "support_prob", "persuasion_uplift")
    plans = []
    for name, channel in cfg.channels.items():
        value = contact_value(channel)
        ranked = remaining.select("*", value.alias("expected_net_votes"),
                                  (value if order is None else order(name, channel)).alias("_order"))
        picks = ranked.where(F.col("_order").isNotNull())
        if order is None:
            picks = picks.where(F.col("expected_net_votes") > 0)
        by_value = [F.col("_order").desc(), F.col("person_id")]
        if channel.capacity_per_county_week is not None:
            rank = F.row_number().over(Window.partitionBy("state", "county_id").orderBy(*by_value))
            picks = picks.select("*", rank.alias("_rank")).where(
                F.col("_rank") <= _capacity(name, channel, cfg)).drop("_rank")
        if channel.budget is not None:
            # Rounded first: 100 / 0.05 is 1999.9999999999998 in floating point.
            picks = picks.orderBy(*by_value).limit(math.floor(round(channel.budget / channel.cost, 9)))
        # Materialized: the plan and the next channel's exclusion read the same picks.
        chosen = picks.select(*VOTER_COLUMNS, F.lit(name).alias("channel"),
                              F.row_number().over(Window.partitionBy("state", "county_id").orderBy(*by_value))
                              .cast("int").alias("county_rank"),
                              F.lit(channel.contact_rate).alias("contact_rate"), "expected_net_votes",
                              F.lit(channel.cost).alias("cost")).localCheckpoint()
        plans.append(chosen)
        remaining = remaining.join(chosen.select("person_id"), on="person_id", how="left_anti")
    return _union(plans)


def _union(parts: list[DataFrame]) -> DataFrame:
    return reduce(DataFrame.unionByName, parts)


def summarize(plan: DataFrame) -> DataFrame:
    """Attempts, expected contacts, expected net votes and cost by county and channel, and statewide.

    Args:
        plan: :func:`allocate` output (``expected_net_votes`` may be re-valued, e.g. on the truth).

    Returns:
        ``state, county_id, channel, attempts, expected_contacts,
        expected_net_votes, cost, cost_per_net_vote``; ``county_id`` =
        :data:`STATEWIDE` and ``channel`` = ``all`` for the totals.
    """
    stats = [F.count("*").alias("attempts"), F.sum("contact_rate").alias("expected_contacts"),
             F.sum("expected_net_votes").alias("expected_net_votes"), F.sum("cost").alias("cost")]
    by_county = plan.groupBy("state", "county_id", "channel").agg(*stats)
    county_total = plan.groupBy("state", "county_id").agg(*stats).select(
        "state", "county_id", F.lit("all").alias("channel"), "attempts", "expected_contacts",
        "expected_net_votes", "cost")
    by_channel = plan.groupBy("state", "channel").agg(*stats).select(
        "state", F.lit(STATEWIDE).alias("county_id"), "channel", "attempts", "expected_contacts",
        "expected_net_votes", "cost")
    total = plan.groupBy("state").agg(*stats).select(
        "state", F.lit(STATEWIDE).alias("county_id"), F.lit("all").alias("channel"), "attempts",
        "expected_contacts", "expected_net_votes", "cost")
    rows = _union([by_county, county_total, by_channel, total])
    per_vote = F.when(F.col("expected_net_votes") > 0, F.col("cost") / F.col("expected_net_votes"))
    return rows.select("state", F.col("county_id").cast("int").alias("county_id"), "channel",
                       F.col("attempts").cast("bigint").alias("attempts"), "expected_contacts",
                       "expected_net_votes", "cost", per_vote.alias("cost_per_net_vote"))
