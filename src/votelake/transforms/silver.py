"""Canonical records → silver: standardized registrations (SCD type 2), persons,
households, vote history, contacts, digital events and experiment assignments.

All functions are pure ``DataFrame -> DataFrame``; the ``select`` at the end of
each is its output contract (the matching silver table in ``conf/tables.yaml``).
Identity resolution (which registrations and records are the same person) is in
:mod:`votelake.resolve`; the build job wires the two together.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.canonical import ACTIVE_STATUSES, NOT_A_VOTE
from votelake.transforms.address import parse_keys, standardize_addresses
from votelake.transforms.standardize import (
    clean_email,
    clean_name,
    clean_person_name,
    normalize_suffix,
    phone_e164,
    split_name_suffix,
)

CONTACT_MADE_RESULTS = ("CANVASSED", "REPLIED")
# Registration attributes whose change opens a new SCD2 version.
TRACKED = ("status", "party", "address_line", "zip5", "res_city", "first_name", "middle_name", "last_name",
           "precinct")
# Columns of a registration version besides the keys and validity (silver.registrations).
REGISTRATION_ATTRIBUTES = (
    "state", "state_voter_id", "registration_id", "county_id", "county_name", "status", "status_reason",
    "is_active", "first_name_raw", "middle_name_raw", "last_name_raw", "name_suffix_raw", "first_name",
    "middle_name", "last_name", "name_suffix", "res_address_raw", "address_line", "address_key",
    "house_number", "street_name", "unit_number", "address_status", "res_city", "zip5", "phone_raw", "phone",
    "email_raw", "email", "party", "race", "ethnicity", "gender", "birth_date", "birth_year",
    "registration_date", "precinct", "precinct_name", "cong_dist", "state_senate", "state_house",
    "municipality", "confidential",
)


def zip5(col: Column) -> Column:
    """The 5-digit ZIP code of a ZIP or ZIP+4 value (``"27517.0"`` → ``27517``); null otherwise."""
    digits = F.regexp_replace(F.regexp_replace(col, r"\.0+$", ""), r"[^0-9]", "")
    return F.when(F.length(digits) >= 5, F.substring(digits, 1, 5))


def registration_key(state: Column, registration_id: Column) -> Column:
    """The cross-state registration key, ``<STATE>:<registration id>``."""
    return F.concat_ws(":", state, registration_id)


def _registration_address(voters: DataFrame) -> DataFrame:
    """The voter records with the address text registrations parse (``_address_raw``: both lines)."""
    return voters.select("*", F.concat_ws(" ", F.col("res_address1"), F.col("res_address2")).alias("_address_raw"))


def address_texts(voters: DataFrame, contacts: DataFrame, digital: DataFrame) -> DataFrame:
    """Every distinct address text :func:`registration_snapshots`, :func:`contact_records` and
    :func:`digital_records` parse, as :func:`votelake.transforms.address.parse_keys`.

    Args:
        voters: canonical ``voters`` records.
        contacts: canonical ``contacts`` records.
        digital: canonical ``digital`` records.

    Returns:
        One column, ``parse_key``, one row per distinct folded text.
    """
    texts = (_registration_address(voters).select(F.col("_address_raw").alias("_text"))
             .unionByName(contacts.select(F.col("res_address1").alias("_text")))
             .unionByName(digital.select(F.col("res_address1").alias("_text"))))
    return parse_keys(texts, "_text")


def registration_snapshots(voters: DataFrame, state: str, parses: DataFrame | None = None) -> DataFrame:
    """Standardize canonical voter records: one row per registration per snapshot.

    Names are cleaned (a generational suffix stored in the last name moves to
    the suffix), addresses parsed and normalized, phones put in E.164 and
    e-mails lower-cased; every raw value is kept beside its clean one.

    Args:
        voters: canonical ``voters`` records (:func:`canonicalize.canonical_records`),
            possibly of several loads and sources.
        state: the two-letter state code.
        parses: stored address parses holding every text of :func:`address_texts`
            (None: each distinct address is parsed here).

    Returns:
        ``registration_key``, ``snapshot_date``, ``_load_id`` and
        :data:`REGISTRATION_ATTRIBUTES`.
    """
    last, suffix_in_last = split_name_suffix(F.col("last_name"))
    parsed = standardize_addresses(_registration_address(voters), "_address_raw", out="_addr", parses=parses)
    a = lambda part: F.col(f"_addr.{part}")  # noqa: E731 - local shorthand
    return parsed.select(
        registration_key(F.lit(state), F.coalesce("registration_id", "state_voter_id")).alias("registration_key"),
        F.col("_snapshot_date").alias("snapshot_date"),
        "_load_id",
        F.lit(state).alias("state"),
        F.upper("state_voter_id").alias("state_voter_id"),
        F.coalesce("registration_id", "state_voter_id").alias("registration_id"),
        "county_id",
        clean_name(F.col("county_name")).alias("county_name"),
        "status",
        F.upper("status_reason").alias("status_reason"),
        F.coalesce(F.col("status").isin(*ACTIVE_STATUSES), F.lit(False)).alias("is_active"),
        F.col("first_name").alias("first_name_raw"),
        F.col("middle_name").alias("middle_name_raw"),
        F.col("last_name").alias("last_name_raw"),
        F.col("name_suffix").alias("name_suffix_raw"),
        clean_person_name(F.col("first_name")).alias("first_name"),
        clean_person_name(F.col("middle_name")).alias("middle_name"),
        last.alias("last_name"),
        F.coalesce(normalize_suffix(F.col("name_suffix")), suffix_in_last).alias("name_suffix"),
        F.when(F.trim("_address_raw") != "", F.col("_address_raw")).alias("res_address_raw"),
        a("address_line").alias("address_line"),
        a("address_key").alias("address_key"),
        a("house_number").alias("house_number"),
        a("street_name").alias("street_name"),
        a("unit_number").alias("unit_number"),
        a("parse_status").alias("address_status"),
        clean_name(F.col("res_city")).alias("res_city"),
        zip5(F.col("res_zip")).alias("zip5"),
        F.col("phone").alias("phone_raw"),
        phone_e164(F.col("phone")).alias("phone"),
        F.col("email").alias("email_raw"),
        clean_email(F.col("email")).alias("email"),
        "party",
        "race",
        "ethnicity",
        "gender",
        "birth_date",
        F.coalesce(F.col("birth_year"), F.year("birth_date")).alias("birth_year"),
        "registration_date",
        F.upper("precinct").alias("precinct"),
        clean_name(F.col("precinct_name")).alias("precinct_name"),
        _district(F.col("cong_dist")).alias("cong_dist"),
        _district(F.col("state_senate")).alias("state_senate"),
        _district(F.col("state_house")).alias("state_house"),
        F.upper("municipality").alias("municipality"),
        (F.col("confidential") == "Y").alias("confidential"),
    )


def _district(col: Column) -> Column:
    """A district number without float noise (``"6.0"`` → ``"6"``)."""
    return F.regexp_replace(F.upper(F.trim(col)), r"\.0+$", "")


def registration_history(snapshots: DataFrame) -> DataFrame:
    """Registrations as slowly changing dimension, type 2.

    Each registration's successive snapshots are compared on the
    :data:`TRACKED` attributes; a change, or a registration reappearing after
    being absent from a snapshot, opens a new version. A version's other
    attributes are those of its latest snapshot. A version ends (``valid_to``,
    exclusive) at the first snapshot that changed it or no longer lists it;
    ``is_current`` marks versions listed in the newest snapshot.

    Args:
        snapshots: :func:`registration_snapshots` of every load; a snapshot
            date loaded twice counts once (the latest load wins).

    Returns:
        ``registration_key, version, valid_from, valid_to, is_current,
        record_hash``, :data:`REGISTRATION_ATTRIBUTES` and ``snapshots`` (how
        many snapshots the version spans).
    """
    rows = newest_load(snapshots, "registration_key", "snapshot_date")
    ordinal, following, last_idx = _snapshot_ordinals(rows)
    record_hash = _record_hash()
    by_reg = Window.partitionBy("registration_key").orderBy("snapshot_date")
    stamped = rows.join(F.broadcast(ordinal), on="snapshot_date", how="inner").select(
        "*", record_hash.alias("record_hash"))
    changes = stamped.select(
        "*",
        (F.coalesce(F.lag("record_hash").over(by_reg) != F.col("record_hash"), F.lit(True))
         | (F.lag("_idx").over(by_reg) != F.col("_idx") - 1)).cast("int").alias("_change"),
    )
    versioned = changes.select("*", F.sum("_change").over(by_reg).alias("version"))
    latest = F.max_by(F.struct(*REGISTRATION_ATTRIBUTES), "snapshot_date")
    spans = versioned.groupBy("registration_key", "version").agg(
        F.min("snapshot_date").alias("valid_from"),
        F.max("_idx").alias("_end_idx"),
        F.count("*").cast("int").alias("snapshots"),
        F.first("record_hash").alias("record_hash"),
        latest.alias("_v"),
    )
    closed = (spans.join(F.broadcast(following), on="_end_idx", how="left")
              .crossJoin(F.broadcast(last_idx)))
    return closed.select(
        "registration_key",
        F.col("version").cast("int").alias("version"),
        "valid_from",
        "valid_to",
        (F.col("_end_idx") == F.col("_last")).alias("is_current"),
        "record_hash",
        *[F.col(f"_v.{c}").alias(c) for c in REGISTRATION_ATTRIBUTES],
        "snapshots",
    )


# The columns of a registration version (registration_history's output).
VERSION_COLUMNS = ("registration_key", "version", "valid_from", "valid_to", "is_current", "record_hash",
                   *REGISTRATION_ATTRIBUTES, "snapshots")


def _record_hash() -> Column:
    return F.sha2(F.concat_ws("|", *[F.coalesce(F.col(c).cast("string"), F.lit("∅")) for c in TRACKED]), 256)


def _snapshot_ordinals(rows: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The snapshot dates of ``rows`` numbered from 1 (``snapshot_date, _idx``), each ordinal's following date
    (``_end_idx, valid_to``: the date after ordinal ``_end_idx``), and the last ordinal (``_last``, one row).

    A date's ordinal counts the dates on or before it: a join of the handful of
    distinct dates with themselves, where a numbering window would have no
    partition to run in.
    """
    dates = rows.select("snapshot_date").distinct()
    on_or_before = F.col("_earlier") <= F.col("snapshot_date")
    ordinal = (dates.join(dates.select(F.col("snapshot_date").alias("_earlier")), on_or_before, how="inner")
               .groupBy("snapshot_date").agg(F.count("*").cast("int").alias("_idx")))
    following = ordinal.select((F.col("_idx") - 1).alias("_end_idx"), F.col("snapshot_date").alias("valid_to"))
    return ordinal, following, ordinal.agg(F.max("_idx").alias("_last"))


