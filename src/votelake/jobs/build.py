"""Build job: bronze → silver (resolved persons) → gold features.

Inputs: the bronze table of every landing source (``bronze.<source>``), read
through its layout into canonical records: voter files (every load: each is a
snapshot), vote history (separate files, or a voter file's per-election
columns), contacts and digital events (every load, de-duplicated by id).
Outputs: ``silver.registrations`` (SCD type 2 over the snapshots),
``silver.person_ids`` and ``silver.persons`` (identity resolution),
``silver.households``, ``silver.vote_history``, ``silver.contacts``,
``silver.digital_events``, ``silver.record_links`` (how each contact and digital
profile linked, so a refresh links again only what a change reaches),
``silver.experiment_assignments`` (empty without an
experiments source); ``silver.address_parses`` (each address text parsed so
far, so a refresh parses only new ones); ``gold.voter_features`` for the training as-of date (the
latest general election in the history, when there is one), the pre-treatment
as-of date (the earliest experiment assignment, when there is one, so uplift
models see covariates from before treatment only) and the scoring as-of date
(the day after the newest event in the data).
Launch: ``spark-submit jobs/build.py --conf conf/local.yaml`` or
``votelake run build``.

Every table but the address parses (merged) is overwritten in one commit and
validated as written, so re-running never duplicates; the previous person ids
are read back so that ``person_id`` stays stable. A re-run
under a run version that already wrote every table stops before computing.
The run manifest (``audit.runs``) is written last: until then, the other jobs
read the previous build's tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import json
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.storagelevel import StorageLevel

from votelake import progress, resolve
from votelake.resolve import engine, relink, rules
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse, canonical_sources
from votelake.models import scoring, tracking
from votelake.transforms import address
from votelake.transforms import features as feat
from votelake.transforms import silver
from votelake.transforms.households import households, person_households

log = logging.getLogger(__name__)


# Persons holding several voter ids that the report lists (ids only).
SEVERAL_IDS_SAMPLE = 20
# Every address text parsed so far: a cache, read at its latest version.
PARSES = "silver.address_parses"
# Commit metadata of silver.person_ids: the fingerprint of the Splink model that resolved them.
MODEL_KEY = "votelake.resolution_model"
# Commit metadata of silver.registrations: the newest snapshot its history covers, how many loaded
# voter rows there were (all of them dated up to it), and the code and parser that standardized them.
HISTORY_KEY = "votelake.registration_history"
# How each contact and digital profile linked, kept so that a refresh links again only what a change reaches.
LINKS = "silver.record_links"
# Commit metadata of silver.record_links: the method, model, code and registrations version it linked with.
LINKS_KEY = "votelake.record_links"
# The identifying values of a contact or digital record: records repeat them (every event of a
# subscriber carries the same profile), so each distinct profile is linked once.
LINK_KEYS = tuple(c for c in silver.RECORD_LINK_COLUMNS if c != "record_id")


def profile_id() -> Column:
    """A profile's id: a hash of its identifying values (:data:`LINK_KEYS`)."""
    return F.sha2(F.to_json(F.struct(*LINK_KEYS)), 256)


def identity_report(settings: Settings, current: DataFrame, resolution: dict) -> dict:
    """How many persons hold more than one statewide voter id, printed and logged to MLflow.

    Args:
        settings: the run configuration.
        current: the current registrations (``person_id``, ``state_voter_id``).
        resolution: the resolution's figures (``registrations``, ``persons``).

    Returns:
        ``persons_with_several_voter_ids``, its share of persons, a sample of
        their ids and the MLflow run holding them.
    """
    several = resolve.several_voter_ids(current).persist(StorageLevel.MEMORY_AND_DISK)
    count = several.count()  # the figure reported; the sample below reads the same cached rows
    # A few ids for the report: SEVERAL_IDS_SAMPLE persons.
    sample = [r["voter_ids"] for r in several.orderBy("person_id").limit(SEVERAL_IDS_SAMPLE).collect()]
    several.unpersist()
    persons = resolution["persons"]
    share = count / persons if persons else 0.0
    run_id = tracking.log_identity_report(settings.mlflow, {
        "registrations": float(resolution["registrations"]), "persons": float(persons),
        "persons_with_several_voter_ids": float(count), "several_voter_ids_share": share}, sample)
    log.info("%d of %d persons (%.2f%%) hold more than one statewide voter id (sample of their ids in MLflow "
             "run %s)", count, persons, 100 * share, run_id)
    return {"persons_with_several_voter_ids": count, "several_voter_ids_share": round(share, 5),
            "several_voter_ids_sample": sample[:5], "identity_run_id": run_id}


