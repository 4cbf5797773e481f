"""The table catalog: every table's name, layer, path, schema, partitioning and key.

Declared once: in ``conf/tables.yaml``, in a landing layout (bronze tables) or
in a data contract (published tables, ``conf/contracts``); jobs refer to
tables by name only.
Column types use Spark SQL type names (``string``, ``int``, ``bigint``,
``double``, ``boolean``, ``date``, ``timestamp``, ``array<string>``,
``map<string,string>``), optionally followed by ``not null``. The bronze table
of each landing source is derived from its layout, so a file's columns are
declared once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import yaml
from pyspark.sql import types as T

from votelake.layouts import Layout, load_layout
from votelake.locations import Location, join

_SIMPLE_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "smallint": T.ShortType(),
    "bigint": T.LongType(),
    "double": T.DoubleType(),
    "float": T.FloatType(),
    "boolean": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
    "binary": T.BinaryType(),
}

# Columns that every bronze row carries: where it came from and which load wrote it.
BRONZE_META = {
    "_source_file": "string not null",
    "_line": "bigint",
    "_load_id": "string not null",
    "_loaded_at": "timestamp not null",
    "_snapshot_date": "date not null",
}


# Table properties of every table of a layer: silver and gold keep Delta's Change
# Data Feed, so incremental readers can ask what changed between two versions.
LAYER_PROPERTIES = {
    "silver": {"delta.enableChangeDataFeed": "true"},
    "gold": {"delta.enableChangeDataFeed": "true"},
}


# The layers a table name may start with: the medallion layers, and the
# append-only audit trail (erasure requests, publishes).
LAYERS = ("bronze", "silver", "gold", "audit")
# Column names that are direct personal identifiers whatever a contract says.
DIRECT_IDENTIFIER_NAMES = re.compile(
    r"(^|_)(first_name|middle_name|last_name|full_name|name_suffix|street|address|address_line|"
    r"mail_addr\w*|res_street\w*|phone\w*|email\w*|e_mail|birth_date|date_of_birth|dob|birth_day)($|_)"
)
# Columns that name a person or lead to their voter record: the direct
# identifiers, state voter ids (and the registration keys built from them), and
# the raw values kept beside clean ones.
IDENTIFYING_NAMES = re.compile(
    DIRECT_IDENTIFIER_NAMES.pattern + r"|(^|_)(voter_ids?|registration_key|registration_id)$|_raw$")
STATS_PROPERTY = "delta.dataSkippingStatsColumns"
_STATS_TYPES = (T.StringType, T.IntegerType, T.ShortType, T.LongType, T.DoubleType, T.FloatType, T.DateType,
                T.TimestampType)


def stats_columns(layer: str, schema: T.StructType, partition_by: tuple[str, ...] = ()) -> str | None:
    """The columns whose minimum and maximum Delta may keep in the table's log.

    Delta writes each data file's column statistics into the transaction log,
    which no DELETE or VACUUM rewrites; a person erased from the rows would stay
    there as some file's minimum or maximum. So identifying columns get none:
    in bronze (raw delivered strings) only the load columns do.

    Args:
        layer: the table's layer.
        schema: its columns.
        partition_by: its partition columns (Delta keeps no statistics of those).

    Returns:
        The ``delta.dataSkippingStatsColumns`` value, or None when no column identifies anyone.
    """
    names = [f.name for f in schema.fields]
    if layer == "bronze":
        keep = [n for n in names if n in BRONZE_META and n not in partition_by]
    elif not any(IDENTIFYING_NAMES.search(n.lower()) for n in names):
        return None
    else:
        keep = [f.name for f in schema.fields if isinstance(f.dataType, _STATS_TYPES)
                and f.name not in partition_by and not IDENTIFYING_NAMES.search(f.name.lower())]
    return ",".join(keep)


class CatalogError(ValueError):
    """The catalog file is malformed or a table name is unknown."""


def parse_type(text: str) -> tuple[T.DataType, bool]:
    """Parse a column type such as ``"bigint not null"`` or ``"array<string>"``.

    Args:
        text: the type as written in the catalog.

    Returns:
        The Spark data type and whether the column is nullable.

    Raises:
        CatalogError: the type is not one the catalog supports.
    """
    spec = " ".join(text.lower().split())
    nullable = True
    if spec.endswith(" not null"):
        spec, nullable = spec[: -len(" not null")].strip(), False
    if spec.startswith("array<") and spec.endswith(">"):
        inner, _ = parse_type(spec[len("array<"):-1])
        return T.ArrayType(inner, True), nullable
    if spec.startswith("map<") and spec.endswith(">"):
        key_text, _, value_text = spec[len("map<"):-1].partition(",")
        key, _ = parse_type(key_text)
        value, _ = parse_type(value_text)
        return T.MapType(key, value, True), nullable
    if spec not in _SIMPLE_TYPES:
        raise CatalogError(f"unknown column type {text!r}")
    return _SIMPLE_TYPES[spec], nullable


def _schema(columns: dict[str, str]) -> T.StructType:
    fields = []
    for name, type_text in columns.items():
        dtype, nullable = parse_type(str(type_text))
        fields.append(T.StructField(name, dtype, nullable))
    return T.StructType(fields)


@dataclass(frozen=True)
class TableSpec:
    """One Delta table as declared in the catalog."""

    name: str
    layer: str
    path: Location  # a local folder, or a URI
    schema: T.StructType
    partition_by: tuple[str, ...] = ()
    primary_key: tuple[str, ...] = ()
    description: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    # Column descriptions, which become the catalog's column comments.
    comments: dict[str, str] = field(default_factory=dict)
    # CHECK constraints (name to Spark SQL condition), which Delta enforces on every write.
    checks: dict[str, str] = field(default_factory=dict)
    # The columns downstream readers filter by: maintenance Z-orders the files by them.
    cluster_by: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        """The table location as a string (what Spark and delta-rs take)."""
        return str(self.path)

    @property
    def columns(self) -> list[str]:
        """Column names in declared order."""
        return self.schema.fieldNames()


class Catalog:
    """All tables of one lakehouse, looked up by name (``layer.table``)."""

    def __init__(self, tables: dict[str, TableSpec]):
        self._tables = tables

    def __getitem__(self, name: str) -> TableSpec:
        try:
            return self._tables[name]
        except KeyError:
            raise CatalogError(
                f"unknown table {name!r}; the catalog declares: {', '.join(sorted(self._tables))}"
            ) from None

    def __iter__(self) -> Iterator[TableSpec]:
        return iter(self._tables.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def names(self) -> list[str]:
        """Every declared table name."""
        return sorted(self._tables)

    @classmethod
    def load(cls, path: Path, lakehouse: Path, layouts_dir: Path,
             sources: Iterable[tuple[str, str]] = (), published: Mapping[str, dict] | None = None) -> "Catalog":
        """Read the catalog file and place each table under the lakehouse root.

        Args:
            path: ``conf/tables.yaml``.
            lakehouse: root folder (or URI) of the lakehouse.
            layouts_dir: folder of landing layouts.
            sources: ``(source name, layout name)`` of each landing source; each
                gets a bronze table ``bronze.<source>`` with its layout's columns.
            published: catalog entries of the published tables, declared by their
                data contracts (:func:`votelake.contracts.catalog_entries`).

        Returns:
            The catalog.

        Raises:
            CatalogError: a malformed entry, naming the table and key.
        """
        raw = yaml.safe_load(Path(path).read_text()) or {}
        allowed = {"description", "columns", "partition_by", "primary_key", "properties", "comments", "checks",
                   "cluster_by"}
        entries: dict[str, dict] = {}
        for source, layout_name in sources:
            entries[f"bronze.{source}"] = bronze_entry(load_layout(layouts_dir, layout_name))
        entries.update(published or {})
        for name, entry in (raw.get("tables") or {}).items():
            unknown = set(entry) - allowed
            if unknown:
                raise CatalogError(f"table {name}: unknown key(s) {sorted(unknown)}")
            if name in entries:
                raise CatalogError(f"table {name} is declared twice (tables.yaml and a source's layout or "
                                   "a data contract)")
            entries[name] = entry
        tables: dict[str, TableSpec] = {}
        for name, entry in entries.items():
            layer, _, short = name.partition(".")
            if layer not in LAYERS or not short:
                raise CatalogError(f"table {name}: name must be {'|'.join(LAYERS)}.<table>")
            columns: dict[str, str] = dict(entry.get("columns") or {})
            schema = _schema(columns)
            partition_by = tuple(entry.get("partition_by") or ())
            primary_key = tuple(entry.get("primary_key") or ())
            cluster_by = tuple(entry.get("cluster_by") or ())
            missing = [c for c in partition_by + primary_key + cluster_by if c not in columns]
            if missing:
                raise CatalogError(f"table {name}: partition/key columns not in schema: {missing}")
            stats = stats_columns(layer, schema, partition_by)
            tables[name] = TableSpec(
                name=name,
                layer=layer,
                path=join(lakehouse, layer, short),
                schema=schema,
                partition_by=partition_by,
                primary_key=primary_key,
                description=str(entry.get("description", "")),
                properties={**LAYER_PROPERTIES.get(layer, {}), **({STATS_PROPERTY: stats} if stats else {}),
                            **{str(k): str(v) for k, v in (entry.get("properties") or {}).items()}},
                comments={str(k): str(v) for k, v in (entry.get("comments") or {}).items()},
                checks={str(k): str(v) for k, v in (entry.get("checks") or {}).items()},
                cluster_by=cluster_by,
            )
        return cls(tables)


def bronze_entry(layout: Layout) -> dict:
    """The catalog entry of a source's bronze table: its rows as delivered.

    Every layout column as a string, the per-election columns of a wide vote
    history as one map (election column → cell), then the load columns.

    Args:
        layout: the source's layout.

    Returns:
        A catalog entry (``description`` and ``columns``).
    """
    columns = {c: "string" for c in layout.columns}
    if layout.wide_history is not None:
        columns[layout.wide_history.column] = "map<string,string>"
    columns.update(BRONZE_META)
    return {"description": f"{layout.description or layout.name} Rows as delivered.", "columns": columns}
