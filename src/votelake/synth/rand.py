"""Deterministic, partition-independent randomness as Spark Column expressions.

Every random draw is a pure function of (seed, stream name, key columns): a
64-bit xxhash mapped to [0, 1). Nothing depends on partitioning, row order or
task attempt, so the same seed always gives the same output, and a retried task
reproduces exactly what the failed one would have written.
"""

from __future__ import annotations

import math
from typing import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

# 53 bits: the largest integer range a double represents exactly.
_BITS = 53
_MASK = (1 << _BITS) - 1
_SCALE = float(1 << _BITS)


def _key_sql(c: str | int) -> str:
    # Keys are column names / SQL expressions over columns, or int literals.
    return str(int(c)) if isinstance(c, int) else c


def uniform_sql(seed: int, stream: str, *cols: str | int) -> str:
    """SQL text of :func:`uniform` (for composing larger SQL expressions).

    Args:
        seed: the generator seed.
        stream: a name for the draw ([A-Za-z0-9_#] only).
        cols: key column names (or SQL expressions), or int literals.

    Returns:
        A SQL expression string evaluating to a double in [0, 1).
    """
    keys = ", ".join(_key_sql(c) for c in cols)
    return (f"(CAST((xxhash64(CAST({int(seed)} AS BIGINT), '{stream}', {keys}) & {_MASK}) AS DOUBLE)"
            f" / {_SCALE!r})")


def uniform(seed: int, stream: str, *cols: str | int) -> Column:
    """A uniform draw in [0, 1) keyed by seed, stream and key columns.

    Built as one SQL expression: constructing it from many small Column calls
    costs a JVM round trip each, which dominated the build time of the plan.

    Args:
        seed: the generator seed.
        stream: a name for the draw; different names give independent draws.
        cols: key column names (e.g. ``"person_id"``) or int literals.

    Returns:
        A double Column in [0, 1).
    """
    return F.expr(uniform_sql(seed, stream, *cols))


def normal(seed: int, stream: str, *cols: str | int) -> Column:
    """A standard normal draw (Box-Muller on two independent uniforms).

    Args:
        seed: the generator seed.
        stream: a name for the draw.
        cols: key column names or int literals.

    Returns:
        A double Column, N(0, 1).
    """
    # 1 - u is in (0, 1], so the log is finite.
    u1 = uniform_sql(seed, stream + "#bm1", *cols)
    u2 = uniform_sql(seed, stream + "#bm2", *cols)
    return F.expr(f"sqrt(-2.0 * ln(1.0 - {u1})) * cos({2 * math.pi!r} * {u2})")


def _sql_lit(v) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def categorical(u: Column | str, values: Sequence, weights: Sequence[float]) -> Column:
    """Map a uniform draw to one of ``values`` with the given (unnormalised) weights.

    Args:
        u: a uniform [0, 1) Column, or its SQL text (cheaper to build).
        values: the outcomes (Python str/int/float literals).
        weights: their relative weights.

    Returns:
        A Column holding one of ``values``.
    """
    total = float(sum(weights))
    if isinstance(u, str):
        branches, cum = [], 0.0
        for value, w in zip(values[:-1], weights[:-1]):
            cum += w / total
            branches.append(f"WHEN {u} < {cum!r} THEN {_sql_lit(value)}")
        if not branches:
            return F.lit(values[-1])
        return F.expr(f"CASE {' '.join(branches)} ELSE {_sql_lit(values[-1])} END")
    expr = None
    cum = 0.0
    for value, w in zip(values[:-1], weights[:-1]):
        cum += w / total
        expr = (F.when(u < cum, F.lit(value)) if expr is None else expr.when(u < cum, F.lit(value)))
    last = F.lit(values[-1])
    return last if expr is None else expr.otherwise(last)


def pick(u: Column, values: Sequence[str], skew: float = 1.0) -> Column:
    """Pick one element of a list, optionally favouring the start of the list.

    Args:
        u: a uniform [0, 1) Column.
        values: the list (most frequent first when ``skew`` > 1).
        skew: exponent applied to ``u``; > 1 makes early elements more frequent
            (a cheap Zipf-like shape for name frequencies).

    Returns:
        A string Column.
    """
    arr = literal_array(values)
    idx = F.floor(F.pow(u, F.lit(skew)) * F.lit(len(values))).cast("int") + F.lit(1)
    return F.element_at(arr, idx)


def literal_array(values: Sequence) -> Column:
    """An array literal built as one SQL expression (one JVM call, not one per element).

    Args:
        values: str/int/float literals.

    Returns:
        An array Column.
    """
    return F.expr("array(" + ", ".join(_sql_lit(v) for v in values) + ")")


def literal_map(mapping: dict) -> Column:
    """A map literal built as one SQL expression.

    Args:
        mapping: str keys to str/int/float values.

    Returns:
        A map Column.
    """
    return F.expr("map(" + ", ".join(f"{_sql_lit(k)}, {_sql_lit(v)}" for k, v in mapping.items()) + ")")


def sigmoid(x: Column) -> Column:
    """The logistic function.

    Args:
        x: a numeric Column.

    Returns:
        ``1 / (1 + exp(-x))``.
    """
    return F.lit(1.0) / (F.lit(1.0) + F.exp(-x))


def logit(p: Column) -> Column:
    """The inverse of :func:`sigmoid`, clamped away from 0 and 1.

    Args:
        p: a probability Column.

    Returns:
        ``log(p / (1 - p))``.
    """
    q = F.least(F.greatest(p, F.lit(1e-6)), F.lit(1 - 1e-6))
    return F.log(q / (F.lit(1.0) - q))


def hex_id(seed: int, stream: str, *cols: str | int) -> Column:
    """An opaque 16-hex-digit identifier derived from a hash (does not reveal the key).

    Args:
        seed: the generator seed.
        stream: namespace of the identifier.
        cols: key column names / SQL expressions, or int literals.

    Returns:
        A lowercase string Column.
    """
    keys = ", ".join(_key_sql(c) for c in cols)
    return F.expr(f"lower(lpad(hex(xxhash64(CAST({int(seed)} AS BIGINT), '{stream}#id', {keys})), 16, '0'))")