def experiment_report(assignments: DataFrame) -> dict:
    """Counts of the experiment assignments and the date treatment started.

    Args:
        assignments: ``silver.experiment_assignments``.

    Returns:
        ``assignments`` (rows), ``linked`` (with a person), ``unmatched``
        (voter id in no registration) and ``first_assigned`` (the earliest
        assignment date, None without assignments).
    """
    row = assignments.agg(
        F.count("*").alias("assignments"), F.count("person_id").alias("linked"),
        F.min(F.to_date("assigned_at")).alias("first_assigned"),
    ).first()  # one row: the figures returned
    return {"assignments": row["assignments"], "linked": row["linked"],
            "unmatched": row["assignments"] - row["linked"], "first_assigned": row["first_assigned"]}


# The tables build writes (one write each, in this order).
OUTPUTS = ("silver.person_ids", "silver.registrations", "silver.households", "silver.persons",
           "silver.vote_history", "silver.contacts", "silver.digital_events", LINKS,
           "silver.experiment_assignments", "gold.voter_features")


def resolution_input(latest: DataFrame) -> DataFrame:
    """The latest version of every registration in identity resolution's input shape."""
    return latest.select(
        "registration_key", "state_voter_id", "first_name", "middle_name", "last_name", "name_suffix",
        "birth_year", "birth_date", "gender", "address_key", F.col("unit_number").alias("unit"),
        F.col("res_city").alias("city"), "zip5", "phone", "email",
    )


def latest_versions(versions: DataFrame) -> DataFrame:
    """The latest version of each registration (rows of ``silver.registrations``' shape)."""
    latest = versions.groupBy("registration_key").agg(F.max("version").alias("version"))
    return versions.join(latest, on=["registration_key", "version"], how="inner")


