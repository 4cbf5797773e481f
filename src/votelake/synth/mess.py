"""Data-entry mess as Column expressions: typos, case, whitespace, phone formats.

Each function takes the uniforms it needs as arguments, so the caller decides
the keys (and thus which rows get messed) and the result stays deterministic.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def typo(s: Column, u_apply: Column, u_pos: Column, u_kind: Column, rate: float) -> Column:
    """Drop one letter or swap two adjacent letters, on a fraction of rows.

    Args:
        s: the string Column.
        u_apply: uniform deciding whether this row gets a typo.
        u_pos: uniform choosing the position.
        u_kind: uniform choosing drop (< 0.5) or swap.
        rate: fraction of rows to alter.

    Returns:
        The (possibly) altered string; strings of 3 characters or fewer are kept
        as they are, since a typo there would make them unrecognisable.
    """
    n = F.length(s)
    pos = (F.lit(1) + F.floor(u_pos * F.greatest(n - F.lit(1), F.lit(1)))).cast("int")
    one = F.lit(1)
    drop = F.concat(s.substr(one, pos - one), s.substr(pos + one, n))
    swap = F.concat(s.substr(one, pos - one), s.substr(pos + one, one), s.substr(pos, one),
                    s.substr(pos + F.lit(2), n))
    return F.when((u_apply < rate) & (n > 3), F.when(u_kind < 0.5, drop).otherwise(swap)).otherwise(s)


def vary_case(s: Column, u: Column, title: float, lower: float) -> Column:
    """Turn an upper-case string to Title Case or lower case on a fraction of rows.

    Args:
        s: the string Column.
        u: uniform deciding the variant.
        title: fraction made Title Case.
        lower: fraction made lower case.

    Returns:
        The string, case-varied.
    """
    return (F.when(u < title, F.initcap(s))
            .when(u < title + lower, F.lower(s))
            .otherwise(s))


def vary_space(s: Column, u: Column, rate: float) -> Column:
    """Add stray whitespace (doubled inner spaces or trailing blanks) on a fraction of rows.

    Args:
        s: the string Column.
        u: uniform deciding the variant.
        rate: fraction of rows altered.

    Returns:
        The string with whitespace variation.
    """
    return (F.when(u < rate / 2, F.regexp_replace(s, " ", "  "))
            .when(u < rate, F.concat(s, F.lit("  ")))
            .otherwise(s))


def phone_format(digits: Column, u: Column, shares: tuple[float, float, float, float]) -> Column:
    """Render a 10-digit phone number in one of several common formats.

    Args:
        digits: 10-digit string Column (null stays null).
        u: uniform choosing the format.
        shares: cumulative shares of plain ``9195550142``, ``919-555-0142``,
            ``(919) 555-0142`` and ``919.555.0142``; the rest get ``+19195550142``.

    Returns:
        The formatted phone string.
    """
    a, b, c = digits.substr(1, 3), digits.substr(4, 3), digits.substr(7, 4)
    plain, dash, paren, dot = shares
    return (F.when(u < plain, digits)
            .when(u < dash, F.concat_ws("-", a, b, c))
            .when(u < paren, F.concat(F.lit("("), a, F.lit(") "), b, F.lit("-"), c))
            .when(u < dot, F.concat_ws(".", a, b, c))
            .otherwise(F.concat(F.lit("+1"), digits)))
