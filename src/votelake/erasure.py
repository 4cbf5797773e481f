"""Erasure: remove a person from every table, export and stored artifact, and keep them suppressed.

:func:`forget` takes state voter ids, e-mails and phones, finds everyone they
lead to (the persons holding them, and every registration, contact and digital
event of those persons), and then:

1. deletes their rows from every bronze, silver and gold table, in one MERGE per
   table, so the values never enter the Delta log;
2. rewrites the field export files that list them;
3. masks their identifiers in the text artifacts under the output folders
   (quality results and Data Docs, publish reports, MLflow artifacts);
4. appends the request to ``audit.erasures`` as salted hashes, which is also
   the suppression list later universe builds honour;
5. with ``purge``, vacuums the changed tables at once, so no time-travel
   version holds them; otherwise the maintain job's vacuum does it when the
   retention window has passed.

The salt lives beside the tables (``<lakehouse>/_private/erasure.salt``,
owner-only, made on first use) or in ``VOTELAKE_ERASURE_SALT``; without it the
hashes cannot be matched, so it is backed up with the lakehouse.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import exports, locations
from votelake.config import Settings
from votelake.lakehouse import Lakehouse, operator
from votelake.layouts import load_layout
from votelake.transforms import erasure as er
from votelake.transforms.canonicalize import source_value

SALT_ENV = "VOTELAKE_ERASURE_SALT"
SALT_FILE = Path("_private") / "erasure.salt"
AUDIT = "audit.erasures"
MASK = "[erased]"
# Text artifacts a forgotten identifier is masked in (reports, validation results, Data Docs, MLflow files).
TEXT_SUFFIXES = {".json", ".jsonl", ".html", ".htm", ".md", ".txt", ".csv", ".yaml", ".yml", ".log"}
BRONZE_KEY = ("_load_id", "_line")
SOURCE_FIELDS = ("state_voter_id", "email", "phone", "contact_id", "event_id")

# Each loaded source's bronze table: its rows, and the raw value column of each identifying field.
Sources = dict[str, tuple[DataFrame, dict[str, Column]]]

log = logging.getLogger(__name__)


def salt(settings: Settings) -> str:
    """The erasure salt: ``VOTELAKE_ERASURE_SALT``, or the lakehouse's salt file (made owner-only on first use).

    Raises:
        RuntimeError: the salt file exists but stays empty.
    """
    if os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV]
    lakehouse = locations.local_path(settings.storage.lakehouse)
    if lakehouse is None:  # on an object store
        return _stored_salt(locations.join(settings.storage.lakehouse, *SALT_FILE.parts))
    path = lakehouse / SALT_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another forget is writing it
            text = path.read_text().strip()
            if text:
                return text
            time.sleep(0.1)
        raise RuntimeError(f"the erasure salt file {path} is empty") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
    return path.read_text().strip()


def _stored_salt(location: str) -> str:
    """The salt file of a lakehouse on an object store (a URI), written by the first job that needs it.

    An object store has no exclusive create, so two jobs making the file at the
    same moment could each keep their own salt: on a cluster, prefer
    ``VOTELAKE_ERASURE_SALT`` from the scheduler's secrets.
    """
    if locations.kind(location) == "file":
        text = locations.read_bytes(location).decode().strip()
        if text:
            return text
    fs, path = locations.filesystem(location)
    with fs.open_output_stream(path) as out:
        out.write(secrets.token_hex(32).encode())
    return locations.read_bytes(location).decode().strip()


@dataclass(frozen=True)
class Suppression:
    """The salted hashes of every identifier an erasure request named, by kind."""

    hashes: dict[str, frozenset[str]]
    salt: str


def suppression(lake: Lakehouse, settings: Settings, version: int | None = None) -> Suppression | None:
    """What ``audit.erasures`` holds (as of ``version``), for loads and builds to honour.

    Returns:
        None before the first erasure.
    """
    if lake.version(AUDIT) is None:
        return None
    # A few rows per erasure request: its hashed identifiers.
    rows = lake.read(AUDIT, version=version).select("identifier_kind", "identifier_hash").distinct().collect()
    hashes: dict[str, set[str]] = {}
    for kind, digest in rows:
        hashes.setdefault(kind, set()).add(digest)
    return Suppression({k: frozenset(v) for k, v in hashes.items()}, salt(settings))


def _existing(lake: Lakehouse, name: str) -> DataFrame | None:
    return lake.read(name) if lake.version(name) is not None else None


def _values(df: DataFrame | None, condition: Column | None, col: str | Column) -> set[str]:
    """The distinct non-null values of a column on the rows where ``condition`` holds."""
    if df is None or condition is None:
        return set()
    value = (F.col(col) if isinstance(col, str) else col).alias("v")
    # A few values: the ids of the rows an erasure names.
    return {r[0] for r in df.where(condition).select(value).where(F.col("v").isNotNull()).distinct().collect()}


def _sources(lake: Lakehouse, settings: Settings) -> Sources:
    """Each loaded source's bronze rows, with the raw value of each identifying field its layout maps."""
    out = {}
    for src in settings.sources:
        bronze = _existing(lake, f"bronze.{src.name}")
        if bronze is not None:
            layout = load_layout(settings.layouts, src.layout)
            out[f"bronze.{src.name}"] = (bronze, {f: source_value(layout, f) for f in SOURCE_FIELDS
                                                  if layout.source_columns(f)})
    return out


