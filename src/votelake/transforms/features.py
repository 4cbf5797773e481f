"""Silver → gold: point-in-time voter features.

Every aggregate uses only events dated strictly before the as-of date, so the
same function builds training features (as of a past election) and scoring
features (as of now) without leaking the future.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import reduce
from operator import add
from typing import Callable, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# NC closes registration 25 days before an election.
REGISTRATION_DEADLINE_DAYS = 25
EARLY_OR_MAIL_METHODS = ("EARLY", "MAIL", "CURBSIDE")
# Election types counted together (a presidential preference primary is a primary).
ELECTION_FAMILY = {"PRESIDENTIAL_PRIMARY": "PRIMARY"}
ENGAGED_EVENT_TYPES = ("click", "reply", "signup")
# The features' cutoff column (one row per person and as-of date).
AS_OF = "as_of_date"
DAYS_PER_YEAR = 365.25


def election_family(election_type: Column) -> Column:
    """The family of a canonical election type (``PRESIDENTIAL_PRIMARY`` → ``PRIMARY``)."""
    families = F.create_map(*[F.lit(x) for kv in ELECTION_FAMILY.items() for x in kv])
    return F.coalesce(F.element_at(families, election_type), election_type)


@dataclass(frozen=True)
class Election:
    """One election: its date and type (GENERAL, PRIMARY, MUNICIPAL, OTHER)."""

    date: dt.date
    type: str


# A November general's level: the office at the top of the ticket sets turnout.
GENERAL_LEVELS = ("presidential", "midterm", "off_year")


def general_level(day: dt.date) -> str:
    """The level of a US general election held on ``day``.

    Presidential in years divisible by four, midterm in the other even years,
    off-year (state and municipal offices only) in odd years. Turnout differs
    by 15-25 points between the first two, so a model must know which it predicts.
    """
    if day.year % 2:
        return "off_year"
    return "presidential" if day.year % 4 == 0 else "midterm"


def next_general(after: dt.date) -> dt.date:
    """The first US general election day on or after ``after``: the Tuesday after the first Monday of November."""
    for year in (after.year, after.year + 1):
        first_monday = dt.date(year, 11, 1) + dt.timedelta(days=(7 - dt.date(year, 11, 1).weekday()) % 7)
        election_day = first_monday + dt.timedelta(days=1)
        if election_day >= after:
            return election_day
    raise AssertionError("unreachable: November of the next year is always after")


def november_generals(elections: list[Election], as_of: dt.date, level: str | None = None) -> list[Election]:
    """Regular November generals before ``as_of`` (of one level, when given), oldest first.

    A state may type a special election as a general (Ohio's August specials);
    only the November general day sets a level of turnout.
    """
    return [e for e in elections_before(elections, as_of, "GENERAL")
            if e.date == next_general(dt.date(e.date.year, 11, 1))
            and (level is None or general_level(e.date) == level)]


# The column of a turnout example that names its election's level.
TARGET_LEVEL = "target_level"


@dataclass(frozen=True)
class Target:
    """The general election a turnout score predicts: its date and level (:data:`GENERAL_LEVELS`)."""

    date: dt.date
    level: str


def target_election(declared_date: dt.date | None, declared_level: str | None, as_of: dt.date) -> Target:
    """The election ahead of data as of ``as_of``: the declared one, else the next November general.

    Args:
        declared_date: ``model.target_election.date`` (None: the next general on or after ``as_of``).
        declared_level: ``model.target_election.type`` (None: from the year, :func:`general_level`).
        as_of: the scoring as-of date (the day after the newest dated record).

    Returns:
        The target.

    Raises:
        ValueError: the declared election is before the data's date: the data
            already know its outcome, so its scores would not be predictions.
    """
    day = declared_date or next_general(as_of)
    if day < as_of:
        raise ValueError(f"model.target_election.date {day} is before the data's as-of date {as_of} "
                         "(the voter file or its history is dated after the election it would predict)")
    return Target(day, declared_level or general_level(day))


def with_target_election(features: DataFrame, target: Target) -> DataFrame:
    """Feature rows with the inputs that say which election is predicted.

    One model learns from several past generals, so each example says which
    level its election was at (``target_level``) and carries the voter's own
    record at that level: presidential-only voters turn out in presidential
    years and not in midterms, which no all-generals rate can tell.

    Age and registration tenure are those at the election: every training
    example measured them on its election day, while a score's as-of date can
    be two years before the general it predicts, and voters scored two years
    young read as less likely to vote. The rest stays as known at the as-of
    date: whether a voter votes in between is not known.

    Args:
        features: ``gold.voter_features`` rows (one as-of date).
        target: the election predicted for these rows.

    Returns:
        The rows (``age`` and ``reg_tenure_years`` at the election when it is
        after the as-of date) plus ``target_level``, ``same_level_rate``
        (share of the earlier generals of that level voted, null with none)
        and ``voted_last_same_level`` (off-year: the last general of any level).
    """
    last = {"presidential": "voted_last_presidential", "midterm": "voted_last_midterm"}.get(
        target.level, "voted_last_general")
    election = F.lit(target.date)
    at_election = {
        # age is counted in calendar years (the year less the birth year), as the features count it;
        # both sums keep their column's type (int + int, double + double)
        "age": F.col("age") + F.greatest(F.year(election) - F.year(AS_OF), F.lit(0)),
        "reg_tenure_years": F.col("reg_tenure_years")
        + F.greatest(F.datediff(election, F.col(AS_OF)), F.lit(0)) / F.lit(DAYS_PER_YEAR),
    }
    return features.select(
        *[at_election[c].alias(c) if c in at_election else F.col(c) for c in features.columns],
        F.lit(target.level).alias(TARGET_LEVEL),
        F.col(f"{target.level}_rate").alias("same_level_rate"),
        F.col(last).alias("voted_last_same_level"),
    )


def elections_before(elections: list[Election], as_of: dt.date, kind: str) -> list[Election]:
    """Elections of one type held strictly before ``as_of``, oldest first."""
    return sorted((e for e in elections if e.type == kind and e.date < as_of), key=lambda e: e.date)


def at_horizon(election: dt.date, horizon_days: int) -> dt.date:
    """The as-of date ``horizon_days`` before an election: where turnout's examples of it are measured.

    A score for an election two months or two years ahead knows nothing of what
    happens in between (a primary, a midterm), so the examples it learns from
    are measured as far ahead of their own election.
    """
    return election - dt.timedelta(days=horizon_days)


def training_generals(elections: list[Election], as_of: dt.date, per_level: int) -> list[Election]:
    """The past generals a turnout model learns from: the newest ``per_level`` of each level, oldest first.

    Args:
        elections: every known election.
        as_of: only elections before this date.
        per_level: how many of each level (presidential, midterm, off-year).

    Returns:
        The generals.
    """
    chosen = [e for level in GENERAL_LEVELS for e in november_generals(elections, as_of, level)[-per_level:]]
    return sorted(chosen, key=lambda e: e.date)


def eligible_for(election: Election) -> Column:
    """Was the voter registered in time and 18 by this election?

    Unknown registration date or birth year counts as eligible: the state
    would not list a voter without them if they had not been.
    """
    registered = F.coalesce(
        F.col("registration_date") <= F.lit(election.date - dt.timedelta(days=REGISTRATION_DEADLINE_DAYS)),
        F.lit(True),
    )
    adult = F.coalesce(F.col("birth_year") + 18 <= F.lit(election.date.year), F.lit(True))
    return registered & adult


def _count_eligible(elections: list[Election]) -> Column:
    terms = [F.when(eligible_for(e), 1).otherwise(0) for e in elections]
    return reduce(add, terms, F.lit(0))


def _rate(voted: str, eligible: str) -> Column:
    return F.when(F.col(eligible) > 0, F.least(F.lit(1.0), F.col(voted) / F.col(eligible)))


def _at_each(dates: Sequence[dt.date]) -> Column:
    """One copy of a row per as-of date (a row is read once for all of them)."""
    return F.explode(F.array(*[F.lit(d) for d in dates])).alias(AS_OF)


def _before_each(rows: DataFrame, dated: str, dates: Sequence[dt.date]) -> DataFrame:
    """``rows`` with an ``as_of_date`` column: one copy per as-of date that ``dated`` is before."""
    # The literal bound first: the scan skips what no date keeps (Delta file statistics).
    return (rows.where(F.col(dated) < F.lit(max(dates))).select("*", _at_each(dates))
            .where(F.col(dated) < F.col(AS_OF)))


def _per_date(dates: Sequence[dt.date], value: Callable[[dt.date], Column]) -> Column:
    """``value(d)`` for each row's as-of date ``d`` (``value(d)`` itself when there is one date)."""
    *earlier, last = dates
    if not earlier:
        return value(last)
    # The last date as the ELSE branch: every row has one of the dates, and the column keeps value()'s nullability.
    first, *rest = earlier
    case = reduce(lambda case, d: case.when(F.col(AS_OF) == F.lit(d), value(d)), rest,
                  F.when(F.col(AS_OF) == F.lit(first), value(first)))
    return case.otherwise(value(last))


def history_aggregates(history: DataFrame, dates: Sequence[dt.date], elections: list[Election]) -> DataFrame:
    """Per-voter vote-history aggregates before each as-of date, in one pass over the history.

    Args:
        history: ``silver.vote_history``.
        dates: the cutoffs (each exclusive).
        elections: every known election.

    Returns:
        ``person_id``, ``as_of_date`` and the aggregates: one row per person and
        date before which they voted at least once.
    """
    def dates_of(kind: str) -> Callable[[dt.date], list[dt.date]]:
        return lambda d: [e.date for e in elections_before(elections, d, kind)]

    def generals_of(level: str) -> Callable[[dt.date], list[dt.date]]:
        return lambda d: [e.date for e in november_generals(elections, d, level)]

    def last(days_at: Callable[[dt.date], list[dt.date]]) -> Callable[[dt.date], dt.date | None]:
        """The latest of the days before an as-of date (None: none)."""
        return lambda d: (days_at(d) or [None])[-1]

    def voted_on(day_of: Callable[[dt.date], dt.date | None]) -> Column:
        """Voted in the election ``day_of`` names for the row's as-of date (none named: no)."""
        return _per_date(dates, lambda d: F.col("election_date") == F.lit(day_of(d)) if day_of(d) else F.lit(False))

    def voted_in_general_of(level: str) -> Column:
        return _per_date(dates, lambda d: F.col("election_date").isin(*[F.lit(day) for day in generals_of(level)(d)]))

    is_type = lambda kind: election_family(F.col("election_type")) == kind  # noqa: E731 - local shorthand
    is_primary_ballot = lambda party: is_type("PRIMARY") & (F.col("voted_party") == party)  # noqa: E731
    return (
        _before_each(history.select("person_id", "election_date", "election_type", "voting_method", "voted_party"),
                     "election_date", dates)
        .groupBy("person_id", AS_OF)
        .agg(
            F.sum(is_type("GENERAL").cast("int")).alias("generals_voted"),
            F.sum(is_type("PRIMARY").cast("int")).alias("primaries_voted"),
            F.sum(is_type("MUNICIPAL").cast("int")).alias("municipals_voted"),
            *[F.sum((is_type("GENERAL") & voted_in_general_of(level)).cast("int")).alias(f"{level}_voted")
              for level in GENERAL_LEVELS],
            F.max(voted_on(last(dates_of("GENERAL"))).cast("int")).alias("voted_last_general"),
            F.max(voted_on(last(generals_of("presidential"))).cast("int")).alias("voted_last_presidential"),
            F.max(voted_on(last(generals_of("midterm"))).cast("int")).alias("voted_last_midterm"),
            F.max(voted_on(last(dates_of("PRIMARY"))).cast("int")).alias("voted_last_primary"),
            F.max("election_date").alias("last_vote_date"),
            F.min("election_date").alias("first_vote_date"),
            F.avg(F.col("voting_method").isin(*EARLY_OR_MAIL_METHODS).cast("double")).alias("early_or_mail_share"),
            F.sum(is_primary_ballot("DEM").cast("int")).alias("dem_ballots"),
            F.sum(is_primary_ballot("REP").cast("int")).alias("rep_ballots"),
        )
    )


def contact_aggregates(contacts: DataFrame, dates: Sequence[dt.date]) -> DataFrame:
    """Per-voter contact attempts and contacts made before each as-of date (``person_id, as_of_date``)."""
    return (
        _before_each(contacts.where(F.col("person_id").isNotNull()).select("person_id", "attempted_at", "is_contact"),
                     "attempted_at", dates)
        .groupBy("person_id", AS_OF)
        .agg(
            F.count("*").alias("contact_attempts"),
            F.sum(F.col("is_contact").cast("int")).alias("contacts_made"),
        )
    )


def digital_aggregates(digital: DataFrame, dates: Sequence[dt.date]) -> DataFrame:
    """Per-voter digital events and engaged events (clicks, replies, sign-ups) before each as-of date."""
    return (
        _before_each(digital.where(F.col("person_id").isNotNull()).select("person_id", "event_ts", "event_type"),
                     "event_ts", dates)
        .groupBy("person_id", AS_OF)
        .agg(
            F.count("*").alias("digital_events"),
            F.sum(F.col("event_type").isin(*ENGAGED_EVENT_TYPES).cast("int")).alias("digital_clicks"),
        )
    )


# Fewest registrants in the other half of a precinct for its party shares to count.
MIN_PRECINCT_HALF = 10


def precinct_party_shares(voters: DataFrame, by: Sequence[str] = ()) -> DataFrame:
    """Each voter's neighbours' party registration: DEM and REP shares in their precinct.

    Voters are split in two halves by a hash of ``person_id``, and each voter
    gets the shares of the *other* half of their precinct. A voter's own party
    (the partisanship model's label) therefore never enters their feature,
    not even as the one-voter shift that a leave-one-out share carries and a
    tree model can read back. Precinct partisanship is the strongest
    geographic signal of support a voter file offers.

    Args:
        voters: one row per voter with ``person_id``, ``county_id``,
            ``precinct`` and ``party`` (and the columns of ``by``).
        by: columns whose every value is a separate set of voters (the as-of date).

    Returns:
        ``by``, ``person_id, precinct_dem_share, precinct_rep_share``; null for a
        voter without a precinct or whose precinct's other half has fewer than
        ``MIN_PRECINCT_HALF`` registrants.
    """
    half = F.pmod(F.xxhash64(F.col("person_id")), F.lit(2)).alias("half")
    keyed = voters.where(F.col("precinct").isNotNull()).select(*by, "person_id", "county_id", "precinct", "party",
                                                               half)
    other = keyed.groupBy(*by, "county_id", "precinct", (1 - F.col("half")).alias("half")).agg(
        F.count("*").alias("n"),
        # An unknown party counts as neither (avg would skip it).
        F.avg(F.coalesce(F.col("party") == "DEM", F.lit(False)).cast("double")).alias("dem"),
        F.avg(F.coalesce(F.col("party") == "REP", F.lit(False)).cast("double")).alias("rep"),
    )
    enough = F.col("n") >= MIN_PRECINCT_HALF
    return keyed.join(other, on=[*by, "county_id", "precinct", "half"], how="left").select(
        *by,
        "person_id",
        F.when(enough, F.col("dem")).alias("precinct_dem_share"),
        F.when(enough, F.col("rep")).alias("precinct_rep_share"),
    )


def voter_features(
    voters: DataFrame,
    history: DataFrame,
    contacts: DataFrame,
    digital: DataFrame,
    as_of: dt.date,
    elections: list[Election],
) -> DataFrame:
    """Point-in-time features for every voter registered before ``as_of``.

    Args:
        voters: ``silver.persons``.
        history: ``silver.vote_history``.
        contacts: ``silver.contacts``.
        digital: ``silver.digital_events``.
        as_of: the feature cutoff; nothing dated on or after it is used.
        elections: every known election (from the vote history).

    Returns:
        DataFrame in the ``gold.voter_features`` schema.
    """
    return voter_features_as_of(voters, history, contacts, digital, [as_of], elections)


def voter_features_as_of(
    voters: DataFrame,
    history: DataFrame,
    contacts: DataFrame,
    digital: DataFrame,
    dates: Sequence[dt.date],
    elections: list[Election],
) -> DataFrame:
    """:func:`voter_features` at several as-of dates, each source read once for all of them.

    Each row is copied once per date and aggregated per person and date, so
    the plan is one pass per source, not one per date (the vote history is a
    state's largest table; a build wants features at half a dozen dates).

    Args:
        voters: ``silver.persons``.
        history: ``silver.vote_history``.
        contacts: ``silver.contacts``.
        digital: ``silver.digital_events``.
        dates: the feature cutoffs (distinct); nothing dated on or after a row's is used.
        elections: every known election (from the vote history).

    Returns:
        DataFrame in the ``gold.voter_features`` schema: the rows of
        :func:`voter_features` at each date.
    """
    def eligible(kind: str) -> Column:
        return _per_date(dates, lambda d: _count_eligible(elections_before(elections, d, kind)))

    # A person registered several times (moved, duplicate) counts from their first
    # registration, and a registration dated after a vote is a re-registration
    # (Ohio's file dates a voter's latest move): registered by that vote's deadline at least.
    # One pass over the history gives the first vote and every other aggregate.
    votes = history_aggregates(history, dates, elections)
    vote_columns = [c for c in votes.columns if c not in ("person_id", AS_OF, "first_vote_date")]
    voters = voters.select("*", _at_each(dates)).join(votes, on=["person_id", AS_OF], how="left").select(
        *[c for c in voters.columns if c not in ("registration_date", "first_registered")], AS_OF, *vote_columns,
        F.least("first_registered", F.date_sub("first_vote_date", REGISTRATION_DEADLINE_DAYS))
        .alias("registration_date"))
    registered_before = F.coalesce(F.col("registration_date") < F.col(AS_OF), F.lit(True))
    base = voters.where(registered_before).select(
        AS_OF,
        "person_id",
        "state_voter_id",
        "state_voter_ids",
        "state",
        "county_id",
        "precinct",
        "cong_dist",
        "state_senate",
        "state_house",
        "is_active",
        "status",
        "gender",
        "race",
        "ethnicity",
        "party",
        "birth_year",
        "registration_date",
        F.col("phone").isNotNull().cast("int").alias("has_phone"),
        *vote_columns,
        eligible("GENERAL").alias("generals_eligible"),
        eligible("PRIMARY").alias("primaries_eligible"),
        eligible("MUNICIPAL").alias("municipals_eligible"),
        *[_per_date(dates, lambda d, level=level: _count_eligible(november_generals(elections, d, level)))
          .alias(f"{level}_eligible") for level in GENERAL_LEVELS],
    )
    by_person = ["person_id", AS_OF]
    joined = (
        base.join(contact_aggregates(contacts, dates), on=by_person, how="left")
        .join(digital_aggregates(digital, dates), on=by_person, how="left")
        .join(precinct_party_shares(base, by=[AS_OF]), on=by_person, how="left")
        .fillna(
            0,
            subset=[
                "generals_voted", "primaries_voted", "municipals_voted", "voted_last_general",
                "voted_last_presidential", "voted_last_midterm", *[f"{level}_voted" for level in GENERAL_LEVELS],
                "voted_last_primary", "dem_ballots", "rep_ballots", "contact_attempts",
                "contacts_made", "digital_events", "digital_clicks",
            ],
        )
    )
    years_since = lambda c: F.datediff(F.col(AS_OF), F.col(c)) / F.lit(DAYS_PER_YEAR)  # noqa: E731
    return joined.select(
        "person_id",
        AS_OF,
        "state_voter_id",
        "state_voter_ids",
        "state",
        "county_id",
        "precinct",
        "cong_dist",
        "state_senate",
        "state_house",
        "is_active",
        "status",
        (F.year(AS_OF) - F.col("birth_year")).cast("int").alias("age"),
        "gender",
        "race",
        "ethnicity",
        "party",
        "precinct_dem_share",
        "precinct_rep_share",
        years_since("registration_date").alias("reg_tenure_years"),
        "has_phone",
        F.col("generals_eligible").cast("int").alias("generals_eligible"),
        F.col("generals_voted").cast("int").alias("generals_voted"),
        _rate("generals_voted", "generals_eligible").alias("general_rate"),
        F.col("primaries_eligible").cast("int").alias("primaries_eligible"),
        F.col("primaries_voted").cast("int").alias("primaries_voted"),
        _rate("primaries_voted", "primaries_eligible").alias("primary_rate"),
        F.col("municipals_eligible").cast("int").alias("municipals_eligible"),
        F.col("municipals_voted").cast("int").alias("municipals_voted"),
        _rate("municipals_voted", "municipals_eligible").alias("municipal_rate"),
        # Participation by the level of past generals: many vote only in presidential years.
        *[_rate(f"{level}_voted", f"{level}_eligible").alias(f"{level}_rate") for level in GENERAL_LEVELS],
        F.col("voted_last_general").cast("int").alias("voted_last_general"),
        F.col("voted_last_presidential").cast("int").alias("voted_last_presidential"),
        F.col("voted_last_midterm").cast("int").alias("voted_last_midterm"),
        F.col("voted_last_primary").cast("int").alias("voted_last_primary"),
        years_since("last_vote_date").alias("years_since_last_vote"),
        "early_or_mail_share",
        F.col("dem_ballots").cast("int").alias("dem_ballots"),
        F.col("rep_ballots").cast("int").alias("rep_ballots"),
        F.col("contact_attempts").cast("int").alias("contact_attempts"),
        F.col("contacts_made").cast("int").alias("contacts_made"),
        F.col("digital_events").cast("int").alias("digital_events"),
        F.col("digital_clicks").cast("int").alias("digital_clicks"),
    )


def turnout_labels(history: DataFrame, election: Election) -> DataFrame:
    """Who voted in one election.

    Args:
        history: ``silver.vote_history``.
        election: the target election.

    Returns:
        Columns ``person_id`` and ``label`` (1.0) for each voter who voted;
        voters absent from the result did not vote.
    """
    return (
        history.where(F.col("election_date") == F.lit(election.date))
        .select("person_id", F.lit(1.0).alias("label"))
        .dropDuplicates(["person_id"])
    )


def support_labels(contacts: DataFrame, as_of: dt.date) -> DataFrame:
    """Support labels from survey IDs: 1-2 support (1.0), 4-5 oppose (0.0); 3 is dropped.

    The latest ID before ``as_of`` wins when a voter was asked more than once.

    Args:
        contacts: ``silver.contacts``.
        as_of: only IDs taken before this date count.

    Returns:
        Columns ``person_id`` and ``label``.
    """
    ids = contacts.where(
        F.col("person_id").isNotNull()
        & F.col("support_id").isin(1, 2, 4, 5)
        & (F.col("attempted_at") < F.lit(as_of))
    )
    latest = ids.groupBy("person_id").agg(
        F.max_by("support_id", "attempted_at").alias("support_id")
    )
    return latest.select("person_id", F.when(F.col("support_id") <= 2, 1.0).otherwise(0.0).alias("label"))


def known_elections(history: DataFrame) -> list[Election]:
    """Distinct (date, type family) of the elections in the vote history (a few dozen rows)."""
    # A few dozen rows: one per election.
    rows = history.select("election_date", election_family(F.col("election_type")).alias("t")).distinct().collect()
    return sorted({Election(r["election_date"], r["t"]) for r in rows}, key=lambda e: (e.date, e.type))


def scoring_as_of(history: DataFrame, contacts: DataFrame, digital: DataFrame, snapshot: dt.date) -> dt.date:
    """The day after the newest dated event in the data (never before the voter-file snapshot)."""
    newest = (
        history.select(F.max("election_date").alias("d"))
        .unionByName(contacts.select(F.max(F.to_date("attempted_at")).alias("d")))
        .unionByName(digital.select(F.max(F.to_date("event_ts")).alias("d")))
        .agg(F.max("d"))
        .first()[0]  # one value: the newest event date
    )
    return max(d for d in (newest + dt.timedelta(days=1) if newest else None, snapshot) if d is not None)
