"""Universe rules as data, not code: a small expression language compiled to Spark Columns.

A universe's ``where`` and ``priority`` come from config, which an operator,
a shared file or a ``--set`` flag can supply. Handed to ``F.expr`` they are
Spark SQL, which can read files, call Java through ``reflect()`` and pull any
table through a subquery. Instead, a rule is parsed with sqlglot (Spark
dialect) and every node must be on an allowlist: columns of the table the
rule reads, literals, comparison, boolean and arithmetic operators, ``IN``
lists, ``BETWEEN``, ``LIKE``, ``IS [NOT] NULL``, ``CASE``/``IF``, casts to
plain types and a short list of pure functions. The accepted tree is then
built into a Column with the DataFrame API, so no text of the rule ever
reaches Spark's SQL parser.

sqlglot parses; the allowlist and the Column builder are written here
because no library maps a SQL tree onto PySpark Columns.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable

import sqlglot
from pyspark.sql import Column
from pyspark.sql import functions as F
from sqlglot import exp

# Casts a rule may make (sqlglot type names).
CAST_TYPES = {
    exp.DataType.Type.INT: "int", exp.DataType.Type.BIGINT: "bigint", exp.DataType.Type.DOUBLE: "double",
    exp.DataType.Type.FLOAT: "double", exp.DataType.Type.TEXT: "string", exp.DataType.Type.VARCHAR: "string",
    exp.DataType.Type.BOOLEAN: "boolean", exp.DataType.Type.DATE: "date",
}
BINARY: dict[type, Callable[[Column, Column], Column]] = {
    exp.And: lambda a, b: a & b, exp.Or: lambda a, b: a | b,
    exp.EQ: lambda a, b: a == b, exp.NEQ: lambda a, b: a != b, exp.NullSafeEQ: lambda a, b: a.eqNullSafe(b),
    exp.GT: lambda a, b: a > b, exp.GTE: lambda a, b: a >= b, exp.LT: lambda a, b: a < b, exp.LTE: lambda a, b: a <= b,
    exp.Add: lambda a, b: a + b, exp.Sub: lambda a, b: a - b, exp.Mul: lambda a, b: a * b,
    exp.Div: lambda a, b: a / b, exp.Mod: lambda a, b: a % b,
}
UNARY: dict[type, Callable[[Column], Column]] = {
    exp.Not: lambda a: ~a, exp.Neg: lambda a: -a, exp.Paren: lambda a: a,
    exp.Abs: F.abs, exp.Floor: F.floor, exp.Ceil: F.ceil, exp.Lower: F.lower, exp.Upper: F.upper,
    exp.Length: F.length,
}
# Functions of a first argument and a list (``coalesce(a, b, ...)``).
VARIADIC: dict[type, Callable[..., Column]] = {exp.Coalesce: F.coalesce, exp.Least: F.least, exp.Greatest: F.greatest}
MAX_LENGTH = 2000


class RuleError(ValueError):
    """A rule uses something outside the allowlist; the message names it."""


def _describe(node: exp.Expression) -> str:
    """A short name of a rejected construct, for the error."""
    if isinstance(node, (exp.Select, exp.Subquery, exp.Exists)):
        return "subquery"
    if isinstance(node, exp.Anonymous):
        return f"function {node.name}()"
    if isinstance(node, exp.Func):
        # As the rule wrote it in Spark SQL (sqlglot's own names differ: size is ArraySize).
        return f"function {node.sql(dialect='spark').split('(')[0].lower()}()"
    return f"{type(node).__name__} ({node.sql(dialect='spark')[:60]})"


def parse(text: str) -> exp.Expression:
    """Parse a rule and reject what it may not contain, before any column is known.

    Args:
        text: the rule (a Spark SQL expression).

    Returns:
        The sqlglot expression tree.

    Raises:
        RuleError: naming the offending construct (a character outside
            printable ASCII, a comment, several statements, a subquery, a
            function off the list, a qualified column, a star, ...).
    """
    if len(text) > MAX_LENGTH:
        raise RuleError(f"a rule longer than {MAX_LENGTH} characters")
    for i, ch in enumerate(text):
        if not (ch.isascii() and (ch.isprintable() or ch in "\t\n")):
            raise RuleError(f"character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}) at position {i}: "
                            "rules are printable ASCII")
    if "--" in text or "/*" in text or "*/" in text:
        # Comments are rejected outright rather than stripped: in a rule they only hide text.
        raise RuleError("a comment (-- or /* */)")
    try:
        trees = [t for t in sqlglot.parse(text, read="spark") if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise RuleError(f"not an expression: {str(exc).splitlines()[0][:120]}") from None
    if len(trees) != 1:
        raise RuleError(f"{len(trees)} statements: a rule is one expression")
    tree = trees[0]
    for node in tree.walk():
        if node.comments:
            raise RuleError("a comment")
        if isinstance(node, exp.Column) and (node.table or not isinstance(node.this, exp.Identifier)):
            raise RuleError(f"qualified column {node.sql(dialect='spark')}: name a column of the scores only")
        if not _allowed(node):
            raise RuleError(_describe(node))
    return tree


def _allowed(node: exp.Expression) -> bool:
    """Whether a node may appear in a rule (its children are checked on their own)."""
    if isinstance(node, (exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.If, exp.Case,
                         exp.Between, exp.Is, exp.Like, exp.Round, *BINARY, *UNARY, *VARIADIC)):
        return True
    if isinstance(node, exp.In):
        return not any(node.args.get(k) for k in ("query", "unnest", "field"))
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return True  # its type is checked when built
    if isinstance(node, exp.DataType):
        return node.this in CAST_TYPES and not node.expressions
    return False


def _literal(node: exp.Literal) -> Column:
    if node.is_string:
        return F.lit(node.this)
    text = node.this
    return F.lit(int(text) if text.lstrip("-").isdigit() else float(text))


def build(tree: exp.Expression, columns: Iterable[str]) -> Column:
    """The Column a checked rule computes, over a table with ``columns``.

    Args:
        tree: :func:`parse` output.
        columns: the columns the rule may read.

    Returns:
        A Column built with the DataFrame API.

    Raises:
        RuleError: an unknown column, or a construct :func:`parse` let through
            but this builder does not know (never silently dropped).
    """
    known = {c.lower(): c for c in columns}

    def go(node: exp.Expression) -> Column:
        kind = type(node)
        if kind is exp.Column:
            name = node.name
            if name.lower() not in known:
                raise RuleError(f"unknown column {name!r}; a rule reads: {', '.join(sorted(known.values()))}")
            return F.col(known[name.lower()])
        if kind is exp.Literal:
            return _literal(node)
        if kind is exp.Boolean:
            return F.lit(bool(node.this))
        if kind is exp.Null:
            return F.lit(None)
        if kind in BINARY:
            return BINARY[kind](go(node.this), go(node.expression))
        if kind in UNARY:
            return UNARY[kind](go(node.this))
        if kind in VARIADIC:
            return VARIADIC[kind](go(node.this), *[go(e) for e in node.expressions])
        if kind is exp.Round:
            decimals = node.args.get("decimals")
            if decimals is not None and not (isinstance(decimals, exp.Literal) and decimals.this.isdigit()):
                raise RuleError("round() takes a whole number of decimals")
            return F.round(go(node.this), int(decimals.this) if decimals is not None else 0)
        if kind is exp.Between:
            return go(node.this).between(go(node.args["low"]), go(node.args["high"]))
        if kind is exp.In:
            return go(node.this).isin(*[go(e) for e in node.expressions])
        if kind is exp.Is:
            if not isinstance(node.expression, exp.Null):
                raise RuleError("IS takes NULL only")
            return go(node.this).isNull()
        if kind is exp.Like:
            if not (isinstance(node.expression, exp.Literal) and node.expression.is_string):
                raise RuleError("LIKE takes a string pattern")
            return go(node.this).like(node.expression.this)
        if kind in (exp.Cast, exp.TryCast):
            to = node.args["to"]
            if to.this not in CAST_TYPES or to.expressions:
                raise RuleError(f"cast to {to.sql(dialect='spark')}")
            return go(node.this).cast(CAST_TYPES[to.this])
        if kind is exp.If:  # IF(cond, a, b), and a CASE branch
            chosen = F.when(go(node.this), go(node.args["true"]))
            false = node.args.get("false")
            return chosen.otherwise(go(false)) if false is not None else chosen
        if kind is exp.Case:
            if node.this is not None:
                raise RuleError("CASE <value> WHEN: write CASE WHEN <condition>")
            chain = None
            for branch in node.args["ifs"]:
                cond, value = go(branch.this), go(branch.args["true"])
                chain = F.when(cond, value) if chain is None else chain.when(cond, value)
            default = node.args.get("default")
            return chain.otherwise(go(default)) if default is not None else chain
        raise RuleError(_describe(node))

    return go(tree)


def columns_read(text: str) -> set[str]:
    """The columns a rule reads, lower-cased (a job can join what a rule needs and only then).

    Args:
        text: the rule.

    Returns:
        The column names.

    Raises:
        RuleError: as :func:`parse`.
    """
    return {node.name.lower() for node in parse(text).find_all(exp.Column)}


def rule_column(text: str, columns: Iterable[str]) -> Column:
    """Parse, check and build a rule: the only way a configured rule becomes a Column.

    Args:
        text: the rule.
        columns: the columns it may read.

    Returns:
        The Column.

    Raises:
        RuleError: naming what is not allowed.
    """
    return build(parse(text), columns)