def resolve(lake: Lakehouse, sources: Sources,
            given: er.Targets) -> er.Targets:
    """Everyone the given identifiers lead to, and the ids of all their rows.

    An e-mail or phone leads to every person whose registration holds it, and to
    the persons its contacts and digital events were linked to.

    Args:
        lake: the lakehouse.
        sources: :func:`_sources`.
        given: the identifiers of the request.

    Returns:
        The given identifiers, plus the persons found, every state voter id of
        their registrations, and the ids of their contacts and digital events.
    """
    linked: dict[str, set[str]] = {"contact_id": set(), "event_id": set()}
    for df, values in sources.values():
        condition = er.source_holds({k: c for k, c in values.items() if k in er.KINDS}, given)
        for key in linked:
            if key in values:
                linked[key] |= _values(df, condition, values[key])
    registrations, persons = _existing(lake, "silver.registrations"), _existing(lake, "silver.persons")
    contacts, digital = _existing(lake, "silver.contacts"), _existing(lake, "silver.digital_events")
    by_link = er.Targets(contact_id=frozenset(linked["contact_id"]), event_id=frozenset(linked["event_id"]))
    person_ids: set[str] = set()
    for df, targets in ((registrations, given), (persons, given), (contacts, by_link), (digital, by_link)):
        if df is not None:
            person_ids |= _values(df, er.holds(df.columns, targets), "person_id")
    theirs = er.Targets(person_id=frozenset(person_ids))
    voter_ids = set(given.state_voter_id)
    if person_ids:
        voter_ids |= _values(registrations, er.holds(["person_id"], theirs),
                             er.normalized("state_voter_id", F.col("state_voter_id")))
        for key, df in (("contact_id", contacts), ("event_id", digital)):
            linked[key] |= _values(df, er.holds(["person_id"], theirs), key)
    return er.Targets(state_voter_id=frozenset(voter_ids), email=given.email, phone=given.phone,
                      person_id=frozenset(person_ids), contact_id=frozenset(linked["contact_id"]),
                      event_id=frozenset(linked["event_id"]))


