"""Column-level standardization: names, phones, emails, dates, codes.

Each function takes and returns a Column, so transforms compose them in one
``select``.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def blank_to_null(col: Column) -> Column:
    """Trim; empty strings become null.

    Args:
        col: a string column.

    Returns:
        The trimmed value, or null when nothing is left.
    """
    trimmed = F.trim(col)
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def clean_name(col: Column) -> Column:
    """Upper-case, trim and collapse inner whitespace (``"  mary  ann "`` → ``"MARY ANN"``).

    Args:
        col: a name column.

    Returns:
        The standardized name, null when blank.
    """
    return blank_to_null(F.regexp_replace(F.upper(col), r"\s+", " "))


def clean_code(col: Column) -> Column:
    """Upper-case and trim a code value (party, race, status); blank is null.

    Args:
        col: a code column.

    Returns:
        The code.
    """
    return blank_to_null(F.upper(col))


def phone_e164(col: Column) -> Column:
    """US phone number in E.164 (``+19195550142``); null when not 10 digits.

    Args:
        col: a phone column in any common format.

    Returns:
        The E.164 string or null.
    """
    digits = F.regexp_replace(col, r"[^0-9]", "")
    national = F.when(
        (F.length(digits) == 11) & digits.startswith("1"), F.substring(digits, 2, 10)
    ).otherwise(digits)
    return F.when(F.length(national) == 10, F.concat(F.lit("+1"), national))


def clean_email(col: Column) -> Column:
    """Lower-case and trim an e-mail address; null unless it looks like one.

    Args:
        col: an e-mail column.

    Returns:
        The e-mail or null.
    """
    value = F.lower(F.trim(col))
    return F.when(value.rlike(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), value)


def parse_date(col: Column, fmt: str) -> Column:
    """Parse a date string; unparseable or blank values become null.

    Args:
        col: the date string column.
        fmt: a Spark datetime pattern such as ``MM/dd/yyyy``.

    Returns:
        A DateType column.
    """
    return F.try_to_date(blank_to_null(col), fmt)


def parse_int(col: Column) -> Column:
    """Parse an integer that may be written as a float (``"6.0"``); junk is null.

    Args:
        col: the string column.

    Returns:
        An IntegerType column.
    """
    return blank_to_null(col).try_cast("double").try_cast("int")
