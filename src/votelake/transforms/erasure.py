"""Which rows hold a person being forgotten, and who stays suppressed after.

Pure column expressions and ``DataFrame -> DataFrame`` functions; the erasure
itself (deletes, exports, artifacts, the audit trail) is
:mod:`votelake.erasure`.

Identifiers are compared in one normal form whatever table they come from:
a state voter id trimmed and upper-cased, an e-mail trimmed and lower-cased,
a phone as its last ten digits (so ``(919) 555-0142``, ``919.555.0142`` and
``+19195550142`` are one number). The suppression list keeps only
``sha256(salt + kind + ":" + normal form)``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import reduce
from typing import Iterable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

KINDS = ("state_voter_id", "email", "phone")
# Columns holding each kind of identifier, by name, in any silver or gold table.
COLUMNS = {"state_voter_id": ("state_voter_id",), "email": ("email", "email_raw"), "phone": ("phone", "phone_raw")}
# What separates the fields of a quarantined raw line (the delimiters and quotes of every layout).
RAW_SEPARATORS = r"[,|\t;\"{}:\[\]]"
ERASED_REASON = "erased on request"
# Kinds of landing data the campaign collected itself: an erased person's rows
# in a later delivery are not loaded. Voter files and vote history are public
# records, loaded whole; universes and exports keep erased people out of them.
PRIVATE_KINDS = ("contacts", "digital", "experiments")


def normalize(kind: str, value: str | None) -> str | None:
    """An identifier in its normal form (None when nothing of it is left).

    Args:
        kind: ``state_voter_id``, ``email`` or ``phone``.
        value: the identifier as given.

    Returns:
        The normal form.
    """
    if value is None:
        return None
    if kind == "phone":
        text = re.sub(r"\D", "", value)[-10:]
    elif kind == "email":
        text = value.strip().lower()
    else:
        text = value.strip().upper()
    return text or None


def normalized(kind: str, col: Column) -> Column:
    """:func:`normalize` as a column expression."""
    if kind == "phone":
        return F.substring(F.regexp_replace(col, r"[^0-9]", ""), -10, 10)
    if kind == "email":
        return F.lower(F.trim(col))
    return F.upper(F.trim(col))


def digest(salt: str, kind: str, value: str) -> str:
    """The salted SHA-256 (hex) of an identifier's normal form, as the audit table keeps it."""
    return hashlib.sha256(f"{salt}{kind}:{value}".encode()).hexdigest()


def digested(salt: str, kind: str, col: Column) -> Column:
    """:func:`digest` of a column's normal form (Spark's ``sha2`` of the same UTF-8 text)."""
    return F.sha2(F.concat(F.lit(f"{salt}{kind}:"), normalized(kind, col)), 256)


@dataclass(frozen=True)
class Targets:
    """Everything that identifies the people being forgotten, in normal form."""

    state_voter_id: frozenset[str] = frozenset()
    email: frozenset[str] = frozenset()
    phone: frozenset[str] = frozenset()
    person_id: frozenset[str] = frozenset()
    contact_id: frozenset[str] = frozenset()
    event_id: frozenset[str] = frozenset()

    @classmethod
    def of(cls, given: dict[str, Iterable[str]]) -> "Targets":
        """Targets from identifiers as given: ``{kind: values}`` (normalized here)."""
        return cls(**{k: frozenset(v for v in (normalize(k, x) for x in given.get(k, ())) if v) for k in KINDS})

    def identifiers(self) -> dict[str, frozenset[str]]:
        """The identifying kinds only (not the internal ids)."""
        return {k: getattr(self, k) for k in KINDS}


def _isin(col: Column, values: frozenset[str]) -> Column | None:
    return col.isin(sorted(values)) if values else None


def _any(conditions: Iterable[Column | None]) -> Column | None:
    present = [c for c in conditions if c is not None]
    return reduce(lambda a, b: a | b, present) if present else None


