"""Vote history (NC ``ncvhis``) and precinct results of the latest general.

Whether a *person* votes in an election is one draw per (person, election)
against the person's probability for that kind of election: presidential and
midterm generals have their own levels, each at the voter's age and time on the
rolls at that election (the truth's probabilities are at the snapshot's). The vote is then
recorded on the registration that was valid on election day: at least 18,
registered 25 days before, not yet removed, not denied. A person with a
duplicate registration has some of their votes recorded on the duplicate, as
happens when records are split.

Precinct results (the MEDSL precinct-returns columns) count the same votes per
precinct of the registration each was recorded on, so they agree exactly with
``ncvhis``; each voter's choice in the US House race is one draw against their
``p_support`` (Democrat) per person.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.synth import reference as R
from votelake.synth.plan import keep_where
from votelake.synth.rand import literal_map, logit, sigmoid, uniform
from votelake.synth.voters import KIND_DUPLICATE, turnout_age_term, turnout_tenure_term

# Share of a duplicated person's votes recorded on the duplicate registration.
DUP_SPLIT = 0.3

# The MEDSL precinct-returns columns the results file carries, in order.
RESULTS_COLUMNS = ("precinct", "office", "party_detailed", "party_simplified", "mode", "votes", "county_name",
                   "candidate", "district", "date", "state_po")
RESULTS_DISTRICT = "001"
# (office, party, candidate, district) of each results row per precinct, in file order.
RESULTS_ROWS = (("BALLOTS CAST", "", "", ""),
                ("US HOUSE", "DEMOCRAT", "CANDIDATE D", RESULTS_DISTRICT),
                ("US HOUSE", "REPUBLICAN", "CANDIDATE R", RESULTS_DISTRICT))


def latest_general() -> int:
    """The index (``e_idx``) of the latest general election in :data:`reference.ELECTIONS`.

    Returns:
        The index into ``reference.ELECTIONS`` (and :func:`reference.election_table`).
    """
    generals = [(dt.datetime.strptime(lbl, "%m/%d/%Y").date(), idx)
                for idx, (lbl, kind) in enumerate(R.ELECTIONS) if kind == "GENERAL"]
    return max(generals)[1]


def eligible(birth_date: Column, reg_date: Column, removal_date: Column, status: Column,
             e_date: Column) -> Column:
    """Whether a registration could vote on an election date.

    Args:
        birth_date: the person's birth date.
        reg_date: the registration date.
        removal_date: the date the registration was removed (null if never).
        status: current status code (denied registrations never vote).
        e_date: the election date.

    Returns:
        A boolean Column.
    """
    return ((F.add_months(birth_date, 216) <= e_date)
            & (F.date_add(reg_date, 25) <= e_date)
            & (removal_date.isNull() | (removal_date > e_date))
            & (status != "D"))


def vote_events(regs: DataFrame, elections: DataFrame, seed: int) -> DataFrame:
    """Registration x election rows with eligibility and the vote decision.

    Args:
        regs: :func:`voters.registrations` output.
        elections: :func:`reference.election_table` output.
        seed: generator seed.

    Returns:
        One row per registration per election with ``eligible`` and ``voted``
        booleans and the columns the ncvhis projection needs.
    """
    df = regs.select(
        "person_id", "kind", "county_id", "county_desc", "voter_reg_num", "ncid", "precinct_abbrv",
        "precinct_desc", "birth_date", "reg_date", "removal_date", "status_cd", "party", "age",
        "p_turnout", "p_presidential", "p_primary", "p_municipal", "p_support", "is_dup", "dup_reg",
        "first_reg", "tenure_years",
    ).crossJoin(F.broadcast(elections))
    e_date = F.col("e_date")
    elig = eligible(F.col("birth_date"), F.col("reg_date"), F.col("removal_date"), F.col("status_cd"), e_date)
    dup_elig = F.col("is_dup") & (F.add_months(F.col("birth_date"), 216) <= e_date) & (
        F.date_add(F.col("dup_reg"), 25) <= e_date)
    to_dup = dup_elig & (uniform(seed, "dup_split", "person_id", "e_idx") < DUP_SPLIT)
    this_row = F.when(F.col("kind") == KIND_DUPLICATE, to_dup).otherwise(~to_dup)
    presidential_year = F.year(e_date) % 4 == 0
    general = F.when(presidential_year, F.col("p_presidential")).otherwise(F.col("p_turnout"))
    # The true probabilities are at the snapshot's age and tenure; a past
    # election draws at the voter's age and tenure then (younger, newer voters
    # vote less), as turnout in a real state does.
    age_then = F.floor(F.months_between(e_date, F.col("birth_date")) / 12)
    tenure_then = F.greatest(F.datediff(e_date, F.col("first_reg")), F.lit(0)) / 365.25
    then = (turnout_age_term(age_then) - turnout_age_term(F.col("age"))
            + turnout_tenure_term(tenure_then) - turnout_tenure_term(F.col("tenure_years")))
    # Primaries and municipal elections scale the same logit (voters.persons).
    p = (F.when(F.col("e_type") == "GENERAL", sigmoid(logit(general) + then))
         .when(F.col("e_type") == "PRIMARY", sigmoid(logit(F.col("p_primary")) + F.lit(1.15) * then))
         .otherwise(sigmoid(logit(F.col("p_municipal")) + F.lit(1.15) * then)))
    votes = uniform(seed, "vote", "person_id", "e_idx") < p
    return df.select("*", elig.alias("eligible"), (elig & this_row & votes).alias("voted"))


def to_ncvhis(events: DataFrame, columns: tuple[str, ...], seed: int) -> DataFrame:
    """Project voted rows to the NC ``ncvhis`` layout.

    Args:
        events: :func:`vote_events` output.
        columns: the layout's column names, in order.
        seed: generator seed.

    Returns:
        A DataFrame of strings with exactly ``columns``, in order.
    """
    voted = keep_where(events, F.col("voted"))
    u_m = uniform(seed, "method", "person_id", "e_idx")
    method = (F.when(u_m < F.col("m1"), "ABSENTEE ONESTOP").when(u_m < F.col("m2"), "ABSENTEE BY MAIL")
              .when(u_m < F.col("m3"), "PROVISIONAL").when(u_m < F.col("m4"), "CURBSIDE")
              .when(u_m < F.col("m5"), "TRANSFER").otherwise("IN-PERSON"))
    # Older voters vote by mail more often.
    method = F.when((F.col("age") >= 65) & (uniform(seed, "mail_old", "person_id", "e_idx") < 0.08),
                    F.lit("ABSENTEE BY MAIL")).otherwise(method)
    # Unaffiliated voters choose a party ballot in a primary; lean follows support.
    una_pick = F.when(uniform(seed, "ballot", "person_id", "e_idx") < F.lit(0.2) + F.lit(0.6) * F.col("p_support"),
                      "DEM").otherwise("REP")
    ballot = F.when((F.col("e_type") == "PRIMARY") & F.col("party").isin("UNA", "GRE", "CST"),
                    una_pick).otherwise(F.col("party"))
    party_desc = literal_map(R.PARTY_DESC)
    county = F.col("county_id").cast("string")
    values = {
        "county_id": county, "county_desc": F.col("county_desc"), "voter_reg_num": F.col("voter_reg_num"),
        "election_lbl": F.col("election_lbl"), "election_desc": F.col("election_desc"),
        "voting_method": method, "voted_party_cd": ballot,
        "voted_party_desc": F.element_at(party_desc, ballot),
        "pct_label": F.col("precinct_abbrv"), "pct_description": F.col("precinct_desc"),
        "ncid": F.col("ncid"), "voted_county_id": county, "voted_county_desc": F.col("county_desc"),
        "vtd_label": F.col("precinct_abbrv"), "vtd_description": F.col("precinct_abbrv"),
    }
    return voted.select(*[values[c].alias(c) for c in columns])


def to_results(events: DataFrame, e_idx: int, seed: int) -> DataFrame:
    """Precinct results of one election in the MEDSL precinct-returns format.

    Per precinct (county and ``precinct_abbrv`` of the registrations), three
    rows: ``BALLOTS CAST`` (the voted rows of :func:`vote_events`, i.e. the
    persons whose vote was recorded on a registration in that precinct, as in
    ``ncvhis``), and the US House Democrat and Republican votes: each voter
    chooses the Democrat with probability ``p_support`` (one draw per person),
    else the Republican, so the two add up to the ballots cast. Precincts
    where nobody voted carry zeros.

    Args:
        events: :func:`vote_events` output.
        e_idx: the election (:func:`latest_general`).
        seed: generator seed.

    Returns:
        One partition, sorted by county, precinct and office, of
        :data:`RESULTS_COLUMNS` (``votes`` a long, the rest strings).
    """
    voted = F.col("voted").cast("int")
    dem = (F.col("voted") & (uniform(seed, "vote_choice", "person_id") < F.col("p_support"))).cast("int")
    precincts = events.where(F.col("e_idx") == e_idx).groupBy(
        F.upper("county_desc").alias("county_name"), F.col("precinct_abbrv").alias("precinct"), "e_date",
    ).agg(F.sum(voted).cast("long").alias("ballots"), F.sum(dem).cast("long").alias("dem"))
    counts = [F.col("ballots"), F.col("dem"), F.col("ballots") - F.col("dem")]
    rows = F.array(*[
        F.struct(F.lit(i).alias("i"), F.lit(office).alias("office"), F.lit(party).alias("party"),
                 F.lit(candidate).alias("candidate"), F.lit(district).alias("district"), n.alias("votes"))
        for i, ((office, party, candidate, district), n) in enumerate(zip(RESULTS_ROWS, counts))])
    exploded = precincts.select("county_name", "precinct", "e_date", F.explode(rows).alias("r"))
    return exploded.repartition(1).sortWithinPartitions("county_name", "precinct", "r.i").select(
        "precinct",
        F.col("r.office").alias("office"),
        F.col("r.party").alias("party_detailed"),
        F.col("r.party").alias("party_simplified"),
        F.lit("TOTAL").alias("mode"),
        F.col("r.votes").alias("votes"),
        "county_name",
        F.col("r.candidate").alias("candidate"),
        F.col("r.district").alias("district"),
        F.date_format("e_date", "yyyy-MM-dd").alias("date"),
        F.lit("NC").alias("state_po"),
    )