def registration_versions(lake: Lakehouse, settings: Settings, voters: DataFrame, parses: DataFrame,
                          listed: dict[str, int | None]) -> tuple[DataFrame, dict]:
    """Every registration's SCD2 versions: the listed history extended by the newer snapshots, or all rebuilt.

    The history readers see (``silver.registrations`` at its listed version)
    is extended when its commit says which snapshots it covers and the loaded
    voter rows dated up to its newest snapshot are still exactly those it was
    built from (same count: a late or reloaded older file, or an erasure,
    means rebuilding from every snapshot), standardized by the same code and
    address parser. Then only the newer snapshots are
    standardized, and the result equals rebuilding
    (:func:`votelake.transforms.silver.extend_registration_history`).

    Args:
        lake: the lakehouse.
        settings: the run configuration (``state``).
        voters: canonical voter records of every load.
        parses: ``silver.address_parses``.
        listed: the versions readers see of ``silver.registrations`` (and ``silver.person_ids``).

    Returns:
        The versions (:data:`votelake.transforms.silver.VERSION_COLUMNS`, cached: unpersist when done), and
        ``newest_snapshot``, ``built_from`` (``every snapshot``, ``snapshots after <date>`` or ``the listed
        history``: no newer snapshot) and the ``metadata`` to commit with ``silver.registrations``.
    """
    at = listed["silver.registrations"]
    # The code and address parser that standardized the rows: another would standardize old snapshots anew.
    standardized_by = {"code": tracking.code_version(), "parser": address.PARSER}
    recorded = lake.latest_metadata("silver.registrations", HISTORY_KEY, at=at) if at is not None else None
    prior = json.loads(recorded[0]) if recorded is not None and recorded[1] == at else None
    if prior is not None and prior.get("standardized_by") != standardized_by:
        prior = None
    through = dt.date.fromisoformat(prior["through"]) if prior else None
    dated = F.col("_snapshot_date")
    # One pass over two columns of the loaded rows: the newest snapshot, the rows, those the history covers.
    counts = voters.agg(F.max(dated).alias("newest"), F.count("*").alias("rows"),
                        *([F.count_if(dated <= F.lit(through)).alias("covered")] if through else [])).first()
    newest = counts["newest"]
    metadata = ({HISTORY_KEY: json.dumps({"through": str(newest), "rows": counts["rows"],
                                          "standardized_by": standardized_by})} if newest else None)
    report = {"newest_snapshot": newest, "metadata": metadata}
    if through is None or counts["covered"] != prior["rows"]:
        snapshots = silver.registration_snapshots(voters, settings.state, parses)
        return (silver.registration_history(snapshots).persist(StorageLevel.MEMORY_AND_DISK),
                {**report, "built_from": "every snapshot"})
    previous = lake.read("silver.registrations", version=at)
    if newest == through:
        return (previous.select(*silver.VERSION_COLUMNS).persist(StorageLevel.MEMORY_AND_DISK),
                {**report, "built_from": "the listed history"})
    newer = silver.registration_snapshots(voters.where(dated > F.lit(through)), settings.state, parses)
    return (silver.extend_registration_history(previous, newer, through).persist(StorageLevel.MEMORY_AND_DISK),
            {**report, "built_from": f"snapshots after {through}"})


def previous_resolution(lake: Lakehouse, settings: Settings, model: str | None, listed: dict[str, int | None],
                        person_ids: DataFrame | None) -> resolve.Previous | None:
    """The resolution the current tables hold, when it was made with ``model``.

    Args:
        lake: the lakehouse.
        settings: the run configuration (``resolve.incremental``).
        model: the Splink model this build scores with (None: it trains one).
        listed: the versions readers see of ``silver.person_ids`` and ``silver.registrations``.
        person_ids: ``silver.person_ids`` at its listed version (None before a first build).

    Returns:
        The registrations and person ids readers see now, or None when this
        build resolves everything: no model yet, ``resolve.incremental`` off,
        no previous build, or one that used another model (its commit records
        the model's fingerprint under :data:`MODEL_KEY`).
    """
    if model is None or not settings.resolve.incremental or person_ids is None:
        return None
    at, registrations_at = listed["silver.person_ids"], listed["silver.registrations"]
    if registrations_at is None or lake.latest_metadata("silver.person_ids", MODEL_KEY, at=at) != (
            engine.fingerprint(model), at):
        return None
    registrations = latest_versions(lake.read("silver.registrations", version=registrations_at))
    return resolve.Previous(resolution_input(registrations), person_ids)