def delete_rows(lake: Lakehouse, sources: Sources, targets: er.Targets,
                request_id: str) -> dict[str, int]:
    """Delete the targets' rows from every table of the catalog (the audit trail aside).

    Args:
        lake: the lakehouse.
        sources: :func:`_sources`.
        targets: :func:`resolve`'s result.
        request_id: recorded with each commit.

    Returns:
        Rows deleted per table that had any.
    """
    deleted: dict[str, int] = {}
    for table in lake.catalog:
        if table.layer == "audit" or not lake.store.exists(table):
            continue
        if table.name in sources:
            df, values = sources[table.name]
            condition, key = er.source_holds(values, targets), BRONZE_KEY
        else:
            df = lake.read(table.name)
            raw = table.name == "bronze.quarantine"
            condition = er.raw_holds(F.col("raw"), targets) if raw else er.holds(df.columns, targets)
            key = BRONZE_KEY if raw or not table.primary_key else table.primary_key
        if condition is None:
            continue
        # Few rows per person: collected, so the MERGE's source is a small local
        # relation and the predicate is not evaluated again inside it.
        keys = df.where(condition).select(*key).distinct()
        rows = keys.collect()
        if not rows:
            continue
        result = lake.store.delete_keys(table, lake.spark.createDataFrame(rows, keys.schema),
                                        metadata={"votelake.erasure": request_id})
        deleted[table.name] = int(result.metrics.get("rows_deleted", 0))
    return deleted


def rewrite_exports(folder: Path, voter_ids: frozenset[str]) -> int:
    """Drop the given voters' rows from every export file under a folder.

    Exports are plain files handed to field tools, outside any table format, so
    they are rewritten here row by row (CSV) or table by table (Parquet), each
    file replaced atomically; a folder's manifest is then counted again.

    Args:
        folder: ``universes.exports``.
        voter_ids: state voter ids in normal form.

    Returns:
        The number of files rewritten.
    """
    if not voter_ids or not folder.is_dir():
        return 0
    rewritten = 0
    folders = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".csv", ".parquet")):
        tmp = path.with_name(f".{path.name}.erasing")
        if path.suffix == ".csv":
            with path.open(newline="") as handle:
                rows = list(csv.reader(handle))
            if not rows or "state_voter_id" not in rows[0]:
                continue
            col = rows[0].index("state_voter_id")
            kept = [rows[0]] + [r for r in rows[1:] if er.normalize("state_voter_id", r[col]) not in voter_ids]
            if len(kept) == len(rows):
                continue
            with tmp.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)
        else:
            data = pq.read_table(path)
            if "state_voter_id" not in data.column_names:
                continue
            ids = pc.utf8_upper(pc.utf8_trim_whitespace(data["state_voter_id"]))
            drop = pc.fill_null(pc.is_in(ids, value_set=pa.array(sorted(voter_ids), type=pa.string())), False)
            if not pc.any(drop).as_py():
                continue
            pq.write_table(data.filter(pc.invert(drop)), tmp)
        _replace(tmp, path)
        rewritten += 1
        folders.add(path.parent)
    for changed in sorted(folders):
        if (changed / exports.MANIFEST).is_file():
            exports.write_manifest(changed)  # its voter counts and checksums follow the files
    return rewritten


def _replace(tmp: Path, path: Path) -> None:
    """Put a rewritten file in place atomically, dropping Spark's checksum of the old bytes (it would fail reads)."""
    tmp.replace(path)
    path.with_name(f".{path.name}.crc").unlink(missing_ok=True)


def masks(targets: er.Targets) -> list[re.Pattern]:
    """Patterns of every written form of the targets' identifiers (a phone with any punctuation)."""
    patterns = [re.compile(rf"(?<![A-Za-z0-9]){re.escape(v)}(?![A-Za-z0-9])", re.I) for v in targets.state_voter_id]
    patterns += [re.compile(re.escape(v), re.I) for v in targets.email]
    for phone in targets.phone:
        if len(phone) == 10:
            spaced = r"[\s().-]{0,2}".join(phone)
            patterns.append(re.compile(rf"(?<!\d)(\+?1[\s.-]?)?\(?{spaced}(?!\d)"))
    return patterns


def mask_text(text: str, patterns: list[re.Pattern]) -> str:
    """The text with every match of the patterns replaced by ``[erased]``."""
    return reduce(lambda t, p: p.sub(MASK, t), patterns, text)


