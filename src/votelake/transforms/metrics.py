"""The campaign metrics mart: contact, survey, engagement, conversion, turnout and cost figures.

One row per state, county, precinct, program, channel and week (Monday):

* field programs (``silver.contacts``): attempts, contacts made and the
  contact rate; survey IDs, support IDs (1-2), undecided IDs (3) and
  conversions (a support ID from a person whose previous ID was undecided,
  over the re-identified undecided: the conversion rate); the cost
  (attempts × the channel's configured cost) and the modelled net votes of
  the contacts made (:func:`votelake.transforms.allocation.contact_value`
  per contact made), hence the cost per net vote;
* digital programs (``silver.digital_events``, program = campaign): opens,
  clicks and the persons engaged, over the persons sent to: the engagement
  rate;
* turnout among the persons a program contacted vs the precinct's persons no
  program contacted, in the first general election after the week, when the
  vote history holds one (null before that election).

Records that matched no person keep a null county and precinct, so the
mart's attempts add up to ``silver.contacts``. Channels are lower case
(``door``, ``phone``, ``text``, ``email``, ``sms``, ``web``), as the
allocation's channels are named.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.config import AllocationSettings
from votelake.transforms.allocation import contact_value

KEYS = ("state", "county_id", "precinct", "program", "channel", "week_start")
ENGAGEMENTS = {"open": "opens", "click": "clicks", "reply": "clicks", "signup": "clicks"}


def _week(ts: Column) -> Column:
    return F.date_trunc("week", ts).cast("date")


def _ratio(num: str, den: str) -> Column:
    return F.when(F.col(den) > 0, F.col(num) / F.col(den))


def contact_metrics(contacts: DataFrame, persons: DataFrame, scores: DataFrame,
                    cfg: AllocationSettings) -> DataFrame:
    """Field-program rows of the mart.

    Args:
        contacts: ``silver.contacts``.
        persons: ``person_id, state, county_id, precinct`` (``silver.persons``).
        scores: ``person_id, turnout_prob, support_prob, persuasion_uplift``
            (``gold.voter_scores``; the value of a contact made).
        cfg: the channels' costs and effects.

    Returns:
        The mart's contact columns by :data:`KEYS`.
    """
    person = Window.partitionBy("person_id").orderBy("attempted_at", "contact_id")
    previous_id = F.last(F.col("support_id"), ignorenulls=True).over(person.rowsBetween(Window.unboundedPreceding, -1))
    cost = F.lit(None).cast("double")
    value = F.lit(None).cast("double")
    for name, channel in cfg.channels.items():
        cost = F.when(F.col("channel") == name, F.lit(channel.cost)).otherwise(cost)
        # The value per contact made: the attempt's value over the contact rate.
        value = F.when(F.col("channel") == name, contact_value(channel) / channel.contact_rate).otherwise(value)
    contacts = contacts.withColumn("channel", F.lower("channel"))
    rows = (contacts.select("*", F.when(F.col("person_id").isNotNull(), previous_id).alias("previous_id"))
            .join(persons.select("person_id", "state", "county_id", "precinct"), on="person_id", how="left")
            .join(scores.select("person_id", "turnout_prob", "support_prob", "persuasion_uplift"),
                  on="person_id", how="left")
            .select("*", F.coalesce("program", F.lit("unknown")).alias("_program"),
                    _week(F.col("attempted_at")).alias("week_start"), cost.alias("_cost"),
                    F.when(F.col("is_contact"), value).alias("_value")))
    reidentified = (F.col("previous_id") == 3) & F.col("support_id").isin(1, 2, 3, 4, 5)
    return (rows.groupBy("state", "county_id", "precinct", F.col("_program").alias("program"), "channel", "week_start")
            .agg(F.count("*").alias("attempts"), F.count(F.when(F.col("is_contact"), 1)).alias("contacts_made"),
                 F.count("support_id").alias("survey_ids"),
                 F.count(F.when(F.col("support_id").isin(1, 2), 1)).alias("support_ids"),
                 F.count(F.when(F.col("support_id") == 3, 1)).alias("undecided_ids"),
                 F.count(F.when(reidentified & F.col("support_id").isin(1, 2), 1)).alias("conversions"),
                 F.count(F.when(reidentified, 1)).alias("_reidentified"),
                 F.sum("_cost").alias("cost"), F.sum("_value").alias("expected_net_votes"))
            .select(*KEYS, "attempts", "contacts_made", _ratio("contacts_made", "attempts").alias("contact_rate"),
                    "survey_ids", "support_ids", "undecided_ids", "conversions",
                    _ratio("conversions", "_reidentified").alias("conversion_rate"), "cost", "expected_net_votes",
                    F.when(F.col("expected_net_votes") > 0, F.col("cost") / F.col("expected_net_votes"))
                    .alias("cost_per_net_vote")))


def digital_metrics(digital: DataFrame, persons: DataFrame) -> DataFrame:
    """Digital-program rows of the mart.

    Args:
        digital: ``silver.digital_events``.
        persons: ``person_id, state, county_id, precinct`` (``silver.persons``).

    Returns:
        The mart's engagement columns by :data:`KEYS`: opens, clicks, the
        persons engaged and the persons sent to (a ``sent`` event, or any
        engagement: they evidently got it), and engaged / recipients.
    """
    digital = digital.withColumn("channel", F.lower("channel")).withColumn("event_type", F.lower("event_type"))
    kind = F.when(F.col("event_type") == "sent", F.lit("sent"))
    for event, column in ENGAGEMENTS.items():
        kind = kind.when(F.col("event_type") == event, F.lit(column))
    events = (digital.join(persons.select("person_id", "state", "county_id", "precinct"), on="person_id", how="left")
              .select(*KEYS[:3], F.coalesce("campaign", "channel").alias("program"), "channel",
                      _week(F.col("event_ts")).alias("week_start"), "person_id", kind.alias("kind")))
    engaged = F.col("kind").isin("opens", "clicks")
    counted = events.groupBy(*KEYS).agg(
        F.count(F.when(F.col("kind") == "opens", 1)).alias("opens"),
        F.count(F.when(F.col("kind") == "clicks", 1)).alias("clicks"),
        F.countDistinct(F.when(engaged, F.col("person_id"))).alias("engaged"),
        F.countDistinct(F.when(F.col("kind").isNotNull(), F.col("person_id"))).alias("recipients"))
    return counted.select("*", _ratio("engaged", "recipients").alias("engagement_rate"))


def turnout_metrics(contacts: DataFrame, persons: DataFrame, history: DataFrame) -> DataFrame:
    """Turnout of the contacted vs the never contacted, in the first general election after each week.

    Args:
        contacts: ``silver.contacts``.
        persons: ``person_id, state, county_id, precinct`` (``silver.persons``).
        history: ``silver.vote_history``.

    Returns:
        ``KEYS, election_date, turnout_contacted, turnout_not_contacted``, for
        the rows of contacts made whose week has a general election after it
        in the history (none before that election is held).
    """
    generals = history.where(F.col("election_type") == "GENERAL").select("election_date").distinct()
    contacts = contacts.withColumn("channel", F.lower("channel"))
    made = (contacts.where(F.col("is_contact") & F.col("person_id").isNotNull())
            .join(persons.select("person_id", "state", "county_id", "precinct"), on="person_id", how="inner")
            .select("person_id", "state", "county_id", "precinct", F.coalesce("program", F.lit("unknown"))
                    .alias("program"), "channel", _week(F.col("attempted_at")).alias("week_start")))
    weeks = made.select("week_start").distinct()
    next_general = (weeks.join(generals, F.col("election_date") > F.col("week_start"), how="inner")
                    .groupBy("week_start").agg(F.min("election_date").alias("election_date")))
    voted = history.select("person_id", "election_date", F.lit(1).alias("_voted")).distinct()
    contacted = (made.join(next_general, on="week_start", how="inner").dropDuplicates([*KEYS, "person_id"])
                 .join(voted, on=["person_id", "election_date"], how="left")
                 .groupBy(*KEYS, "election_date")
                 .agg(F.avg(F.coalesce("_voted", F.lit(0))).alias("turnout_contacted")))
    never = persons.join(contacts.where(F.col("person_id").isNotNull()).select("person_id").distinct(),
                         on="person_id", how="left_anti")
    elections = next_general.select("election_date").distinct()
    baseline = (never.crossJoin(F.broadcast(elections)).join(voted, on=["person_id", "election_date"], how="left")
                .groupBy("state", "county_id", "precinct", "election_date")
                .agg(F.avg(F.coalesce("_voted", F.lit(0))).alias("turnout_not_contacted")))
    return contacted.join(baseline, on=["state", "county_id", "precinct", "election_date"], how="left").select(
        *KEYS, "election_date", "turnout_contacted", "turnout_not_contacted")


def campaign_metrics(contacts: DataFrame, digital: DataFrame, persons: DataFrame, history: DataFrame,
                     scores: DataFrame, cfg: AllocationSettings) -> DataFrame:
    """The whole mart: field and digital rows, with turnout where an election followed.

    Args:
        contacts, digital, history: the silver tables.
        persons: ``silver.persons``.
        scores: ``gold.voter_scores``.
        cfg: the channels' costs and effects.

    Returns:
        Rows in the ``gold.campaign_metrics`` contract's columns (without ``built_at``).
    """
    field = contact_metrics(contacts, persons, scores, cfg).join(
        turnout_metrics(contacts, persons, history), on=list(KEYS), how="left")
    online = digital_metrics(digital, persons)
    return field.unionByName(online, allowMissingColumns=True).select(
        *KEYS, *[F.col(c).cast("bigint").alias(c) for c in (
            "attempts", "contacts_made")], "contact_rate",
        *[F.col(c).cast("bigint").alias(c) for c in ("survey_ids", "support_ids", "undecided_ids", "conversions")],
        "conversion_rate",
        *[F.col(c).cast("bigint").alias(c) for c in ("opens", "clicks", "engaged", "recipients")], "engagement_rate",
        F.col("election_date").cast("date").alias("election_date"), "turnout_contacted", "turnout_not_contacted",
        "cost", "expected_net_votes", "cost_per_net_vote")