def extend_registration_history(previous: DataFrame, snapshots: DataFrame, through: dt.date) -> DataFrame:
    """:func:`registration_history` of every snapshot, from the history through ``through`` and the newer snapshots.

    Equal to :func:`registration_history` of all the snapshots: a version
    current at ``through`` continues while the newer snapshots list the
    registration unchanged; a change, or a registration back after being
    absent, opens the version after its latest one. Versions closed before
    ``through`` are kept as they are. Only the newer snapshots are read.

    Args:
        previous: :func:`registration_history` of the snapshots through ``through``
            (the columns of :data:`VERSION_COLUMNS`; others are ignored).
        snapshots: :func:`registration_snapshots` of snapshots dated after ``through`` only.
        through: the newest snapshot date ``previous`` covers.

    Returns:
        The versions, in :data:`VERSION_COLUMNS`.
    """
    rows = newest_load(snapshots, "registration_key", "snapshot_date")
    # ``through`` is ordinal 0, the newer snapshots 1, 2, ...
    ordinal, following, last_idx = _snapshot_ordinals(rows)
    versions = previous.select(*VERSION_COLUMNS)
    newest = versions.groupBy("registration_key").agg(F.max("version").alias("_base"))
    open_now = F.col("is_current")
    # Each open version enters as a row at ``through`` carrying its span so far.
    seeds = versions.where(open_now).select(
        "registration_key", F.lit(through).cast("date").alias("snapshot_date"), F.lit(0).alias("_idx"),
        "record_hash", *REGISTRATION_ATTRIBUTES, F.col("valid_from").alias("_from"),
        F.col("snapshots").alias("_count"))
    fresh = rows.join(F.broadcast(ordinal), on="snapshot_date", how="inner").select(
        "registration_key", "snapshot_date", "_idx", _record_hash().alias("record_hash"), *REGISTRATION_ATTRIBUTES,
        F.col("snapshot_date").alias("_from"), F.lit(1).alias("_count"))
    by_reg = Window.partitionBy("registration_key").orderBy("_idx")
    changed = ((F.col("_idx") > 0) & (F.coalesce(F.lag("record_hash").over(by_reg) != F.col("record_hash"), F.lit(True))
                                      | (F.lag("_idx").over(by_reg) != F.col("_idx") - 1))).cast("int")
    stamped = (seeds.unionByName(fresh).join(newest, on="registration_key", how="left")
               .select("*", changed.alias("_change")))
    versioned = stamped.select(
        "*", (F.coalesce(F.col("_base"), F.lit(0)) + F.sum("_change").over(by_reg)).alias("version"))
    spans = versioned.groupBy("registration_key", "version").agg(
        F.min("_from").alias("valid_from"),
        F.max("_idx").alias("_end_idx"),
        F.sum("_count").cast("int").alias("snapshots"),
        F.first("record_hash").alias("record_hash"),
        F.max_by(F.struct(*REGISTRATION_ATTRIBUTES), "_idx").alias("_v"),
    )
    extended = (spans.join(F.broadcast(following), on="_end_idx", how="left").crossJoin(F.broadcast(last_idx))
                .select("registration_key", F.col("version").cast("int").alias("version"), "valid_from", "valid_to",
                        (F.col("_end_idx") == F.col("_last")).alias("is_current"), "record_hash",
                        *[F.col(f"_v.{c}").alias(c) for c in REGISTRATION_ATTRIBUTES], "snapshots"))
    return versions.where(~open_now).unionByName(extended)


