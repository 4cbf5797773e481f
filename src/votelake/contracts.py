"""Data contracts of the published (gold) tables: what downstream teams may rely on.

Each published table has a contract in ``conf/contracts/<table>.yaml``::

    table: gold.voter_scores
    version: 1.2.0            # major.minor.patch; a breaking change needs a new major
    owner: votelake maintainers
    description: One row per active person per scoring run.
    partition_by: [state]
    cluster_by: [county_id, precinct]
    primary_key: [person_id]
    columns:
      person_id:
        type: string not null  # the catalog's type syntax (votelake.catalog.parse_type)
        pii: pseudonymous      # none | quasi | pseudonymous | direct
        description: Stable person id (identity resolution); no meaning outside votelake.
      turnout_score:
        type: int
        range: [0, 100]
        description: Modelled probability of voting, 0-100.

The contract is the table's only declaration: the catalog takes its columns,
partitioning and key from here (:func:`catalog_entries`). Every publish checks
(:func:`check_publish`):

* the rows' columns and types are exactly the contract's (a dropped, renamed
  or undeclared column fails);
* no column is a direct personal identifier: none declared ``pii: direct``,
  none named like one (:data:`DIRECT_IDENTIFIER_NAMES`), and, through Great
  Expectations (:func:`expectation_suite`), no string value shaped like an
  e-mail address or a phone number;
* against the contract recorded with the previous publish, no breaking change
  (dropped column, changed or narrowed type, a non-null column becoming
  nullable) unless the major version went up.

:func:`render_markdown` turns the contracts into the data dictionary shipped
as ``docs/data_dictionary.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyspark.sql import types as T

from votelake.catalog import DIRECT_IDENTIFIER_NAMES, parse_type

PiiClass = Literal["none", "quasi", "pseudonymous", "direct"]
PII_MEANING = {
    "none": "not about a person, or an aggregate",
    "quasi": "identifies a person only combined with other data (geography, age band)",
    "pseudonymous": "an identifier that needs another table to name the person (person id, state voter id)",
    "direct": "names, addresses, phones, e-mails, birth dates: never published",
}
# E-mail addresses and North American phone numbers anywhere inside a string
# value ("jane@example.org (919) 555-0142", a bare 9192680736), checked in every
# string column of a published table. Matches are bounded by characters that
# are neither letters nor digits, so a hash (hex) or a code holding ten digits
# in a row is not a phone number.
EMAIL_VALUE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PHONE_VALUE = (r"(?<![A-Za-z0-9])(\+?1[-. ]?)?(\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[-. ]?)"
               r"[2-9][0-9]{2}[-. ]?[0-9]{4}(?![A-Za-z0-9])")
# Pseudonymous ids (state voter ids) can be ten digits: e-mails only there.
IDENTIFIER_VALUE = f"({EMAIL_VALUE})|({PHONE_VALUE})"
# Widening type changes readers survive; anything else is breaking.
_WIDENINGS = {("smallint", "int"), ("smallint", "bigint"), ("int", "bigint"), ("float", "double"),
              ("int", "double"), ("smallint", "double")}
CONTRACT_METADATA_KEY = "votelake.contract"


class ContractError(ValueError):
    """A contract file is malformed, or rows or a new contract version break a contract."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnContract(_Strict):
    """One column: type, meaning, PII class and allowed values."""

    type: str
    description: str = Field(min_length=1)
    pii: PiiClass = "none"
    range: tuple[float, float] | None = None
    values: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _valid(self) -> "ColumnContract":
        parse_type(self.type)  # raises CatalogError (a ValueError) naming the type
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)}: low above high")
        return self

    @property
    def spark_type(self) -> T.DataType:
        return parse_type(self.type)[0]

    @property
    def nullable(self) -> bool:
        return parse_type(self.type)[1]

    @property
    def base_type(self) -> str:
        """The type without ``not null``, e.g. ``bigint``."""
        return self.spark_type.simpleString()


