"""Given names and surnames drawn at the US Census Bureau's frequencies.

Strangers who share a name, a birth year and a ZIP code are what an identity
resolver must keep apart, so the synthetic state must hold as many of them as a
real one: not the handful of a short list, nor none. The 1990 census name
tables (surnames, female and male first names, each with its share of the
population in percent to three decimals) ship with the ``names`` package. A
name's share becomes a number of *slots* (one per 0.001 %), and a person draws
a uniform slot, so a name is drawn exactly as often as the table says.

Surnames: the 18,839 listed with a share of at least 0.001 % cover 79.59 % of
people; the remaining 20.41 % is spread one slot each over that many of the
rarer surnames (the table lists 69,960 more at 0.000 %), so the chance that two
strangers share a surname stays that of the census.

Measured on the active and inactive registrations: two of them share a surname
with probability 0.00093 and a first name 0.0034 in the real NC Chatham County
file of 2018, 0.00073 and 0.0031 in a 200,000-voter synthetic state (the
former short name lists: 0.0061 and 0.0064).
"""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

TABLES = {"last": "dist.all.last", "female": "dist.female.first", "male": "dist.male.first"}
# Slots per percent of the population: the tables' precision (0.001 %).
SLOTS_PER_PERCENT = 1000
SLOT_SCHEMA = T.StructType([T.StructField("slot", T.IntegerType(), False),
                            T.StructField("name", T.StringType(), False)])


@functools.cache
def census_table(kind: str) -> tuple[tuple[str, int], ...]:
    """One census table as read.

    Args:
        kind: ``last``, ``female`` or ``male``.

    Returns:
        (name, slots) pairs, most frequent first; slots are the percent share
        × 1000 (0 for the surnames the table lists at 0.000 %).
    """
    text = resources.files("names").joinpath(TABLES[kind]).read_text()
    rows = (line.split() for line in text.splitlines() if line.strip())
    return tuple((name, round(float(percent) * SLOTS_PER_PERCENT)) for name, percent, *_ in rows)


@functools.cache
def slotted(kind: str) -> tuple[str, ...]:
    """One entry per slot: each name repeated once per 0.001 % of people who hold it.

    Args:
        kind: ``last``, ``female`` or ``male``.

    Returns:
        The names by slot. First-name tables cover about 90 % of people; the
        slots are their shares renormalised. The surname table's unlisted share
        goes to the rarer surnames, one slot each.
    """
    table = census_table(kind)
    names = [name for name, slots in table for _ in range(slots)]
    if kind == "last":
        rare = [name for name, slots in table if slots == 0]
        names += rare[:max(100 * SLOTS_PER_PERCENT - len(names), 0)]
    return tuple(names)


def slot_table(spark: SparkSession, kind: str, offset: int = 0) -> DataFrame:
    """The slots of one table as rows (``slot``, ``name``), numbered from ``offset``.

    Args:
        spark: the session.
        kind: ``last``, ``female`` or ``male``.
        offset: the first slot number (several tables can share one lookup).

    Returns:
        A DataFrame of about 100,000 rows, small enough to broadcast.
    """
    names = slotted(kind)
    frame = pd.DataFrame({"slot": range(offset, offset + len(names)), "name": names})
    return spark.createDataFrame(frame, SLOT_SCHEMA)


def draw(u: Column, kind: str, offset: int = 0) -> Column:
    """The slot a uniform [0, 1) draw lands on in one table (joined to :func:`slot_table`).

    Args:
        u: a uniform Column.
        kind: ``last``, ``female`` or ``male``.
        offset: the table's first slot number.

    Returns:
        An int Column.
    """
    return (F.lit(offset) + F.floor(u * F.lit(len(slotted(kind))))).cast("int")