def representatives(current: DataFrame) -> DataFrame:
    """Each person's representative current registration, with the count of all of them.

    The representative is the active registration registered most recently
    (ties: the smallest registration key).

    Args:
        current: current versions of ``silver.registrations`` (with ``person_id``).

    Returns:
        One row per person: the registration's columns plus ``registrations``,
        ``first_registered`` (the earliest registration date of any of them) and
        ``state_voter_ids`` (the sorted ids of its active registrations; the
        representative's id when none is active).
    """
    best = Window.partitionBy("person_id").orderBy(
        F.col("is_active").desc(), F.col("registration_date").desc_nulls_last(), "registration_key")
    counts = current.groupBy("person_id").agg(
        F.count("*").cast("int").alias("registrations"),
        F.min("registration_date").alias("first_registered"),
        # Every active statewide id the person holds, so that each answers for
        # the person downstream (a merged duplicate keeps its own id).
        F.array_sort(F.collect_set(F.when(F.col("is_active"), F.col("state_voter_id")))).alias("_active_ids"),
    )
    chosen = current.select("*", F.row_number().over(best).alias("_n")).where(F.col("_n") == 1).drop("_n")
    # A person with no active registration answers for its representative's id.
    return chosen.join(counts, on="person_id", how="inner").select(
        "*", F.when(F.size("_active_ids") > 0, F.col("_active_ids"))
        .otherwise(F.array("state_voter_id")).alias("state_voter_ids")).drop("_active_ids")