class Contract(_Strict):
    """A published table's contract."""

    table: str = Field(pattern=r"^gold\.[a-z][a-z0-9_]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    owner: str = Field(min_length=1)
    description: str = Field(min_length=1)
    partition_by: tuple[str, ...] = ()
    cluster_by: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    columns: dict[str, ColumnContract] = Field(min_length=1)

    @model_validator(mode="after")
    def _keys_declared(self) -> "Contract":
        missing = [c for c in self.partition_by + self.cluster_by + self.primary_key if c not in self.columns]
        if missing:
            raise ValueError(f"partition/cluster/key columns not among the columns: {missing}")
        return self

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def schema(self) -> T.StructType:
        return T.StructType([T.StructField(n, c.spark_type, c.nullable) for n, c in self.columns.items()])

    def to_json(self) -> str:
        """The contract as one line of JSON (recorded with every publish)."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)


def parse_contract(raw: Any, source: str = "<contract>") -> Contract:
    """Validate a contract read from YAML or JSON.

    Raises:
        ContractError: naming the file and the bad key or value.
    """
    if not isinstance(raw, dict):
        raise ContractError(f"{source}: a contract is a mapping (table, version, owner, description, columns)")
    try:
        return Contract.model_validate(raw)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                           for e in exc.errors())
        raise ContractError(f"{source}: {detail}") from None


def load_contracts(folder: Path) -> dict[str, Contract]:
    """Every contract of a folder, by table name.

    Args:
        folder: ``conf/contracts``.

    Returns:
        Contracts by table name (empty when the folder does not exist).

    Raises:
        ContractError: a malformed file, or a file not named after its table.
    """
    contracts = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        contract = parse_contract(yaml.safe_load(path.read_text()), str(path))
        if contract.table != path.stem:
            raise ContractError(f"{path}: names table {contract.table!r}; the file name says {path.stem!r}")
        contracts[contract.table] = contract
    return contracts


def catalog_entries(contracts: dict[str, Contract]) -> dict[str, dict]:
    """The catalog entries the contracts declare.

    Columns, partitioning, key, clustering, the description and column
    descriptions (the catalog's comments), and each column's range or allowed
    values as a CHECK constraint, so Delta itself refuses a row outside them.
    """
    return {name: {"description": c.description, "columns": {n: col.type for n, col in c.columns.items()},
                   "partition_by": list(c.partition_by), "primary_key": list(c.primary_key),
                   "cluster_by": list(c.cluster_by),
                   "comments": {n: col.description for n, col in c.columns.items()},
                   "checks": column_checks(c)}
            for name, c in contracts.items()}


def column_checks(contract: Contract) -> dict[str, str]:
    """A contract's column ranges and allowed values as CHECK constraints (a null passes)."""
    def number(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else repr(float(x))

    checks = {}
    for name, col in contract.columns.items():
        if col.range is not None:
            checks[f"{name}_range"] = f"`{name}` IS NULL OR `{name}` BETWEEN {number(col.range[0])} AND {number(col.range[1])}"
        if col.values is not None:
            allowed = ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in col.values)
            checks[f"{name}_values"] = f"`{name}` IS NULL OR `{name}` IN ({allowed})"
    return checks


def identifier_columns(names: list[str], contract: Contract | None = None) -> list[str]:
    """Columns that are direct personal identifiers: declared so, or named like one."""
    declared = {n for n, c in (contract.columns.items() if contract else ()) if c.pii == "direct"}
    return [n for n in names if n in declared or DIRECT_IDENTIFIER_NAMES.search(n.lower())]


def schema_violations(schema: T.StructType, contract: Contract) -> list[str]:
    """How rows about to be published break their contract's columns.

    Args:
        schema: the rows' schema.
        contract: the table's contract.

    Returns:
        One message per problem (empty when the rows match): dropped columns,
        undeclared columns, type differences, direct identifiers.
    """
    actual = {f.name: f.dataType for f in schema.fields}
    problems = [f"column {n!r} of the contract is missing (dropped or renamed)"
                for n in contract.columns if n not in actual]
    problems += [f"column {n!r} is not in the contract" for n in actual if n not in contract.columns]
    problems += [f"column {n!r} is {actual[n].simpleString()}; the contract says {c.base_type}"
                 for n, c in contract.columns.items() if n in actual and actual[n] != c.spark_type]
    problems += [f"column {n!r} is a direct personal identifier; published tables carry none"
                 for n in identifier_columns(list(actual), contract)]
    return problems


def breaking_changes(previous: Contract, current: Contract) -> list[str]:
    """What a new contract version breaks for readers of the previous one.

    Args:
        previous: the contract the table was last published under.
        current: the contract of this publish.

    Returns:
        One message per breaking change: a dropped or renamed column, a type
        change other than a widening (int → bigint, float → double, ...), a
        non-null column becoming nullable.
    """
    changes = []
    for name, old in previous.columns.items():
        new = current.columns.get(name)
        if new is None:
            changes.append(f"column {name!r} dropped or renamed")
            continue
        if old.base_type != new.base_type and (old.base_type, new.base_type) not in _WIDENINGS:
            changes.append(f"column {name!r} changed type {old.base_type} → {new.base_type}")
        if not old.nullable and new.nullable:
            changes.append(f"column {name!r} became nullable")
    return changes


def check_evolution(previous: Contract | None, current: Contract) -> list[str]:
    """Allow a new contract version only if it breaks nothing or bumps the major version.

    Args:
        previous: the contract recorded with the previous publish (None: first publish).
        current: this publish's contract.

    Returns:
        The breaking changes the major bump allows (empty when none).

    Raises:
        ContractError: breaking changes without a new major version, or a version going backwards.
    """
    if previous is None:
        return []
    changes = breaking_changes(previous, current)
    if changes and current.major <= previous.major:
        raise ContractError(
            f"{current.table}: breaking change(s) need a new major version (published under "
            f"{previous.version}, contract says {current.version}): " + "; ".join(changes))
    return changes


def check_publish(schema: T.StructType, contract: Contract, previous: Contract | None) -> list[str]:
    """The schema checks of one publish (the value checks run in :func:`expectation_suite`).

    Returns:
        The breaking changes a major version bump allowed.

    Raises:
        ContractError: the rows break the contract, or the contract breaks its previous version.
    """
    problems = schema_violations(schema, contract)
    if problems:
        raise ContractError(f"{contract.table} (contract {contract.version}): " + "; ".join(problems))
    return check_evolution(previous, contract)


def free_text_columns(contract: Contract) -> list[str]:
    """String columns that could carry any text: no declared value set, and not an id (pseudonymous)."""
    return [n for n, c in contract.columns.items() if c.base_type == "string" and c.values is None
            and c.pii != "pseudonymous"]


def expectation_suite(contract: Contract) -> "quality.Suite":
    """The Great Expectations checks of a contract's values.

    Columns exactly as declared, non-null columns without nulls, ranges, value
    sets, unique primary key, and no e-mail or phone-shaped value in any string
    column. Every expectation is critical.

    Args:
        contract: the table's contract.

    Returns:
        A suite for :func:`votelake.quality.run_gate`.
    """
    from votelake import quality

    entries: list[dict] = [{"expect_table_columns_to_match_ordered_list": {"column_list": list(contract.columns)}}]
    for name, col in contract.columns.items():
        if not col.nullable:
            entries.append({"expect_column_values_to_not_be_null": {"column": name}})
        if col.range is not None:
            entries.append({"expect_column_values_to_be_between": {
                "column": name, "min_value": col.range[0], "max_value": col.range[1]}})
        if col.values is not None:
            entries.append({"expect_column_values_to_be_in_set": {"column": name, "value_set": list(col.values)}})
        if col.base_type == "string":
            pattern = EMAIL_VALUE if col.pii == "pseudonymous" else IDENTIFIER_VALUE
            entries.append({"expect_column_values_to_not_match_regex": {"column": name, "regex": pattern},
                            "notes": "No e-mail address or phone number in a published table."})
    if contract.primary_key:
        entries.append({"expect_compound_columns_to_be_unique": {"column_list": list(contract.primary_key)}}
                       if len(contract.primary_key) > 1 else
                       {"expect_column_values_to_be_unique": {"column": contract.primary_key[0]}})
    return quality.critical_suite(contract.table, entries)


def render_markdown(contracts: dict[str, Contract]) -> str:
    """The data dictionary of the published tables (``docs/data_dictionary.md``)."""
    lines = ["# Data dictionary: published tables", "",
             "Generated from `conf/contracts/` by `votelake contracts render`; do not edit by hand.",
             "Every publish checks its table's contract (columns, types, nullability, ranges, no direct",
             "personal identifiers) and refuses a breaking change without a new major version.", "",
             "PII classes: " + "; ".join(f"`{k}`: {v}" for k, v in PII_MEANING.items()) + ".", ""]
    for name, c in sorted(contracts.items()):
        lines += [f"## `{name}` (contract {c.version})", "", c.description.strip(), "",
                  f"- Owner: {c.owner}",
                  f"- Partitioned by: {', '.join(c.partition_by) or 'none'}",
                  f"- Clustered by: {', '.join(c.cluster_by) or 'none'}",
                  f"- Primary key: {', '.join(c.primary_key) or 'none'}", "",
                  "| column | type | null | allowed | PII | meaning |", "|---|---|---|---|---|---|"]
        for col_name, col in c.columns.items():
            allowed = (f"{col.range[0]:g} to {col.range[1]:g}" if col.range is not None
                       else ", ".join(col.values) if col.values else "")
            meaning = " ".join(col.description.split()).replace("|", "\\|")
            lines.append(f"| `{col_name}` | {col.base_type} | {'yes' if col.nullable else 'no'} | {allowed} | "
                         f"{col.pii} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
