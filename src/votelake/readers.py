"""Which version of each table readers should use: the run manifest, read with or without Spark.

A job that publishes several tables (build, score, universes, allocate,
metrics) commits them one by one, then appends one commit to
``audit.runs``: a row per table naming the version its run made. That commit
is the run's manifest. A table's **current** version is the one the newest
manifest lists, so a job killed between its commits leaves readers on the
previous complete set; commits made after it that change no run's content
(an erasure, compaction, property changes) still count. A table no manifest
lists is read at its latest version.

This module imports no Spark: downstream teams read the current tables with
deltalake, polars, pandas or DuckDB through :func:`current_table`. The
:class:`votelake.lakehouse.Lakehouse` applies the same rule
(:func:`current_version`) through delta-spark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Mapping

from votelake.locations import join

MANIFEST = "audit.runs"
# Commit metadata naming the job that made a commit (every job write records it).
JOB_KEY = "votelake.job"
# Commits that keep the content of a run: they remove erased persons (forget),
# rewrite files (maintain), or were made by no job (""): a reader of the
# manifest version would miss the first and needs nothing from the others.
CONTENT_KEEPING_JOBS = frozenset({"forget", "maintain", ""})


def table_path(lakehouse: str | Path, name: str) -> str | Path:
    """The folder of ``<layer>.<table>`` under a lakehouse root (a local folder or a URI)."""
    layer, short = name.split(".", 1)
    return join(lakehouse, layer, short)


def manifest_versions(rows: Iterable[Mapping]) -> dict[str, dict]:
    """The newest manifest entry of every table.

    Args:
        rows: ``audit.runs`` rows (``table_name``, ``version``, ``job``,
            ``run_id``, ``completed_at``).

    Returns:
        Table name to its newest row (as a dict); a later ``completed_at``
        wins, and on a tie the higher table version.
    """
    newest: dict[str, dict] = {}
    for row in rows:
        row = dict(row)
        held = newest.get(row["table_name"])
        if held is None or (row["completed_at"], row["version"]) > (held["completed_at"], held["version"]):
            newest[row["table_name"]] = row
    return newest


def current_version(manifest_version: int | None, commits: Iterable[Mapping]) -> int | None:
    """A table's current version: the manifest's, carried past later commits that keep its run's content.

    Args:
        manifest_version: the version the newest manifest lists (None: no manifest lists the table).
        commits: the table's commits, each with ``version`` and ``metadata``
            (commit metadata; ``votelake.job`` names the job).

    Returns:
        The latest version when no manifest lists the table, or when every
        commit after the manifest's was made by a content-keeping job or by no
        job; otherwise the manifest's version (a later run has not completed).
        None for a table without commits.
    """
    commits = list(commits)
    if not commits:
        return None
    latest = max(c["version"] for c in commits)
    if manifest_version is None:
        return latest
    pending = any(c["version"] > manifest_version
                  and (c.get("metadata") or {}).get(JOB_KEY, "") not in CONTENT_KEEPING_JOBS for c in commits)
    return manifest_version if pending else latest


def _commits(table) -> list[dict]:
    """A deltalake table's commits as ``version`` and ``metadata`` (the commit's user metadata)."""
    commits = []
    for entry in table.history():
        raw = entry.get("userMetadata")
        try:
            metadata = json.loads(raw) if raw else {}
        except ValueError:
            metadata = {}
        commits.append({"version": int(entry["version"]),
                        "metadata": metadata if isinstance(metadata, dict) else {}})
    return commits


def _listed(lakehouse: str | Path) -> dict[str, dict]:
    """The newest manifest entry of every table (empty before the first complete run)."""
    from deltalake import DeltaTable

    runs = table_path(lakehouse, MANIFEST)
    if not (runs / "_delta_log").is_dir():
        return {}
    return manifest_versions(DeltaTable(str(runs)).to_pyarrow_table(
        columns=["table_name", "version", "completed_at", "job", "run_id"]).to_pylist())


def _at_current(lakehouse: str | Path, name: str, listed: dict[str, dict]):
    """The table at its current version (deltalake), and its latest version."""
    from deltalake import DeltaTable

    table = DeltaTable(str(table_path(lakehouse, name)))
    latest = table.version()
    version = current_version(listed[name]["version"] if name in listed else None, _commits(table))
    if version != latest:
        table.load_as_version(version)
    return table, latest


def status(lakehouse: str | Path) -> dict[str, dict]:
    """Every table the manifest lists: its current and latest version and the run it belongs to.

    Args:
        lakehouse: the lakehouse root (``storage.lakehouse``).

    Returns:
        Table name to ``current``, ``latest`` (past ``current`` while a run
        is incomplete), ``job``, ``run_id`` and ``completed_at`` (ISO) of the
        newest manifest that lists it; empty before the first complete run.
    """
    listed = _listed(lakehouse)
    found = {}
    for name in sorted(listed):
        table, latest = _at_current(lakehouse, name, listed)
        row = listed[name]
        found[name] = {"current": table.version(), "latest": latest, "job": row["job"], "run_id": row["run_id"],
                       "completed_at": row["completed_at"].isoformat()}
    return found


def current_versions(lakehouse: str | Path) -> dict[str, int]:
    """Every table the manifest lists, with the version readers should use (needs ``deltalake``, not Spark).

    Args:
        lakehouse: the lakehouse root (``storage.lakehouse``).

    Returns:
        Table name to current version; empty before the first complete run.
    """
    return {name: found["current"] for name, found in status(lakehouse).items()}


def current_table(lakehouse: str | Path, name: str):
    """A table at its current version, as a ``deltalake.DeltaTable`` (Spark-free).

    Args:
        lakehouse: the lakehouse root.
        name: ``<layer>.<table>``, e.g. ``gold.voter_scores``.

    Returns:
        The table, loaded at the version the manifest names (or its latest,
        when no manifest lists it): ``.to_pandas()``, ``.to_pyarrow_dataset()``
        (DuckDB), or ``polars.read_delta(path, version=table.version())``.
    """
    return _at_current(lakehouse, name, _listed(lakehouse))[0]