def housing(reps: DataFrame) -> DataFrame:
    """The address of each person, in the shape the household functions take."""
    return reps.select("person_id", "state", "address_key", "unit_number", "zip5",
                       F.col("res_city").alias("city"), F.col("address_status").alias("parse_status"))


def persons(reps: DataFrame, person_households: DataFrame) -> DataFrame:
    """One row per person.

    Args:
        reps: :func:`representatives`.
        person_households: ``person_id, household_id``.

    Returns:
        DataFrame in the ``silver.persons`` schema.
    """
    return reps.join(person_households, on="person_id", how="left").select(
        "person_id", "state", "state_voter_id", "state_voter_ids", "registration_key", "registrations", "county_id",
        "county_name",
        "status", "is_active", "first_name", "middle_name", "last_name", "name_suffix", "address_line",
        "address_key", "unit_number", "res_city", "zip5", "phone", "email", "party", "race", "ethnicity",
        "gender", "birth_date", "birth_year", "registration_date", "first_registered", "precinct",
        "cong_dist", "state_senate", "state_house", "municipality", "household_id",
        F.col("valid_from").alias("listed_since"),
    )


def voter_id_owners(voter_ids: DataFrame) -> DataFrame:
    """The person each state voter id belongs to, for exact-key linking.

    Args:
        voter_ids: ``state_voter_id, person_id`` of every registration.

    Returns:
        ``_svid`` (the upper-cased voter id) and ``person_id``, one row per
        voter id (the smallest person id should two persons carry it).
    """
    return voter_ids.groupBy(F.upper("state_voter_id").alias("_svid")).agg(F.min("person_id").alias("person_id"))


