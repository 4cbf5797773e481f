"""Build job: bronze → silver → gold features.

Inputs: ``bronze.ncvoter``, ``bronze.ncvhis``, ``bronze.contacts``,
``bronze.digital`` (latest load of each voter-file snapshot; all loads of
contacts and digital events, de-duplicated by id).
Outputs: ``silver.voters``, ``silver.vote_history``, ``silver.contacts``,
``silver.digital_events``; ``gold.voter_features`` for two as-of dates: the
latest general election in the history (training) and the day after the newest
event in the data (scoring).
Launch: ``spark-submit jobs/build.py --conf conf/local.yaml`` or
``votelake run build``.

Every table is overwritten in one commit, so re-running never duplicates.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import Settings
from votelake.jobs.common import Lakehouse, job_main
from votelake.layouts import load_layout
from votelake.transforms import features as feat
from votelake.transforms import silver


def _empty(lake: Lakehouse, name: str) -> DataFrame:
    spec = lake.table(name)
    return lake.spark.createDataFrame([], spec.schema)


def _bronze(lake: Lakehouse, name: str) -> DataFrame:
    """A bronze table, or an empty one of its schema when that source never landed."""
    return lake.read(name) if lake.version(name) is not None else _empty(lake, name)


def known_elections(history: DataFrame) -> list[feat.Election]:
    """Distinct (date, type) of the elections in the vote history (a few dozen rows)."""
    rows = history.select("election_date", "election_type").distinct().collect()
    return sorted((feat.Election(r["election_date"], r["election_type"]) for r in rows), key=lambda e: e.date)


def scoring_as_of(history: DataFrame, contacts: DataFrame, digital: DataFrame) -> dt.date:
    """The day after the newest dated event in the data: "now" in data terms."""
    newest = (
        history.select(F.max("election_date").alias("d"))
        .unionByName(contacts.select(F.max(F.to_date("attempted_at")).alias("d")))
        .unionByName(digital.select(F.max(F.to_date("event_ts")).alias("d")))
        .agg(F.max("d"))
        .first()[0]
    )
    return newest + dt.timedelta(days=1)


def training_election(elections: list[feat.Election], as_of: dt.date) -> feat.Election:
    """The latest general election before ``as_of``: the turnout model's label."""
    generals = feat.elections_before(elections, as_of, "GENERAL")
    if not generals:
        raise ValueError("the vote history holds no general election to train turnout on")
    return generals[-1]


def run(spark: SparkSession, settings: Settings) -> dict:
    """Build silver and gold tables from bronze.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Row counts and versions of the tables written, and the as-of dates.
    """
    lake = Lakehouse.open(spark, settings, job="build")
    state = settings.synth.state
    ncvoter_layout = load_layout(settings.layouts, "nc_ncvoter")
    ncvhis_layout = load_layout(settings.layouts, "nc_ncvhis")
    contacts_layout = load_layout(settings.layouts, "contacts")
    digital_layout = load_layout(settings.layouts, "digital")

    voters = silver.voters(silver.latest_load(lake.read("bronze.ncvoter")), state, ncvoter_layout.date_format)
    written = {"silver.voters": lake.write(voters, "silver.voters", "overwrite")}
    voters = lake.read("silver.voters")

    history = silver.vote_history(silver.latest_load(lake.read("bronze.ncvhis")), state, ncvhis_layout.date_format)
    written["silver.vote_history"] = lake.write(history, "silver.vote_history", "overwrite")
    history = lake.read("silver.vote_history")

    bronze_contacts = _bronze(lake, "bronze.contacts")
    contacts = silver.contacts(bronze_contacts, voters, state, contacts_layout.date_format)
    written["silver.contacts"] = lake.write(contacts, "silver.contacts", "overwrite")
    contacts = lake.read("silver.contacts")

    emails = silver.email_owners(bronze_contacts, contacts)
    digital = silver.digital_events(_bronze(lake, "bronze.digital"), voters, emails, digital_layout.date_format)
    written["silver.digital_events"] = lake.write(digital, "silver.digital_events", "overwrite")
    digital = lake.read("silver.digital_events")

    elections = known_elections(history)
    score_date = scoring_as_of(history, contacts, digital)
    train_date = training_election(elections, score_date).date
    features = feat.voter_features(voters, history, contacts, digital, train_date, elections).unionByName(
        feat.voter_features(voters, history, contacts, digital, score_date, elections)
    )
    written["gold.voter_features"] = lake.write(features, "gold.voter_features", "overwrite")

    summary: dict = {name: {"version": r.version, "rows": r.rows} for name, r in written.items()}
    summary["training_as_of"] = train_date.isoformat()
    summary["scoring_as_of"] = score_date.isoformat()
    summary["elections"] = len(elections)
    return summary


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("build", run, __doc__.splitlines()[0], argv)
