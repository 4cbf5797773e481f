"""Bronze → silver: parse, standardize and key every source to voters.

All functions are pure ``DataFrame -> DataFrame``; the ``select`` at the end of
each is its output contract (the matching silver table in ``conf/tables.yaml``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from votelake.transforms.standardize import (
    blank_to_null,
    clean_code,
    clean_email,
    clean_name,
    parse_date,
    parse_int,
    phone_e164,
)

ACTIVE_STATUSES = ("A", "S")  # NC: active, and temporary (military / overseas)
CONTACT_MADE_RESULTS = ("CANVASSED", "REPLIED")


def latest_load(bronze: DataFrame) -> DataFrame:
    """Keep only the rows of the most recent load (load ids sort by time).

    Args:
        bronze: a bronze table with ``_load_id``.

    Returns:
        The rows whose ``_load_id`` is the greatest.
    """
    newest = bronze.agg(F.max("_load_id").alias("_load_id"))
    return bronze.join(F.broadcast(newest), on="_load_id", how="inner")


def voter_key(state: Column, state_voter_id: Column) -> Column:
    """The cross-state voter key, ``<STATE>:<state voter id>``."""
    return F.concat_ws(":", state, state_voter_id)


def voters(bronze_ncvoter: DataFrame, state: str, date_format: str) -> DataFrame:
    """Standardize NC voter-file rows into one row per state voter id.

    A voter who moved between counties appears once per county registration
    under the same NCID; the active, most recent registration wins.

    Args:
        bronze_ncvoter: rows of one load in the ``nc_ncvoter`` layout.
        state: two-letter state code of the file.
        date_format: the layout's date pattern (``MM/dd/yyyy``).

    Returns:
        DataFrame in the ``silver.voters`` schema.
    """
    status = clean_code(F.col("status_cd"))
    ncid = clean_code(F.col("ncid"))
    parsed = bronze_ncvoter.where(ncid.isNotNull()).select(
        voter_key(F.lit(state), ncid).alias("voter_key"),
        F.lit(state).alias("state"),
        ncid.alias("state_voter_id"),
        parse_int(F.col("county_id")).alias("county_id"),
        clean_name(F.col("county_desc")).alias("county_name"),
        blank_to_null(F.col("voter_reg_num")).alias("voter_reg_num"),
        status.alias("status_cd"),
        clean_code(F.col("reason_cd")).alias("status_reason_cd"),
        F.coalesce(status.isin(*ACTIVE_STATUSES), F.lit(False)).alias("is_active"),
        clean_name(F.col("first_name")).alias("first_name"),
        clean_name(F.col("middle_name")).alias("middle_name"),
        clean_name(F.col("last_name")).alias("last_name"),
        clean_name(F.col("name_suffix_lbl")).alias("name_suffix"),
        clean_name(F.col("res_street_address")).alias("res_street_address"),
        clean_name(F.col("res_city_desc")).alias("res_city"),
        F.substring(F.regexp_replace(F.col("zip_code"), r"[^0-9]", ""), 1, 5).alias("zip5"),
        phone_e164(F.col("full_phone_number")).alias("phone"),
        clean_code(F.col("party_cd")).alias("party_cd"),
        clean_code(F.col("race_code")).alias("race_code"),
        clean_code(F.col("ethnic_code")).alias("ethnic_code"),
        clean_code(F.col("gender_code")).alias("gender_code"),
        parse_int(F.col("birth_year")).alias("birth_year"),
        clean_code(F.col("birth_state")).alias("birth_state"),
        parse_date(F.col("registr_dt"), date_format).alias("registration_date"),
        clean_code(F.col("precinct_abbrv")).alias("precinct"),
        clean_code(F.col("cong_dist_abbrv")).alias("cong_dist"),
        clean_code(F.col("nc_senate_abbrv")).alias("nc_senate"),
        clean_code(F.col("nc_house_abbrv")).alias("nc_house"),
        clean_code(F.col("municipality_abbrv")).alias("municipality"),
        F.to_date(F.col("_loaded_at")).alias("snapshot_date"),
    )
    current_first = Window.partitionBy("voter_key").orderBy(
        F.col("is_active").desc(), F.col("registration_date").desc_nulls_last(), F.col("county_id")
    )
    return (
        parsed.withColumn("_rank", F.row_number().over(current_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )


def election_type(description: Column) -> Column:
    """Classify an NC election description (``"11/05/2024 GENERAL"``).

    Municipal generals are named as such, so ``MUNICIPAL`` is tested first.
    """
    desc = F.upper(description)
    return (
        F.when(desc.contains("MUNICIPAL"), "MUNICIPAL")
        .when(desc.contains("PRIMARY"), "PRIMARY")
        .when(desc.contains("GENERAL"), "GENERAL")
        .otherwise("OTHER")
    )


def vote_history(bronze_ncvhis: DataFrame, state: str, date_format: str) -> DataFrame:
    """Standardize NC vote-history rows; one row per voter per election.

    Args:
        bronze_ncvhis: rows of one load in the ``nc_ncvhis`` layout.
        state: two-letter state code.
        date_format: pattern of ``election_lbl``.

    Returns:
        DataFrame in the ``silver.vote_history`` schema.
    """
    ncid = clean_code(F.col("ncid"))
    election_date = parse_date(F.col("election_lbl"), date_format)
    return (
        bronze_ncvhis.where(ncid.isNotNull() & election_date.isNotNull())
        .select(
            voter_key(F.lit(state), ncid).alias("voter_key"),
            F.lit(state).alias("state"),
            ncid.alias("state_voter_id"),
            election_date.alias("election_date"),
            election_type(F.col("election_desc")).alias("election_type"),
            clean_code(F.col("voting_method")).alias("voting_method"),
            clean_code(F.col("voted_party_cd")).alias("voted_party_cd"),
            parse_int(F.col("county_id")).alias("county_id"),
            clean_code(F.col("pct_label")).alias("precinct"),
        )
        # A voter is recorded at most once per election; the file can repeat rows.
        .dropDuplicates(["voter_key", "election_date"])
    )


def unique_phone_owners(silver_voters: DataFrame) -> DataFrame:
    """Phones that belong to exactly one voter, for deterministic linking.

    Args:
        silver_voters: the ``silver.voters`` table.

    Returns:
        Columns ``phone`` and ``phone_voter_key``.
    """
    return (
        silver_voters.where(F.col("phone").isNotNull())
        .groupBy("phone")
        .agg(F.count("*").alias("_n"), F.first("voter_key").alias("phone_voter_key"))
        .where(F.col("_n") == 1)
        .select("phone", "phone_voter_key")
    )


def first_match(candidates: list[tuple[str, str]]) -> tuple[Column, Column]:
    """The first non-null candidate key, and the name of the rule that found it.

    Args:
        candidates: ``(key column, rule name)`` in order of trust.

    Returns:
        ``voter_key`` and ``matched_by`` (``"none"`` when no rule matched).
    """
    key = F.coalesce(*[F.col(c) for c, _ in candidates]).alias("voter_key")
    rule = F.lit("none")
    for column, name in reversed(candidates):
        rule = F.when(F.col(column).isNotNull(), name).otherwise(rule)
    return key, rule.alias("matched_by")


def contacts(bronze_contacts: DataFrame, silver_voters: DataFrame, state: str, ts_format: str) -> DataFrame:
    """Key contact attempts to voters: by state voter id, else by a unique phone.

    Args:
        bronze_contacts: contact export rows (``contacts`` layout).
        silver_voters: the ``silver.voters`` table.
        state: two-letter state code of the voter ids.
        ts_format: pattern of ``attempted_at``.

    Returns:
        DataFrame in the ``silver.contacts`` schema; unmatched rows keep a null
        ``voter_key`` so that nothing is lost.
    """
    known_ids = silver_voters.select(F.col("voter_key").alias("id_voter_key"))
    parsed = bronze_contacts.select(
        blank_to_null(F.col("contact_id")).alias("contact_id"),
        voter_key(F.lit(state), clean_code(F.col("state_voter_id"))).alias("claimed_key"),
        phone_e164(F.col("phone")).alias("phone"),
        clean_code(F.col("channel")).alias("channel"),
        F.try_to_timestamp(blank_to_null(F.col("attempted_at")), F.lit(ts_format)).alias("attempted_at"),
        clean_code(F.col("result_code")).alias("result_code"),
        clean_code(F.col("survey_question")).alias("survey_question"),
        parse_int(F.col("support_id")).alias("support_id"),
        blank_to_null(F.col("program")).alias("program"),
    ).where(F.col("contact_id").isNotNull() & F.col("attempted_at").isNotNull() & F.col("channel").isNotNull())
    linked = parsed.join(
        known_ids, parsed["claimed_key"] == known_ids["id_voter_key"], how="left"
    ).join(unique_phone_owners(silver_voters), on="phone", how="left")
    valid_support = F.col("support_id").between(1, 5)
    return linked.select(
        "contact_id",
        *first_match([("id_voter_key", "state_voter_id"), ("phone_voter_key", "phone")]),
        "channel",
        "attempted_at",
        "result_code",
        F.coalesce(F.col("result_code").isin(*CONTACT_MADE_RESULTS), F.lit(False)).alias("is_contact"),
        "survey_question",
        F.when(valid_support, F.col("support_id")).alias("support_id"),
        "program",
    ).dropDuplicates(["contact_id"])


def email_owners(bronze_contacts: DataFrame, silver_contacts: DataFrame) -> DataFrame:
    """E-mail addresses a campaign recorded for exactly one matched voter.

    Args:
        bronze_contacts: contact export rows (carry the e-mail as recorded).
        silver_contacts: the keyed contacts.

    Returns:
        Columns ``email`` and ``email_voter_key``.
    """
    recorded = bronze_contacts.select(
        blank_to_null(F.col("contact_id")).alias("contact_id"), clean_email(F.col("email")).alias("email")
    ).where(F.col("email").isNotNull())
    keyed = recorded.join(
        silver_contacts.where(F.col("voter_key").isNotNull()).select("contact_id", "voter_key"),
        on="contact_id",
        how="inner",
    )
    return (
        keyed.groupBy("email")
        .agg(F.countDistinct("voter_key").alias("_n"), F.first("voter_key").alias("email_voter_key"))
        .where(F.col("_n") == 1)
        .select("email", "email_voter_key")
    )


def digital_events(
    bronze_digital: DataFrame, silver_voters: DataFrame, emails: DataFrame, ts_format: str
) -> DataFrame:
    """Key digital events to voters by unique phone, else by a known e-mail.

    Args:
        bronze_digital: event rows (``digital`` layout).
        silver_voters: the ``silver.voters`` table.
        emails: output of :func:`email_owners`.
        ts_format: pattern of ``event_ts``.

    Returns:
        DataFrame in the ``silver.digital_events`` schema.
    """
    parsed = bronze_digital.select(
        blank_to_null(F.col("event_id")).alias("event_id"),
        phone_e164(F.col("phone")).alias("phone"),
        clean_email(F.col("email")).alias("email"),
        F.lower(blank_to_null(F.col("channel"))).alias("channel"),
        F.lower(blank_to_null(F.col("event_type"))).alias("event_type"),
        F.try_to_timestamp(blank_to_null(F.col("event_ts")), F.lit(ts_format)).alias("event_ts"),
        blank_to_null(F.col("campaign")).alias("campaign"),
    ).where(
        F.col("event_id").isNotNull()
        & F.col("event_ts").isNotNull()
        & F.col("channel").isNotNull()
        & F.col("event_type").isNotNull()
    )
    linked = parsed.join(unique_phone_owners(silver_voters), on="phone", how="left").join(
        emails, on="email", how="left"
    )
    return linked.select(
        "event_id",
        *first_match([("phone_voter_key", "phone"), ("email_voter_key", "email")]),
        "channel",
        "event_type",
        "event_ts",
        "campaign",
    ).dropDuplicates(["event_id"])