def holds(columns: Iterable[str], targets: Targets) -> Column | None:
    """A predicate true on the rows of a silver or gold table that belong to the targets.

    Args:
        columns: the table's columns (matched by name: ``person_id``,
            ``state_voter_id``, ``state_voter_ids``, ``email[_raw]``,
            ``phone[_raw]``, ``contact_id``, ``event_id``).
        targets: who is being forgotten.

    Returns:
        The predicate, or None when no column of the table can hold them.
    """
    names = set(columns)
    conditions: list[Column | None] = []
    for kind, candidates in COLUMNS.items():
        values = getattr(targets, kind)
        conditions += [_isin(normalized(kind, F.col(c)), values) for c in candidates if c in names]
    if "state_voter_ids" in names and targets.state_voter_id:
        conditions.append(F.exists("state_voter_ids", _is_one_of("state_voter_id", targets.state_voter_id)))
    conditions += [_isin(F.col(c), getattr(targets, c)) for c in ("person_id", "contact_id", "event_id") if c in names]
    return _any(conditions)


def source_holds(values: dict[str, Column], targets: Targets) -> Column | None:
    """A predicate true on the bronze rows of a source that belong to the targets.

    Args:
        values: canonical field → the source's raw value column, for the
            fields the layout maps among ``state_voter_id``, ``email``,
            ``phone``, ``contact_id``, ``event_id``.
        targets: who is being forgotten.

    Returns:
        The predicate, or None when the source holds none of those fields.
    """
    conditions = [_isin(normalized(k, col) if k in KINDS else col, getattr(targets, k)) for k, col in values.items()]
    return _any(conditions)


def raw_holds(raw: Column, targets: Targets) -> Column | None:
    """A predicate true on quarantined raw lines holding one of the targets' identifiers as a field.

    A quarantined line did not parse, so its fields are found by splitting on
    every layout's delimiters and quotes; a field then matches in normal form.

    Args:
        raw: the raw line.
        targets: who is being forgotten.

    Returns:
        The predicate, or None when there is no identifier to look for.
    """
    tokens = F.split(raw, RAW_SEPARATORS)
    conditions = [F.exists(tokens, _is_one_of(kind, values)) for kind, values in targets.identifiers().items()
                  if values]
    return _any(conditions)


def _is_one_of(kind: str, values: frozenset[str]):
    """A one-argument lambda (what Spark's higher-order functions take) matching a kind's values."""
    wanted = sorted(values)
    return lambda token: normalized(kind, token).isin(wanted)


def erased(values: dict[str, Column], hashes: dict[str, frozenset[str]], salt: str) -> Column | None:
    """A predicate true on rows holding an identifier some erasure request named (never null).

    Args:
        values: identifier kind → the column holding it.
        hashes: identifier kind → the salted hashes of ``audit.erasures``.
        salt: the salt they were made with.

    Returns:
        The predicate, or None when nothing of the rows can match.
    """
    condition = _any(digested(salt, kind, col).isin(sorted(hashes[kind]))
                     for kind, col in values.items() if hashes.get(kind))
    return None if condition is None else F.coalesce(condition, F.lit(False))


def erased_voters(voters: DataFrame, persons: DataFrame, hashes: dict[str, frozenset[str]], salt: str) -> DataFrame:
    """The registrations of everyone an erasure request named: ``state_voter_id, reason``.

    A voter file delivered after the erasure may list the person again (it is
    a public record); these rows keep them out of every universe and export.

    Args:
        voters: ``state_voter_id, person_id`` of every registration.
        persons: ``person_id, email, phone`` (silver.persons).
        hashes: identifier kind → the salted hashes of ``audit.erasures``.
        salt: the salt the hashes were made with.

    Returns:
        One row per suppressed state voter id, with the reason.
    """
    named = [(df, erased(values, hashes, salt)) for df, values in (
        (voters, {"state_voter_id": F.col("state_voter_id")}),
        (persons, {"email": F.col("email"), "phone": F.col("phone")}))]
    people = [df.where(condition).select("person_id") for df, condition in named if condition is not None]
    if not people:
        return voters.limit(0).select("state_voter_id", F.lit(ERASED_REASON).alias("reason"))
    return (voters.join(reduce(DataFrame.unionByName, people).distinct(), on="person_id", how="inner")
            .select("state_voter_id", F.lit(ERASED_REASON).alias("reason")).distinct())
