"""Households: the people registered at the same standardized address and unit.

Input is one row per person with an address already standardized by
:func:`votelake.transforms.address.standardize_addresses` (``address_key`` and
``unit_number`` come from its struct). Different units of one building are
different households; people at the address without a unit form their own
household. People without a usable address get none.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.transforms.address import STATUS_FAILED

_SEP = "\u001f"  # ASCII unit separator: cannot occur in a cleaned address


def _fold(col: Column) -> Column:
    """Upper case, single spaces, trimmed; blank is null."""
    value = F.trim(F.regexp_replace(F.upper(col), r"\s+", " "))
    return F.when(value != "", value)


def household_unit(col: Column | str) -> Column:
    """Normalize a unit number for household keys (``" # 4b"`` → ``"4B"``); blank is null.

    Args:
        col: a unit-number column.

    Returns:
        The folded unit, without a leading ``#``.
    """
    return _fold(F.regexp_replace(F.upper(col), r"^\s*#\s*", ""))


def household_id(state: Column | str, zip5: Column | str, address_key: Column | str,
                 unit_number: Column | str) -> Column:
    """Stable household id: a hash of state, ZIP5, address key and unit.

    The inputs are folded (upper case, single spaces, trimmed) first, so the
    same address written in another case or spacing gets the same id. A
    missing unit hashes as the empty string, so the address without a unit is
    one household of its own.

    Args:
        state: two-letter state column.
        zip5: five-digit ZIP column (may be null).
        address_key: standardized address line without the unit.
        unit_number: the unit, null when there is none.

    Returns:
        32 hexadecimal characters (the first 128 bits of SHA-256), or null
        when ``address_key`` is null or blank.
    """
    key = _fold(address_key)
    parts = [_fold(state), _fold(zip5), key, household_unit(unit_number)]
    digest = F.sha2(F.concat_ws(_SEP, *[F.coalesce(p, F.lit("")) for p in parts]), 256)
    return F.when(key.isNotNull(), F.substring(digest, 1, 32))


def _keyed(persons: DataFrame) -> DataFrame:
    usable = F.lit(True)
    if "parse_status" in persons.columns:
        usable = F.coalesce(F.col("parse_status") != STATUS_FAILED, F.lit(True))
    hid = household_id("state", "zip5", "address_key", "unit_number")
    return persons.select(
        "person_id",
        F.when(usable, hid).alias("household_id"),
        _fold(F.col("state")).alias("state"),
        _fold(F.col("address_key")).alias("address_key"),
        household_unit("unit_number").alias("unit_number"),
        _fold(F.col("zip5")).alias("zip5"),
        _fold(F.col("city")).alias("city"),
    )


def person_households(persons: DataFrame) -> DataFrame:
    """The household of every person.

    Args:
        persons: one row per person with ``person_id, state, address_key,
            unit_number, zip5, city``; an optional ``parse_status`` column
            (from the address struct) marks ``failed`` addresses as unusable.

    Returns:
        ``person_id, household_id``; ``household_id`` is null for a person
        whose address is null, blank or failed to parse.
    """
    return _keyed(persons).select("person_id", "household_id")


def households(persons: DataFrame) -> DataFrame:
    """One row per household: people at the same address and unit.

    Args:
        persons: as for :func:`person_households`.

    Returns:
        ``household_id string, state, address_key, unit_number, zip5, city,
        size int`` (distinct persons in the household). ``city`` is the most
        frequent city among its members (ties: the smallest). People without
        a usable address are in no household.
    """
    keyed = _keyed(persons).where(F.col("household_id").isNotNull())
    return (
        keyed.groupBy("household_id", "state", "address_key", "unit_number", "zip5")
        .agg(F.mode("city", deterministic=True).alias("city"),
             F.count_distinct("person_id").cast("int").alias("size"))
        .select("household_id", "state", "address_key", "unit_number", "zip5", "city", "size")
    )