def resolve_registrations(spark: SparkSession, settings: Settings, registrations: DataFrame, lake: Lakehouse,
                          listed: dict[str, int | None], person_ids: DataFrame | None) -> tuple[DataFrame, dict]:
    """Cluster registrations into persons with the configured method.

    Args:
        spark: the session (Splink runs its SQL through it).
        settings: the run configuration (``resolve``).
        registrations: :func:`resolution_input`.
        lake: the lakehouse (a refresh reads the previous resolution there).
        listed: see :func:`previous_resolution`.
        person_ids: see :func:`previous_resolution`.

    Returns:
        ``registration_key, cluster_id`` and a report of the method used
        (with Splink, ``model_fingerprint`` for the person ids' commit).
    """
    if settings.resolve.method == "rules":
        clusters = rules.dedupe_by_rules(registrations).persist(StorageLevel.MEMORY_AND_DISK)
        return clusters, {"method": "rules"}
    model = None if settings.resolve.retrain else tracking.latest_resolution_model(settings.mlflow, "dedupe")
    progress.stage("resolving registrations into persons (Splink" + (")" if model else ", training its model)"))
    dedupe = resolve.dedupe_registrations(spark, registrations, settings.resolve, model=model,
                                          previous=previous_resolution(lake, settings, model, listed, person_ids))
    report: dict = {"method": "splink", "model": "reused" if model else "trained", **dedupe.figures,
                    "model_fingerprint": engine.fingerprint(dedupe.model),
                    # a figure logged to MLflow (the pairs scored this run); the pairs are checkpointed
                    "matched_pairs": dedupe.pairs.count()}
    if model is None:
        report["model_run_id"] = tracking.log_resolution_model(
            settings.mlflow, "dedupe", dedupe.model, settings.resolve.model_dump(mode="json"),
            {"matched_pairs": float(report["matched_pairs"])})
    return dedupe.clusters, report


def record_profiles(records: DataFrame) -> DataFrame:
    """Each distinct set of identifying values records carry (every event of a subscriber carries the same).

    Args:
        records: records with the linking columns (:data:`silver.RECORD_LINK_COLUMNS`).

    Returns:
        The linking columns, ``record_id`` being a hash of the others (the profile's id).
    """
    return records.select(*LINK_KEYS).distinct().select(profile_id().alias("record_id"), *LINK_KEYS)


def link_model(settings: Settings) -> str | None:
    """The link model this build links with (None: the build trains one, or ``resolve.method: rules``)."""
    if settings.resolve.method == "rules" or settings.resolve.retrain:
        return None
    return tracking.latest_resolution_model(settings.mlflow, "link")


def links_metadata(settings: Settings, model: str | None, registrations: int | None) -> dict:
    """What :data:`LINKS` records with its commit: a refresh keeps its links only under the same."""
    return {"method": settings.resolve.method, "model": engine.fingerprint(model) if model else None,
            "code": tracking.code_version(), "registrations": registrations}


def previous_links(lake: Lakehouse, settings: Settings, model: str | None,
                   listed: dict[str, int | None]) -> DataFrame | None:
    """The links of the last complete build, when a refresh may keep them.

    Args:
        lake: the lakehouse.
        settings: the run configuration (``resolve``).
        model: :func:`link_model`.
        listed: the versions readers see of :data:`LINKS` and ``silver.registrations``.

    Returns:
        :data:`LINKS` at its listed version, or None: ``resolve.incremental`` off,
        no such table, a model that does not keep its term frequencies (a score
        would depend on the input), or a commit made with another method, model
        or code, or against other registrations than those listed (an erasure
        rewrote them).
    """
    at = listed[LINKS]
    if not settings.resolve.incremental or at is None:
        return None
    if settings.resolve.method == "splink" and (model is None or engine.frequencies_of(model) is None):
        return None
    recorded = lake.latest_metadata(LINKS, LINKS_KEY, at=at)
    expected = links_metadata(settings, model, listed["silver.registrations"])
    if recorded is None or recorded[1] != at or json.loads(recorded[0]) != expected:
        return None
    return lake.read(LINKS, version=at)


