"""Target universes from declarative rules: who to contact, in which order, per turf.

A universe (``universes.definitions.<name>`` in the config) is a predicate
over ``gold.voter_scores`` (``where``, in the checked rule language of
:mod:`votelake.rules`, never run as SQL), a priority expression
(``priority``, higher first) and a channel. Building one:

1. keeps the scored voters matching ``where``;
2. drops suppressed persons (:func:`suppressions`: do-not-contact lists, and
   per channel the contact results and digital events that say "stop", such
   as a texting opt-out);
3. for door and mail programs keeps one voter per household (the
   highest-priority one; ``household_voters`` counts the household's members
   in the universe);
4. ranks the voters within each turf (county and precinct) by priority, ties
   broken by person id, so the same inputs always give the same list.

Pure DataFrame transforms; the ``universes`` job reads and writes.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.config import UniverseRule
from votelake.rules import rule_column

HOUSEHOLD_CHANNELS = ("door", "mail")
# Columns of gold.voter_segments a rule may read besides the scores' own.
SEGMENT_COLUMNS = ("segment_id", "segment_name")
TURF = ("state", "county_id", "precinct")


def suppressions(lists: DataFrame, voter_ids: DataFrame, contacts: DataFrame, digital: DataFrame,
                 contact_results: dict[str, tuple[str, ...]],
                 digital_events: dict[str, tuple[str, ...]]) -> DataFrame:
    """Everyone who must not be contacted, and on which channel.

    Args:
        lists: suppression list rows ``state_voter_id, reason`` (do not contact:
            every channel).
        voter_ids: ``state_voter_id, person_id`` of every registration (a list
            naming an old registration still reaches the person).
        contacts: ``silver.contacts``.
        digital: ``silver.digital_events``.
        contact_results: channel → result codes that suppress that channel.
        digital_events: channel → digital event types that suppress it.

    Returns:
        ``person_id, channel, reason``; channel ``*`` means every channel.
        One row per person, channel and reason.
    """
    listed = (lists.join(voter_ids, on="state_voter_id", how="inner")
              .select("person_id", F.lit("*").alias("channel"),
                      F.concat(F.lit("list: "), F.coalesce(F.col("reason"), F.lit("do not contact"))).alias("reason")))
    parts = [listed]
    for channel, codes in contact_results.items():
        parts.append(contacts.where(F.col("person_id").isNotNull() & F.col("result_code").isin(*codes)).select(
            "person_id", F.lit(channel).alias("channel"),
            F.concat(F.lit("contact result: "), F.col("result_code")).alias("reason")))
    for channel, types in digital_events.items():
        parts.append(digital.where(F.col("person_id").isNotNull() & F.col("event_type").isin(*types)).select(
            "person_id", F.lit(channel).alias("channel"),
            F.concat(F.lit("digital event: "), F.col("event_type")).alias("reason")))
    return reduce(DataFrame.unionByName, parts).distinct()


def with_segments(scores: DataFrame, segments: DataFrame) -> DataFrame:
    """The scores with each voter's segment, so a rule can select by segment.

    Args:
        scores: ``gold.voter_scores`` rows.
        segments: ``gold.voter_segments`` rows of a segmentation of those scores.

    Returns:
        The scores with :data:`SEGMENT_COLUMNS` (null for a voter not
        segmented: segments hold active voters only).
    """
    return scores.join(segments.select("person_id", *SEGMENT_COLUMNS), on="person_id", how="left")


def _ranked(partition: list[str], order: list[Column]) -> Column:
    return F.row_number().over(Window.partitionBy(*partition).orderBy(*order))


def blocked(suppressed: DataFrame, channel: str) -> DataFrame:
    """The persons a channel must not contact (``person_id``, distinct)."""
    return suppressed.where(F.col("channel").isin("*", channel)).select("person_id").distinct()


def rule_counts(scores: DataFrame, suppressed: DataFrame, name: str, rule: UniverseRule) -> DataFrame:
    """``universe, voters, suppressed``: voters matching the rule, and how many of them are suppressed."""
    flagged = blocked(suppressed, rule.channel).select("person_id", F.lit(1).alias("_blocked"))
    return (scores.where(rule_column(rule.where, scores.columns)).select("person_id")
            .join(flagged, on="person_id", how="left")
            .agg(F.count("*").alias("voters"), F.count("_blocked").alias("suppressed"))
            .select(F.lit(name).alias("universe"), "voters", "suppressed"))


def select_universe(scores: DataFrame, households: DataFrame, suppressed: DataFrame, rule: UniverseRule) -> DataFrame:
    """The members of one universe, deduplicated and ranked within their turf.

    Args:
        scores: ``gold.voter_scores`` rows.
        households: ``person_id, household_id`` (``silver.persons``).
        suppressed: :func:`suppressions` output.
        rule: the universe's definition.

    Returns:
        ``person_id, state_voter_id, household_id, state, county_id, precinct,
        priority, household_voters, turf_rank`` (1 = first to contact in the
        turf). ``household_voters`` is 1 for channels that reach people, not
        households.

    Raises:
        votelake.rules.RuleError: ``where`` or ``priority`` is outside the rule
            language or names a column the scores do not have.
    """
    members = (scores.where(rule_column(rule.where, scores.columns))
               .join(blocked(suppressed, rule.channel), on="person_id", how="left_anti")
               .join(households.select("person_id", "household_id"), on="person_id", how="left")
               .select("person_id", "state_voter_id", "household_id", *TURF,
                       rule_column(rule.priority, scores.columns).cast("double").alias("priority")))
    order = [F.col("priority").desc_nulls_last(), F.col("person_id")]
    if rule.channel in HOUSEHOLD_CHANNELS:
        # A person without a known household is a household of one.
        home = F.coalesce(F.col("household_id"), F.concat(F.lit("person:"), F.col("person_id")))
        members = members.select("*", home.alias("_home"))
        counted = members.select("*", F.count("*").over(Window.partitionBy("_home")).alias("household_voters"),
                                 _ranked(["_home"], order).alias("_in_home"))
        members = counted.where(F.col("_in_home") == 1).drop("_home", "_in_home")
    else:
        members = members.select("*", F.lit(1).cast("bigint").alias("household_voters"))
    return members.select("person_id", "state_voter_id", "household_id", *TURF, "priority",
                          F.col("household_voters").cast("int").alias("household_voters"),
                          _ranked(list(TURF), order).cast("int").alias("turf_rank"))
