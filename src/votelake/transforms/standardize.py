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


# Generational suffixes: every spelling seen in voter files → the canonical form.
NAME_SUFFIXES: dict[str, str] = {
    "JR": "JR", "JUNIOR": "JR", "JNR": "JR",
    "SR": "SR", "SENIOR": "SR", "SNR": "SR",
    "II": "II", "2ND": "II", "2D": "II",
    "III": "III", "3RD": "III", "3D": "III",
    "IV": "IV", "4TH": "IV",
    "V": "V", "5TH": "V",
}
"""Suffix spelling (after :func:`clean_person_name`) → canonical generational suffix."""


def clean_person_name(col: Column | str) -> Column:
    """Upper-case a person's name, keep letters, digits, hyphens and apostrophes.

    Periods vanish (``"J.R."`` → ``"JR"``), other punctuation becomes a space,
    typographic apostrophes become ``'``, spaces around a hyphen are dropped
    (``"SMITH - JONES"`` → ``"SMITH-JONES"``) and whitespace is collapsed.
    Letters outside A-Z (``Ñ``, ``É``) are kept.

    Args:
        col: a name column (first, middle, last or suffix).

    Returns:
        The cleaned name, null when nothing is left.
    """
    value = F.upper(col)
    value = F.regexp_replace(value, "[\u2018\u2019`\u00b4]", "'")
    value = F.regexp_replace(value, r"\.", "")
    value = F.regexp_replace(value, r"[^\p{L}\p{N}\s'-]", " ")
    value = F.regexp_replace(value, r"\s*-\s*", "-")
    value = F.regexp_replace(value, r"^[-']+|[-']+$", "")
    return blank_to_null(F.regexp_replace(value, r"\s+", " "))


def _suffix_map() -> Column:
    return F.create_map(*[F.lit(x) for pair in NAME_SUFFIXES.items() for x in pair])


def normalize_suffix(col: Column | str) -> Column:
    """Canonical generational suffix (``"Jr."``, ``"JUNIOR"`` → ``JR``; ``"2nd"`` → ``II``).

    Args:
        col: a name-suffix column as the state published it.

    Returns:
        One of ``JR, SR, II, III, IV, V`` when the value is a generational
        suffix; any other non-blank value cleaned by :func:`clean_person_name`
        (``"ESQ"``, ``"MD"``); null when blank.
    """
    cleaned = F.regexp_replace(clean_person_name(col), " ", "")
    return F.coalesce(F.try_element_at(_suffix_map(), cleaned), clean_person_name(col))


def split_name_suffix(col: Column | str, allow_v: bool = True) -> tuple[Column, Column]:
    """Split a trailing generational suffix off a name (``"Smith, Jr."`` → ``SMITH``, ``JR``).

    States sometimes store the suffix inside the last (or first) name. The
    name is cleaned with :func:`clean_person_name`; a final word that is a
    generational suffix (any spelling in :data:`NAME_SUFFIXES`) is removed from
    the name and returned in canonical form. A name that is only a suffix is
    left alone.

    Args:
        col: a last- or first-name column.
        allow_v: also split a final ``V`` (fifth). Pass False for first-name
            columns, where a trailing ``V`` is far more often a middle initial.

    Returns:
        ``(name, suffix)``: the cleaned name without the suffix, and the
        canonical suffix or null when there was none.
    """
    cleaned = clean_person_name(col)
    words = sorted((k for k in NAME_SUFFIXES if allow_v or NAME_SUFFIXES[k] != "V"), key=len, reverse=True)
    pattern = r"^(.*\S)\s+(" + "|".join(words) + r")$"
    found = F.regexp_extract(cleaned, pattern, 2)
    has_suffix = F.coalesce(found != "", F.lit(False))
    name = F.when(has_suffix, F.regexp_extract(cleaned, pattern, 1)).otherwise(cleaned)
    suffix = F.when(has_suffix, F.element_at(_suffix_map(), found))
    return name, suffix