def link_to_persons(spark: SparkSession, settings: Settings, profiles: DataFrame, targets: DataFrame,
                    report: dict, kind: str, previous: relink.PreviousLinks | None) -> DataFrame:
    """Link contact or digital profiles to persons with the configured method.

    Args:
        spark: the session (Splink runs its SQL through it).
        settings: the run configuration (``resolve``).
        profiles: :func:`record_profiles` (persisted).
        targets: :func:`link_persons` (digital events: with the keys linked contacts carry).
        report: the resolution report; this link's method and counts are added under ``kind``.
        kind: ``contacts`` or ``digital`` (names the report entry).
        previous: the last build's links and the person rows changed since (None: link every profile).

    Returns:
        Per profile (``record_id``): the local parts of its link (:data:`relink.LOCAL_COLUMNS`)
        and ``person_id, match_probability, matched_by``, materialized.
    """
    report[kind] = {"profiles": profiles.count()}  # a figure reported; materializes the cache the linkage reads
    # One link model serves contacts and digital records (same comparisons): digital reuses the one contacts trained.
    model = link_model(settings)
    method = settings.resolve.method
    local, trained, figures = relink.relink(spark, profiles, targets, settings.resolve, model, method, previous)
    report[kind].update(figures, method=method)
    if method == "splink":
        report[kind]["model"] = "reused" if model else "trained" if trained else "not needed"
        if model is None and trained is not None:
            report[kind]["model_run_id"] = tracking.log_resolution_model(
                settings.mlflow, "link", trained, settings.resolve.model_dump(mode="json"),
                {"profiles": float(report[kind]["profiles"])})
    links = engine.materialize(local.join(relink.final_links(local, profiles, targets, settings.resolve, method),
                                          on="record_id", how="inner"))
    local.unpersist()
    return links


def record_links(records: DataFrame, profile_links: DataFrame, report: dict) -> DataFrame:
    """Each record's link: its latest copy's profile's (a record re-exported in a later delivery).

    Args:
        records: the records of every load.
        profile_links: :func:`link_to_persons`.
        report: the link's report entry; ``linked`` and ``unlinked`` records are added.

    Returns:
        ``record_id, person_id, match_probability, matched_by`` per record (persisted).
    """
    links = silver.newest_load(records, "record_id").select("record_id", profile_id().alias("_profile")).join(
        profile_links.select(F.col("record_id").alias("_profile"), "person_id", "match_probability", "matched_by"),
        on="_profile", how="inner",
    ).drop("_profile").persist(StorageLevel.MEMORY_AND_DISK)
    # One row: the linked and unlinked figures; materializes the cached links.
    counts = links.agg(F.count("person_id").alias("linked"), F.count("*").alias("records")).first()
    report["linked"], report["unlinked"] = counts["linked"], counts["records"] - counts["linked"]
    return links


def recorded_keys(profiles: DataFrame, links: DataFrame) -> DataFrame:
    """Phones and e-mails linked contacts carry, as person rows (they identify those persons' digital events).

    Args:
        profiles: contact :func:`record_profiles`.
        links: ``record_id`` (the profile) and the ``person_id`` it linked to.

    Returns:
        ``person_id, phone, email`` of each linked profile.
    """
    linked = links.where(F.col("person_id").isNotNull()).select("record_id", "person_id")
    return profiles.join(linked, on="record_id", how="inner").select("person_id", "phone", "email")


