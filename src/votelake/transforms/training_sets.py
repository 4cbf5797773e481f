"""Training sets of the propensity and uplift models: labelled feature rows, no I/O.

Each function takes the lakehouse tables the train job read
(``gold.voter_features``, ``silver.vote_history``, ``silver.contacts``,
``silver.experiment_assignments``) and returns the rows a model learns from.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.canonical import CLOSED_STATUSES
from votelake.transforms import features as feat


def feature_dates(features: DataFrame) -> list[dt.date]:
    """The as-of dates present in the feature table, oldest first.

    Raises:
        RuntimeError: the table has no rows (no build has completed).
    """
    dates = sorted(r[0] for r in features.select("as_of_date").distinct().collect())  # a few rows: the as-of dates
    if not dates:
        raise RuntimeError("gold.voter_features has no rows: run the build job (until a first build "
                           "completes, its tables are empty)")
    return dates


def turnout_generals(dates: list[dt.date], history: DataFrame, per_level: int,
                     horizon_days: int = 0) -> list[feat.Election]:
    """The generals turnout learns from that the feature table holds ``horizon_days`` before their own date.

    Args:
        dates: the feature table's as-of dates, oldest first (:func:`feature_dates`); the newest is the scoring date.
        history: ``silver.vote_history``.
        per_level: ``model.turnout_generals_per_level``.
        horizon_days: days from the scoring date to the election it predicts
            (:func:`votelake.models.scoring.turnout_horizon`).

    Returns:
        :func:`votelake.transforms.features.training_generals` before the scoring date.

    Raises:
        ValueError: the table lacks one of those dates: it was built for
            another target election (one it happens to hold, a cycle apart,
            would leave the model fewer generals, or one level only).
    """
    generals = feat.training_generals(feat.known_elections(history), dates[-1], per_level)
    missing = sorted({feat.at_horizon(g.date, horizon_days) for g in generals} - set(dates))
    if missing:
        raise ValueError(f"gold.voter_features holds no features {horizon_days} days before the past generals "
                         f"(the target election's horizon; {len(missing)} of {len(generals)} dates missing, "
                         f"e.g. {missing[0]}): it was built for another target election; run build with this "
                         "configuration")
    return generals


def election_electorate(features: DataFrame, election_date: dt.date, as_of: dt.date | None = None) -> DataFrame:
    """The voters of an election: feature rows as of a date of voters 18 or older at it (or of unknown age).

    Active or not today, and removed or not: precinct calibration compares them
    with results that counted the votes of voters removed since. The turnout
    model learns from these voters less those off the rolls
    (:func:`turnout_training_set`).

    Args:
        features: ``gold.voter_features``.
        election_date: the election.
        as_of: the as-of date of the rows (an as-of date of the features); None: the election's own date.

    Returns:
        The feature rows, with the inputs saying which election they are for
        (:func:`votelake.transforms.features.with_target_election`: age and
        tenure at the election).
    """
    voters = features.where(F.col("as_of_date") == F.lit(as_of or election_date))
    target = feat.with_target_election(voters, feat.Target(election_date, feat.general_level(election_date)))
    return target.where(F.coalesce(F.col("age") >= 18, F.lit(True)))


def turnout_training_set(features: DataFrame, history: DataFrame, elections: list[feat.Election],
                         horizon_days: int = 0) -> DataFrame:
    """Voter × election examples: for each past general, its voters with features ahead of it and the label.

    Learning from several generals, midterm and presidential, each example
    marked with its level (:func:`votelake.transforms.features.with_target_election`),
    lets one model predict the election ahead at its own level instead of the
    level of whichever general came last. Each example is measured as far
    ahead of its election as the scores are of theirs (``horizon_days``), so
    the model learns what a voter's record says that far ahead.

    Registrations now off the rolls (:data:`votelake.canonical.CLOSED_STATUSES`)
    are left out: a removed voter's zeros after a removal the file does not
    date are not abstentions, and the voters scored are those still registered.

    Args:
        features: ``gold.voter_features`` (holding each election's date less
            ``horizon_days`` as an as-of date).
        history: ``silver.vote_history``.
        elections: the general elections to learn from.
        horizon_days: days between an example's as-of date and its election (0: on election day).

    Returns:
        Feature rows with ``election_date``, ``label`` 1.0 (voted) or 0.0, and
        ``baseline``: the share of earlier generals voted while registered (0
        for new voters).
    """
    on_the_rolls = ~F.coalesce(F.col("status").isin(*CLOSED_STATUSES), F.lit(False))

    def examples(election: feat.Election) -> DataFrame:
        voters = election_electorate(features, election.date, feat.at_horizon(election.date, horizon_days))
        return (voters.where(on_the_rolls)
                .join(feat.turnout_labels(history, election), on="person_id", how="left")
                .fillna(0.0, subset=["label"])
                .select("*", F.lit(election.date).alias("election_date"),
                        F.coalesce(F.col("general_rate"), F.lit(0.0)).alias("baseline")))

    return reduce(DataFrame.unionByName, [examples(e) for e in elections])


def party_baseline() -> Column:
    """Support baseline from party registration: DEM 1, REP 0, anything else 0.5."""
    return F.when(F.col("party") == "DEM", 1.0).when(F.col("party") == "REP", 0.0).otherwise(0.5)


def support_training_set(features: DataFrame, contacts: DataFrame, as_of: dt.date) -> DataFrame:
    """Voters with a support ID before ``as_of``, with features as of ``as_of`` and the party baseline."""
    current = features.where(F.col("as_of_date") == F.lit(as_of))
    return (current.join(feat.support_labels(contacts, as_of), on="person_id", how="inner")
            .select("*", party_baseline().alias("baseline")))


def party_training_set(features: DataFrame, as_of: dt.date, our_party: str) -> DataFrame:
    """Registrants of the two main parties, labelled 1.0 for ``our_party``, as of ``as_of``.

    Args:
        features: ``gold.voter_features``.
        as_of: the feature date.
        our_party: ``DEM`` or ``REP``.

    Returns:
        Feature rows with ``label``; other parties and unaffiliated voters are left out.
    """
    other = "REP" if our_party == "DEM" else "DEM"
    current = features.where((F.col("as_of_date") == F.lit(as_of)) & F.col("party").isin(our_party, other))
    return current.select("*", (F.col("party") == our_party).cast("double").alias("label"))


def persuasion_training_set(features: DataFrame, assignments: DataFrame, contacts: DataFrame,
                            outcome_program: str | None) -> DataFrame:
    """Experiment members with a support ID after assignment: arm, outcome, pre-treatment features.

    Args:
        features: ``gold.voter_features`` (must hold the assignment date as an as-of date).
        assignments: ``silver.experiment_assignments``.
        contacts: ``silver.contacts``.
        outcome_program: only IDs from this contact program count (e.g. the
            follow-up survey); any program when None.

    Returns:
        One row per person: features as of the latest as-of date on or before
        the assignment date (members without one are left out), ``t`` (1.0
        treated), ``label`` (1.0 support, 0.0 oppose).
    """
    latest = (assignments.where(F.col("person_id").isNotNull())
              .groupBy("person_id").agg(F.max_by(F.struct("arm", "assigned_at"), "assigned_at").alias("a"))
              .select("person_id", (F.col("a.arm") == "treatment").cast("double").alias("t"),
                      F.col("a.assigned_at").alias("assigned_at")))
    after_assignment = contacts.where(F.col("support_id").isin(1, 2, 4, 5))
    if outcome_program:
        after_assignment = after_assignment.where(F.col("program") == outcome_program)
    outcome = (latest.join(after_assignment.select("person_id", "attempted_at", "support_id"), "person_id", "inner")
               .where(F.col("attempted_at") > F.col("assigned_at"))
               .groupBy("person_id", "t", "assigned_at")
               .agg(F.max_by("support_id", "attempted_at").alias("support_id")))
    labelled = outcome.select("person_id", "t", F.to_date("assigned_at").alias("assigned_on"),
                              (F.col("support_id") <= 2).cast("double").alias("label"))
    # Covariates from the latest as-of date on or before assignment: nothing treatment could move.
    candidates = labelled.join(features, on="person_id", how="inner").where(F.col("as_of_date") <= F.col("assigned_on"))
    latest_date = candidates.groupBy("person_id").agg(F.max("as_of_date").alias("as_of_date"))
    return candidates.join(latest_date, on=["person_id", "as_of_date"], how="inner").drop("assigned_on")


def arm_weight(rows: DataFrame, treated_share: float) -> DataFrame:
    """Add the arm weight ``w = t / e - (1 - t) / (1 - e)``; ``y * w`` is the transformed outcome."""
    e = F.lit(treated_share)
    return rows.select("*", (F.col("t") / e - (1 - F.col("t")) / (1 - e)).alias("w"))
