"""Input contracts of identity resolution, and adapters from the landing layouts.

Resolution works on three shapes, each declared here as a Spark schema:

* :data:`REGISTRATION_SCHEMA`: one row per voter registration;
* :data:`RECORD_SCHEMA`: one row per contact-history or digital record to link;
* :data:`PERSON_SCHEMA`: the resolved persons to link records to, one row per
  registration of a person.

The adapters turn raw ``ncvoter`` / ``contacts`` / ``digital`` rows (strings, as
landed) into those shapes with the shared column standardizers. Their address
handling is deliberately simple (upper case, collapsed whitespace, an
``APT n`` suffix split off into ``unit``); a full address standardizer can
replace :func:`split_unit` without changing anything downstream.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from votelake.transforms.silver import zip5
from votelake.transforms.standardize import (
    blank_to_null,
    clean_code,
    clean_email,
    clean_name,
    parse_int,
    phone_e164,
)

REGISTRATION_SCHEMA = T.StructType([
    T.StructField("registration_key", T.StringType(), False),
    T.StructField("state_voter_id", T.StringType(), True),
    T.StructField("first_name", T.StringType(), True),
    T.StructField("middle_name", T.StringType(), True),
    T.StructField("last_name", T.StringType(), True),
    T.StructField("name_suffix", T.StringType(), True),
    T.StructField("birth_year", T.IntegerType(), True),
    T.StructField("birth_date", T.DateType(), True),
    T.StructField("gender", T.StringType(), True),
    T.StructField("address_key", T.StringType(), True),
    T.StructField("unit", T.StringType(), True),
    T.StructField("city", T.StringType(), True),
    T.StructField("zip5", T.StringType(), True),
    T.StructField("phone", T.StringType(), True),
    T.StructField("email", T.StringType(), True),
])

RECORD_SCHEMA = T.StructType([
    T.StructField("record_id", T.StringType(), False),
    T.StructField("claimed_state_voter_id", T.StringType(), True),
    T.StructField("first_name", T.StringType(), True),
    T.StructField("last_name", T.StringType(), True),
    T.StructField("address_key", T.StringType(), True),
    T.StructField("zip5", T.StringType(), True),
    T.StructField("phone", T.StringType(), True),
    T.StructField("email", T.StringType(), True),
])

PERSON_SCHEMA = T.StructType([
    T.StructField("person_id", T.StringType(), False),
    T.StructField("state_voter_id", T.StringType(), True),
    T.StructField("first_name", T.StringType(), True),
    T.StructField("last_name", T.StringType(), True),
    T.StructField("address_key", T.StringType(), True),
    T.StructField("zip5", T.StringType(), True),
    T.StructField("phone", T.StringType(), True),
    T.StructField("email", T.StringType(), True),
])

# "<street line> APT <unit>" at the end of a cleaned street line.
_UNIT_PATTERN = r"^(.*\S)\s+(?:APT|UNIT|STE|#)\s*(\S+)$"


def split_unit(street: Column) -> tuple[Column, Column]:
    """Split a trailing unit (``APT 12``, ``UNIT 3``, ``STE 4``, ``# 5``) off a street line.

    Args:
        street: a street line already cleaned by :func:`clean_name` (upper case,
            single spaces).

    Returns:
        ``(address_key, unit)``: the street line without the unit, and the unit
        designator's value (null when the line has none).
    """
    has_unit = street.rlike(_UNIT_PATTERN)
    address_key = F.when(has_unit, F.regexp_extract(street, _UNIT_PATTERN, 1)).otherwise(street)
    unit = F.when(has_unit, F.regexp_extract(street, _UNIT_PATTERN, 2))
    return address_key, unit


def registration_key(state: str, county_id: Column, voter_reg_num: Column) -> Column:
    """The registration key ``<STATE>:<county id>-<registration number>``.

    Args:
        state: two-letter state code.
        county_id: the county id column (string or number).
        voter_reg_num: the county's registration number column.

    Returns:
        The key; null when either part is missing.
    """
    county = parse_int(county_id.cast("string")).cast("string")
    number = blank_to_null(voter_reg_num)
    return F.when(county.isNotNull() & number.isNotNull(),
                  F.concat(F.lit(f"{state}:"), county, F.lit("-"), number))


def ncvoter_registrations(ncvoter: DataFrame, state: str = "NC") -> DataFrame:
    """Registrations from rows in the NC ``ncvoter`` layout (all strings).

    Args:
        ncvoter: rows with at least ``county_id, voter_reg_num, ncid,
            first_name, middle_name, last_name, name_suffix_lbl, birth_year,
            gender_code, res_street_address, res_city_desc, zip_code,
            full_phone_number``.
        state: two-letter state code for the registration key.

    Returns:
        DataFrame in :data:`REGISTRATION_SCHEMA` (rows without a key dropped).
        NC publishes no birth date or e-mail, so those are null.
    """
    street = clean_name(F.col("res_street_address"))
    address_key, unit = split_unit(street)
    key = registration_key(state, F.col("county_id"), F.col("voter_reg_num"))
    return ncvoter.select(
        key.alias("registration_key"),
        clean_code(F.col("ncid")).alias("state_voter_id"),
        clean_name(F.col("first_name")).alias("first_name"),
        clean_name(F.col("middle_name")).alias("middle_name"),
        clean_name(F.col("last_name")).alias("last_name"),
        clean_name(F.col("name_suffix_lbl")).alias("name_suffix"),
        parse_int(F.col("birth_year")).alias("birth_year"),
        F.lit(None).cast("date").alias("birth_date"),
        clean_code(F.col("gender_code")).alias("gender"),
        address_key.alias("address_key"),
        unit.alias("unit"),
        clean_name(F.col("res_city_desc")).alias("city"),
        zip5(F.col("zip_code")).alias("zip5"),
        phone_e164(F.col("full_phone_number")).alias("phone"),
        F.lit(None).cast("string").alias("email"),
    ).where(F.col("registration_key").isNotNull())


def contact_records(contacts: DataFrame) -> DataFrame:
    """Records to link from rows in the ``contacts`` layout (all strings).

    Args:
        contacts: rows with ``contact_id, state_voter_id, first_name,
            last_name, address, zip, phone, email``.

    Returns:
        DataFrame in :data:`RECORD_SCHEMA`; the unit of the address is dropped
        (persons are compared on the street line).
    """
    address_key, _ = split_unit(clean_name(F.col("address")))
    return contacts.select(
        blank_to_null(F.col("contact_id")).alias("record_id"),
        clean_code(F.col("state_voter_id")).alias("claimed_state_voter_id"),
        clean_name(F.col("first_name")).alias("first_name"),
        clean_name(F.col("last_name")).alias("last_name"),
        address_key.alias("address_key"),
        zip5(F.col("zip")).alias("zip5"),
        phone_e164(F.col("phone")).alias("phone"),
        clean_email(F.col("email")).alias("email"),
    ).where(F.col("record_id").isNotNull())


def digital_records(digital: DataFrame) -> DataFrame:
    """Records to link from rows in the ``digital`` layout (e-mail/phone plus the supporter profile).

    Args:
        digital: rows with ``event_id, first_name, last_name, address, zip,
            phone, email``.

    Returns:
        DataFrame in :data:`RECORD_SCHEMA` (no claimed voter id: platforms do
        not know it).
    """
    return contact_records(digital.select(
        F.col("event_id").alias("contact_id"), F.lit(None).cast("string").alias("state_voter_id"),
        "first_name", "last_name", "address", "zip", "phone", "email"))