def link_records_to_persons(spark: SparkSession, settings: Settings, lake: Lakehouse, listed: dict[str, int | None],
                            contacts: DataFrame, digital: DataFrame, current: DataFrame,
                            report: dict) -> tuple[DataFrame, DataFrame, DataFrame, list[DataFrame]]:
    """Link contacts, then digital events, to persons: again only where a change reaches, when allowed.

    Args:
        spark: the session.
        settings: the run configuration.
        lake: the lakehouse.
        listed: the versions readers see (:data:`LINKS`, ``silver.registrations``).
        contacts: :func:`silver.contact_records` of every load (persisted).
        digital: :func:`silver.digital_records` of every load (persisted).
        current: the current registrations with their person ids.
        report: the resolution report (``contacts`` and ``digital`` entries are added).

    Returns:
        The contact links and the digital links per record (persisted), the rows of :data:`LINKS`,
        and the profiles' links they are computed from (materialized): unpersist them all when written.
    """
    targets = link_persons(current)
    before = previous_links(lake, settings, link_model(settings), listed)
    profiles = {"contacts": record_profiles(contacts).persist(StorageLevel.MEMORY_AND_DISK),
                "digital": record_profiles(digital).persist(StorageLevel.MEMORY_AND_DISK)}
    previous: dict[str, relink.PreviousLinks | None] = {"contacts": None, "digital": None}
    if before is not None:
        # The person rows the last build linked to, from the registrations it wrote (listed with it).
        old_targets = link_persons(lake.read("silver.registrations", version=listed["silver.registrations"])
                                   .where(F.col("is_current")))
        kept = {kind: before.where(F.col("kind") == kind).select(
            F.col("profile_id").alias("record_id"), *relink.LOCAL_COLUMNS, "person_id") for kind in previous}
        previous["contacts"] = relink.PreviousLinks(kept["contacts"].drop("person_id"),
                                                    relink.changed_rows(old_targets, targets))
    progress.stage("linking contact profiles to persons")
    links = {"contacts": link_to_persons(spark, settings, profiles["contacts"], targets, report, "contacts",
                                         previous["contacts"])}
    # Phones and e-mails canvassers recorded with linked contacts identify those persons' digital events too.
    digital_targets = targets.unionByName(recorded_keys(profiles["contacts"], links["contacts"]),
                                          allowMissingColumns=True).persist(StorageLevel.MEMORY_AND_DISK)
    if before is not None:
        old_digital_targets = old_targets.unionByName(recorded_keys(profiles["contacts"], kept["contacts"]),
                                                      allowMissingColumns=True)
        previous["digital"] = relink.PreviousLinks(kept["digital"].drop("person_id"),
                                                   relink.changed_rows(old_digital_targets, digital_targets))
    progress.stage("linking digital profiles to persons")
    links["digital"] = link_to_persons(spark, settings, profiles["digital"], digital_targets, report, "digital",
                                       previous["digital"])
    digital_targets.unpersist()
    rows = reduce(DataFrame.unionByName, [
        links[kind].select(F.lit(kind).alias("kind"), F.col("record_id").alias("profile_id"), *relink.LOCAL_COLUMNS,
                           "person_id") for kind in links])
    per_record = (record_links(contacts, links["contacts"], report["contacts"]),
                  record_links(digital, links["digital"], report["digital"]))
    for frame in profiles.values():
        frame.unpersist()
    return *per_record, rows, list(links.values())


def link_persons(current: DataFrame) -> DataFrame:
    """The persons records are linked to: one row per current registration (``silver.registrations``)."""
    return current.select(
        "person_id", "state_voter_id", "first_name", "last_name", "address_key", "zip5", "phone", "email")