def votes(history: DataFrame, voter_ids: DataFrame, state: str) -> tuple[DataFrame, DataFrame]:
    """Key vote-history records to persons; keep counted votes, one per person per election.

    Args:
        history: canonical ``vote_history`` records.
        voter_ids: ``state_voter_id, person_id`` of every registration.
        state: the two-letter state code.

    Returns:
        ``(votes, orphans)``: votes in the ``silver.vote_history`` schema, and
        the counted votes whose voter id is in no registration (reported by
        the build job, never silently dropped).
    """
    counted = history.where(
        F.col("election_date").isNotNull()
        & ~F.coalesce(F.col("voting_method").isin(*NOT_A_VOTE), F.lit(False))
    ).select("*", F.upper("state_voter_id").alias("_svid"))
    keyed = counted.join(voter_id_owners(voter_ids), on="_svid", how="left")
    out = keyed.where(F.col("person_id").isNotNull()).select(
        "person_id",
        F.lit(state).alias("state"),
        F.col("_svid").alias("state_voter_id"),
        "election_date",
        F.coalesce("election_type", F.lit("OTHER")).alias("election_type"),
        "voting_method",
        "voted_party",
        "county_id",
        F.upper("precinct").alias("precinct"),
    ).dropDuplicates(["person_id", "election_date"])
    return out, keyed.where(F.col("person_id").isNull())


def contact_records(contacts: DataFrame, state: str, parses: DataFrame | None = None) -> DataFrame:
    """Standardize canonical contact records for linking (names, address, phone, e-mail).

    Args:
        contacts: canonical ``contacts`` records.
        state: the state whose voter ids the export quotes.
        parses: stored address parses (see :func:`registration_snapshots`).

    Returns:
        The contact columns plus the linking columns ``record_id,
        claimed_state_voter_id, first_name, last_name, address_key, zip5,
        phone, email``.
    """
    return _linking_columns(contacts, "contact_id", F.upper("state_voter_id"), parses,
                            "channel", "attempted_at", "result", "survey_question", "support_id", "program",
                            "_load_id")


# What record linkage reads from a contact or digital record.
RECORD_LINK_COLUMNS = ("record_id", "claimed_state_voter_id", "first_name", "last_name", "address_key", "zip5",
                       "phone", "email")


def _linking_columns(records: DataFrame, id_column: str, claimed_voter_id: Column, parses: DataFrame | None,
                     *keep: Column | str) -> DataFrame:
    """Standardize canonical contact or digital records into the linking columns.

    Args:
        records: canonical records with ``first_name, last_name, res_address1,
            res_zip, phone, email``.
        id_column: the record's id column (becomes ``record_id``).
        claimed_voter_id: the voter id the record claims (null when none).
        parses: stored address parses, or None.
        *keep: further columns to carry through.

    Returns:
        :data:`RECORD_LINK_COLUMNS` followed by ``keep``.
    """
    parsed = standardize_addresses(records, "res_address1", out="_addr", parses=parses)
    return parsed.select(
        F.col(id_column).alias("record_id"),
        claimed_voter_id.alias("claimed_state_voter_id"),
        clean_person_name(F.col("first_name")).alias("first_name"),
        split_name_suffix(F.col("last_name"))[0].alias("last_name"),
        F.col("_addr.address_key").alias("address_key"),
        zip5(F.col("res_zip")).alias("zip5"),
        phone_e164(F.col("phone")).alias("phone"),
        clean_email(F.col("email")).alias("email"),
        *keep,
    )