def mask_artifacts(folders: list[Path], patterns: list[re.Pattern]) -> int:
    """Mask the identifiers in every text artifact under the folders (reports, validations, MLflow files).

    Returns:
        The number of files changed.
    """
    changed = 0
    for folder in folders:
        if not patterns or not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES):
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            masked = mask_text(text, patterns)
            if masked != text:
                tmp = path.with_name(f".{path.name}.erasing")
                tmp.write_text(masked, encoding="utf-8", errors="surrogateescape")
                _replace(tmp, path)
                changed += 1
    return changed


def forget(spark: SparkSession, settings: Settings, given: dict[str, list[str]], reason: str,
           purge: bool = False) -> dict:
    """Erase people everywhere and keep them suppressed (see the module docstring).

    Args:
        spark: the session.
        settings: the configuration.
        given: ``{"state_voter_id": [...], "email": [...], "phone": [...]}``.
        reason: why (recorded in the audit table, identifiers masked).
        purge: vacuum the changed tables now (no job may be using them), so
            no earlier version holds the people; otherwise the maintain job's
            vacuum removes those versions after ``maintenance.retention_hours``.

    Returns:
        The request id, persons found, rows deleted per table, export files
        rewritten, artifacts masked, identifiers suppressed, and what the purge
        removed. No identifier appears in it.

    Raises:
        ValueError: no identifier was given.
        RuntimeError: a job run changed some table without completing; readers
            are on an earlier version this erasure could not reach.
    """
    targets = er.Targets.of(given)
    if not any(targets.identifiers().values()):
        raise ValueError("forget needs at least one state voter id, e-mail or phone")
    lake = Lakehouse.open(spark, settings, job="forget")
    pending = lake.incomplete(t.name for t in lake.catalog if t.layer != "audit")
    if pending:
        # Deleting from the latest versions would leave the person in the ones readers use.
        raise RuntimeError("forget stopped before deleting anything: incomplete job runs changed "
                           + ", ".join(f"{name} ({job})" for name, job in sorted(pending.items()))
                           + "; re-run those jobs (votelake run JOB) so readers are on the latest versions, "
                             "then forget again")
    secret = salt(settings)
    request_id = uuid.uuid4().hex
    sources = _sources(lake, settings)
    found = resolve(lake, sources, targets)
    deleted = delete_rows(lake, sources, found, request_id)
    exports = rewrite_exports(settings.universes.exports, found.state_voter_id)
    patterns = masks(found)
    artifacts = mask_artifacts([settings.quality.results_dir, settings.mlflow.artifact_root], patterns)
    vacuumed = {}
    if purge:
        for name in deleted:
            table = lake.table(name)
            lake.store.purge_deleted(table)
            vacuumed[name] = len(lake.store.vacuum(table, retention_hours=0, dry_run=False, force=True))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    who = operator()
    suppressed = [(kind, value) for kind, values in found.identifiers().items() for value in sorted(values)]
    rows = [(request_id, now, who, mask_text(reason, patterns), kind, er.digest(secret, kind, value),
             len(found.person_id), sum(deleted.values()), len(deleted), exports, artifacts, purge)
            for kind, value in suppressed]
    lake.store.write(spark.createDataFrame(rows, lake.table(AUDIT).schema), lake.table(AUDIT), "append",
                     metadata={"votelake.erasure": request_id})
    log.info("erasure %s: %d person(s), %d row(s) deleted from %d table(s)", request_id, len(found.person_id),
             sum(deleted.values()), len(deleted))
    return {"request_id": request_id, "persons": len(found.person_id), "rows_deleted": deleted,
            "exports_rewritten": exports, "artifacts_masked": artifacts, "suppressed_identifiers": len(suppressed),
            "purged": purge, "vacuumed_files": vacuumed,
            "note": None if purge else "earlier table versions keep the rows until the maintain job's vacuum "
                                      f"({settings.maintenance.retention_hours:g} h)"}
