"""Names, street addresses and birth dates of real voters, found by value inside published strings.

Pure ``DataFrame -> DataFrame`` functions. A published table's free-text
string values are cut into runs of 2 to 5 consecutive words (letters and
digits; everything else separates words), and each run is looked up among the
full names, street addresses and birth dates of ``silver.persons`` cut the same
way. So ``"call JANE Q DOE at 12 OAK ST"`` holds the name ``JANE Q DOE`` and the
address ``12 OAK ST`` whatever surrounds them. Single words are not looked up:
a last name alone is also a county, a street or a precinct.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Runs of this many words are looked up: a first and last name is 2, a street address 3 to 5.
SHORTEST, LONGEST = 2, 5


def words(col: Column) -> Column:
    """The value upper-cased, cut into words of letters and digits (an array; empty for null)."""
    cleaned = F.trim(F.regexp_replace(F.upper(col), r"[^A-Z0-9]+", " "))
    return F.when(cleaned == "", F.array().cast("array<string>")).otherwise(F.split(cleaned, " "))


def runs(col: Column) -> Column:
    """Every run of SHORTEST..LONGEST consecutive words of a value, each joined by single spaces."""
    w = words(col)
    return F.flatten(F.array(*[_runs_of(w, n) for n in range(SHORTEST, LONGEST + 1)]))


def _runs_of(w: Column, n: int) -> Column:
    # Spark's higher-order functions take one-argument lambdas: n is bound here, not as a default.
    starts = F.sequence(F.lit(1), F.size(w) - n + 1)
    return F.when(F.size(w) >= n, F.transform(starts, lambda i: F.array_join(F.slice(w, i, F.lit(n)), " "))
                  ).otherwise(F.array().cast("array<string>"))


def known_identifiers(persons: DataFrame) -> DataFrame:
    """``value, kind``: the full names (with and without middle name), street addresses and birth dates of persons.

    Args:
        persons: ``silver.persons``.

    Returns:
        Identifiers in the words form :func:`runs` produces (repeats kept:
        :func:`identifier_hits` counts distinct values, so a distinct here
        would only shuffle every person once more).
    """
    def normal(col: Column) -> Column:
        return F.array_join(words(col), " ")

    parts = [
        ("name", F.concat_ws(" ", "first_name", "last_name")),
        ("name", F.concat_ws(" ", "first_name", "middle_name", "last_name")),
        ("address", F.col("address_line")),
        ("birth date", F.date_format("birth_date", "yyyy-MM-dd")),
        ("birth date", F.date_format("birth_date", "MM/dd/yyyy")),
    ]
    found = reduce(DataFrame.unionByName, [persons.select(normal(expr).alias("value"), F.lit(kind).alias("kind"))
                                           for kind, expr in parts])
    return found.where(F.size(F.split("value", " ")) >= SHORTEST)


def identifier_hits(rows: DataFrame, columns: list[str], known: DataFrame) -> DataFrame:
    """Per column and kind, how many distinct values of ``rows`` hold a known identifier.

    Args:
        rows: the rows about to be published.
        columns: their free-text string columns.
        known: :func:`known_identifiers`.

    Returns:
        ``column, kind, values`` (no value itself), empty when nothing is found.
    """
    if not columns:
        return known.sparkSession.createDataFrame([], "column string, kind string, values bigint")
    cells = rows.select(F.explode(F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).alias("text"))
                                             for c in columns])).alias("cell")).select("cell.*").distinct()
    candidates = cells.select("column", "text", F.explode(runs(F.col("text"))).alias("value"))
    return (candidates.join(known, on="value", how="inner")
            .groupBy("column", "kind").agg(F.countDistinct("text").alias("values")))
