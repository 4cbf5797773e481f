"""Query-plan helpers for wide generated DataFrames."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


def keep_where(df: DataFrame, cond: Column) -> DataFrame:
    """Keep the rows where ``cond`` is true, without letting Spark push the filter down.

    A plain ``where`` on a generated column is pushed below the projections that
    compute it, with every alias substituted by its full expression: the hash
    chains get evaluated twice, and for deep chains the generated Java code
    exceeds the JVM method size limit. An ``explode`` of a zero- or one-element
    array filters the same rows but is a plan barrier for predicate pushdown.

    Args:
        df: the DataFrame.
        cond: a boolean Column over ``df``'s columns (null counts as false).

    Returns:
        ``df`` restricted to the rows where ``cond`` is true, same columns.
    """
    marker = F.explode(F.when(cond, F.array(F.lit(True))).otherwise(F.array().cast("array<boolean>")))
    return df.select("*", marker.alias("_keep_where")).drop("_keep_where")