def run(spark: SparkSession, settings: Settings) -> dict:
    """Build silver and gold tables from bronze.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Row counts and versions of the tables written, resolution figures, the
        as-of dates, and notes (e.g. no vote history).
    """
    lake = Lakehouse.open(spark, settings, job="build")
    if lake.run_already_committed(OUTPUTS):
        # Every write below would be skipped: stop before recomputing them.
        log.info("run version %s already committed", lake.run_version)
        versions = {name: lake.version(name) for name in OUTPUTS}
        lake.complete(str(lake.run_version), versions)  # a run killed after its last write gets its manifest now
        return {**{name: {"version": version, "rows": None} for name, version in versions.items()},
                "skipped": f"run version {lake.run_version} already committed"}
    state = settings.state
    canon = canonical_sources(lake, settings)
    notes: list[str] = []

    # Each address text is parsed once ever: new texts are parsed and added to
    # silver.address_parses, and every source looks its texts up there.
    known = lake.read(PARSES) if lake.version(PARSES) is not None else None
    fresh = address.new_parses(silver.address_texts(canon["voters"], canon["contacts"], canon["digital"]), known)
    fresh = fresh.persist(StorageLevel.MEMORY_AND_DISK)  # the merge checks its keys, then inserts them
    parsed_now = lake.merge(fresh, PARSES).metrics.get("rows_inserted", 0)
    fresh.unpersist()
    parses = lake.read(PARSES)

    # Registrations versioned across snapshots (SCD2): the history readers see, extended by the newer
    # snapshots only, when it is exactly what rebuilding from every snapshot would give.
    listed = lake.current_versions(("silver.person_ids", "silver.registrations", LINKS))
    versions, versioning = registration_versions(lake, settings, canon["voters"], parses, listed)
    newest_snapshot = versioning["newest_snapshot"]
    latest = latest_versions(versions)

    # Identity resolution: registrations → persons, ids kept stable across refreshes.
    # The person ids readers see now (those of the last complete build) are the ones kept.
    at = listed["silver.person_ids"]
    previous = lake.read("silver.person_ids", version=at) if at is not None else None
    # Every table is then validated as written: readers keep to the listed versions until the manifest below.
    lake.baseline(OUTPUTS)
    clusters, resolution = resolve_registrations(spark, settings, resolution_input(latest), lake, listed, previous)
    person_ids = resolve.assign_person_ids(clusters, previous).persist(StorageLevel.MEMORY_AND_DISK)
    # The model's fingerprint on the commit tells the next build whether it may resolve only what changed.
    fingerprint = resolution.pop("model_fingerprint", None)
    written = {"silver.person_ids": lake.write(person_ids, "silver.person_ids", "overwrite", staged=True,
                                               metadata={MODEL_KEY: fingerprint} if fingerprint else None)}
    # One row per registration: the write counted them (a re-run's skipped write did not).
    resolution["registrations"] = (written["silver.person_ids"].rows if written["silver.person_ids"].committed
                                   else person_ids.count())
    resolution["persons"] = person_ids.select("person_id").distinct().count()  # a figure reported: persons resolved
    registrations = versions.join(person_ids, on="registration_key", how="inner").select(
        *lake.table("silver.registrations").columns)
    written["silver.registrations"] = lake.write(registrations, "silver.registrations", "overwrite", staged=True,
                                                 metadata=versioning["metadata"])
    versions.unpersist()
    registrations = lake.read("silver.registrations")
    current = registrations.where(F.col("is_current"))
    resolution.update(identity_report(settings, current, resolution))

    # Persons (one representative registration each) and their households.
    reps = silver.representatives(current).persist(StorageLevel.MEMORY_AND_DISK)
    homes = silver.housing(reps)
    written["silver.households"] = lake.write(households(homes), "silver.households", "overwrite", staged=True)
    written["silver.persons"] = lake.write(silver.persons(reps, person_households(homes)), "silver.persons",
                                           "overwrite", staged=True)
    reps.unpersist()
    persons = lake.read("silver.persons")

    # Vote history keyed to persons.
    voter_ids = registrations.select("state_voter_id", "person_id")
    votes, orphans = silver.votes(canon["vote_history"], voter_ids, state)
    written["silver.vote_history"] = lake.write(votes, "silver.vote_history", "overwrite", staged=True)
    history = lake.read("silver.vote_history")
    orphan_votes = orphans.count()  # a figure for the notes
    if orphan_votes:
        notes.append(f"{orphan_votes} counted votes name a voter id in no registration (not in silver.vote_history)")
    if history.limit(1).count() == 0:
        notes.append("no vote history: features carry no participation; the turnout model will be skipped")

    # Contacts and digital events linked to persons: on a refresh, again only the profiles a change reaches.
    contact_records = silver.contact_records(canon["contacts"], state, parses).persist(StorageLevel.MEMORY_AND_DISK)
    digital_records = silver.digital_records(canon["digital"], parses).persist(StorageLevel.MEMORY_AND_DISK)
    contact_links, digital_links, links, profile_links = link_records_to_persons(
        spark, settings, lake, listed, contact_records, digital_records, current, resolution)
    written["silver.contacts"] = lake.write(silver.contacts(contact_records, contact_links), "silver.contacts",
                                            "overwrite", staged=True)
    written["silver.digital_events"] = lake.write(silver.digital_events(digital_records, digital_links),
                                                  "silver.digital_events", "overwrite", staged=True)
    # Recorded with the links: the next build keeps them only under the same model, code and registrations.
    written[LINKS] = lake.write(links, LINKS, "overwrite", staged=True, metadata={LINKS_KEY: json.dumps(
        links_metadata(settings, link_model(settings), written["silver.registrations"].version))})
    for frame in (contact_records, contact_links, digital_records, digital_links, *profile_links):
        frame.unpersist()
    contacts, digital = lake.read("silver.contacts"), lake.read("silver.digital_events")

    # Experiment assignments keyed to persons by the exact voter id of any
    # registration; unmatched assignments keep a null person_id.
    written["silver.experiment_assignments"] = lake.write(
        silver.experiment_assignments(canon["experiments"], voter_ids), "silver.experiment_assignments", "overwrite",
        staged=True)
    experiments = experiment_report(lake.read("silver.experiment_assignments"))
    if experiments["unmatched"]:
        notes.append(f"{experiments['unmatched']} experiment assignments name a voter id in no registration "
                     "(kept in silver.experiment_assignments with a null person_id)")

    # Point-in-time features: ahead of the past generals turnout learns from (as far
    # ahead as the scores are of the target election), on the latest general's day
    # (precinct calibration's electorate), before the first experiment assignment
    # (uplift: pre-treatment covariates) and now (scoring).
    elections = feat.known_elections(history)
    score_date = feat.scoring_as_of(history, contacts, digital, newest_snapshot)
    horizon = scoring.turnout_horizon(settings, score_date)  # fails when the data are dated after a declared target
    dates = {score_date, *(feat.at_horizon(g.date, horizon) for g in feat.training_generals(
        elections, score_date, settings.model.turnout_generals_per_level))}
    calibration_day = scoring.calibration_day(settings, elections, score_date)
    if calibration_day is not None and calibration_day < score_date:
        dates.add(calibration_day)
    first_assigned = experiments["first_assigned"]
    pretreatment = first_assigned if first_assigned is not None and first_assigned < score_date else None
    if pretreatment is not None:
        dates.add(pretreatment)
    elif first_assigned is not None:
        notes.append(f"the first experiment assignment ({first_assigned}) is not before the scoring date "
                     f"({score_date}): the scoring features are already pre-treatment")
    as_of_dates = sorted(dates)
    features = feat.voter_features_as_of(persons, history, contacts, digital, as_of_dates, elections)
    written["gold.voter_features"] = lake.write(features, "gold.voter_features", "overwrite", staged=True)
    person_ids.unpersist()
    # Written last: readers (train, score, universes, metrics) move to this build's tables together.
    lake.complete(str(lake.run_version), {name: r.version for name, r in written.items()})

    summary: dict = {name: {"version": r.version, "rows": r.rows} for name, r in written.items()}
    summary["resolution"] = resolution
    summary["registration_history"] = versioning["built_from"]
    summary["addresses_parsed"] = parsed_now
    summary["as_of_dates"] = [d.isoformat() for d in as_of_dates]
    summary["turnout_horizon_days"] = horizon
    summary["experiments"] = {
        **experiments,
        "first_assigned": first_assigned.isoformat() if first_assigned else None,
        "pretreatment_as_of": pretreatment.isoformat() if pretreatment else None,
    }
    summary["elections"] = len(elections)
    summary["quality"] = lake.quality_report()
    if notes:
        summary["notes"] = notes
        for note in notes:
            log.warning("%s", note)
    return summary


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("build", run, __doc__.splitlines()[0], argv)