def digital_records(digital: DataFrame, parses: DataFrame | None = None) -> DataFrame:
    """Standardize canonical digital events for linking (profile name, address, phone, e-mail).

    Args:
        digital: canonical ``digital`` records.
        parses: stored address parses (see :func:`registration_snapshots`).

    Returns:
        The event columns plus the linking columns (``claimed_state_voter_id``
        null: platforms do not know voter ids).
    """
    return _linking_columns(digital, "event_id", F.lit(None).cast("string"), parses,
                            "channel", F.lower("event_type").alias("event_type"), "event_ts", "campaign",
                            "_load_id")


def newest_load(rows: DataFrame, *keys: str) -> DataFrame:
    """One row per key: the copy from the latest load (load ids sort by time).

    Args:
        rows: rows with ``_load_id`` and the key columns.
        *keys: the columns that identify a row.

    Returns:
        ``rows`` with one row per key.
    """
    newest = Window.partitionBy(*keys).orderBy(F.desc("_load_id"))
    return rows.select("*", F.row_number().over(newest).alias("_n")).where(F.col("_n") == 1).drop("_n")


def contacts(records: DataFrame, links: DataFrame) -> DataFrame:
    """Contact attempts keyed to persons.

    Args:
        records: :func:`contact_records` of every load.
        links: ``record_id, person_id, match_probability, matched_by`` from linkage.

    Returns:
        DataFrame in the ``silver.contacts`` schema; unmatched contacts keep a
        null ``person_id`` so that nothing is lost.
    """
    valid_support = F.col("support_id").between(1, 5)
    # A record re-exported in a later delivery: the latest load's copy wins.
    return newest_load(records, "record_id").join(links, on="record_id", how="left").select(
        F.col("record_id").alias("contact_id"),
        "person_id",
        F.coalesce("matched_by", F.lit("none")).alias("matched_by"),
        "match_probability",
        "channel",
        "attempted_at",
        F.upper("result").alias("result_code"),
        F.coalesce(F.upper("result").isin(*CONTACT_MADE_RESULTS), F.lit(False)).alias("is_contact"),
        F.upper("survey_question").alias("survey_question"),
        F.when(valid_support, F.col("support_id")).alias("support_id"),
        "program",
    )


def experiment_assignments(records: DataFrame, voter_ids: DataFrame) -> DataFrame:
    """Experiment assignments keyed to persons by the exact voter id.

    Args:
        records: canonical ``experiments`` records of every load (a voter
            re-exported in a later delivery: the latest load's copy wins).
        voter_ids: ``state_voter_id, person_id`` of every registration.

    Returns:
        DataFrame in the ``silver.experiment_assignments`` schema; assignments
        whose voter id is in no registration keep a null ``person_id``.
    """
    keyed = newest_load(records.select("*", F.upper("state_voter_id").alias("_svid")), "experiment_id", "_svid")
    return keyed.join(voter_id_owners(voter_ids), on="_svid", how="left").select(
        "person_id",
        F.col("_svid").alias("state_voter_id"),
        "experiment_id",
        "arm",
        "assigned_at",
    )


def digital_events(records: DataFrame, links: DataFrame) -> DataFrame:
    """Digital events keyed to persons.

    Args:
        records: :func:`digital_records` of every load.
        links: ``record_id, person_id, match_probability, matched_by`` from linkage.

    Returns:
        DataFrame in the ``silver.digital_events`` schema.
    """
    return newest_load(records, "record_id").join(links, on="record_id", how="left").select(
        F.col("record_id").alias("event_id"),
        "person_id",
        F.coalesce("matched_by", F.lit("none")).alias("matched_by"),
        "match_probability",
        "channel",
        "event_type",
        "event_ts",
        "campaign",
    )

