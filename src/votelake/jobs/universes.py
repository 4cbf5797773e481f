"""Universes job: build the configured target universes from the published scores and hand them off.

Inputs: ``gold.voter_scores`` (the published scoring run), ``silver.persons``
(households), ``silver.registrations`` (voter ids named by suppression lists),
``silver.contacts`` and ``silver.digital_events`` (results and events that
suppress a channel), ``gold.voter_segments`` (when a rule selects by
``segment_id`` or ``segment_name``: the segmentation of the scores read),
the do-not-contact lists of ``universes.lists``, and ``audit.erasures``
(everyone erased on request stays out, even when a later voter file lists
them again).
Outputs: ``gold.target_universes`` (every universe's members, ranked within
their turf), ``gold.universe_builds`` (each build's definition and input
versions, kept for good), and per universe the hand-off files under
``universes.exports/<universe>/<build_id>/``: a file per turf named
``<universe>_<county>_<precinct>_<build>.csv`` (or Parquet: county, precinct,
turf rank, state voter id, household, priority) and ``_manifest.csv``.
Launch: ``spark-submit jobs/universes.py --conf conf/local.yaml`` or
``votelake run universes``.

A build is identified by its definitions, the versions of the tables it read
and the SHA-256 of each list, so re-running it unchanged commits nothing (its
run manifest, ``audit.runs``, is written after the hand-off files), and
:func:`rebuild` recomputes any recorded build exactly (time travel to the
recorded versions; the lists must still hash the same).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from functools import reduce
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import erasure, exports, locations, publish, rules
from votelake.config import Settings, UniverseRule
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.locations import Location
from votelake.transforms import erasure as er
from votelake.transforms import universes as uni

INPUTS = {"scores_version": "gold.voter_scores", "persons_version": "silver.persons",
          "registrations_version": "silver.registrations", "contacts_version": "silver.contacts",
          "digital_version": "silver.digital_events", "segments_version": "gold.voter_segments"}
BUILD_KEY = "votelake.build_id"  # commit metadata: the build a publish holds
# The marker of a complete hand-off folder (readers skip names starting with "_").
EXPORTED = "_EXPORTED"
EXPORT_COLUMNS = ("county_id", "precinct", "turf_rank", "state_voter_id", "household_id", "household_voters",
                  "priority")


def sha256(path: Location) -> str:
    """The SHA-256 of a file (a local path or a URI)."""
    digest = hashlib.sha256()
    fs, inner = locations.filesystem(path)
    with fs.open_input_stream(inner) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def suppression_settings(settings: Settings) -> dict:
    """The suppression configuration as recorded with a build (lists by path and SHA-256)."""
    cfg = settings.universes
    missing = [str(p) for p in cfg.lists if locations.kind(p) != "file"]
    if missing:
        raise FileNotFoundError(f"universes.lists: no such file(s): {missing}")
    return {"lists": [{"path": str(p), "sha256": sha256(p)} for p in cfg.lists],
            "contact_results": {k: list(v) for k, v in sorted(cfg.contact_results.items())},
            "digital_events": {k: list(v) for k, v in sorted(cfg.digital_events.items())}}


def read_lists(spark: SparkSession, paths: list[str]) -> DataFrame:
    """The do-not-contact lists: ``state_voter_id, reason`` (empty without lists)."""
    if not paths:
        return spark.createDataFrame([], "state_voter_id string, reason string")
    rows = spark.read.option("header", True).csv(paths)
    if "state_voter_id" not in rows.columns:
        raise ValueError(f"universes.lists: every list needs a state_voter_id column; found {rows.columns}")
    reason = F.col("reason") if "reason" in rows.columns else F.lit(None).cast("string")
    return rows.select(F.trim("state_voter_id").alias("state_voter_id"), reason.alias("reason"))


def build_members(spark: SparkSession, lake: Lakehouse, definitions: dict[str, UniverseRule], versions: dict,
                  suppression: dict, erased: erasure.Suppression | None = None) -> tuple[DataFrame, DataFrame]:
    """Every universe's members from the input tables at the given versions.

    Args:
        spark: the session.
        lake: the lakehouse.
        definitions: the universes by name.
        versions: ``INPUTS`` key → Delta version (None: the table is absent).
        suppression: :func:`suppression_settings`, with the version of
            ``audit.erasures`` under ``erasures``.
        erased: :func:`votelake.erasure.suppression` at that version.

    Returns:
        ``(members, counts)``: the members with ``universe`` and ``channel``,
        and :func:`votelake.transforms.universes.rule_counts` of every universe.
    """
    def read(key: str) -> DataFrame | None:
        version = versions[key]
        return None if version is None else lake.read(INPUTS[key], version=version)

    scores, persons, segments = read("scores_version"), read("persons_version"), read("segments_version")
    if segments is not None:  # read only when a rule selects by segment (see segments_used)
        scores = uni.with_segments(scores, segments)
    empty_contacts = spark.createDataFrame([], "person_id string, result_code string")
    empty_digital = spark.createDataFrame([], "person_id string, event_type string")
    voter_ids = read("registrations_version").select("state_voter_id", "person_id").distinct()
    lists = read_lists(spark, [item["path"] for item in suppression["lists"]])
    if erased is not None:
        lists = lists.unionByName(er.erased_voters(voter_ids, persons.select("person_id", "email", "phone"),
                                                   erased.hashes, erased.salt))
    suppressed = uni.suppressions(
        lists, voter_ids,
        read("contacts_version") or empty_contacts, read("digital_version") or empty_digital,
        {k: tuple(v) for k, v in suppression["contact_results"].items()},
        {k: tuple(v) for k, v in suppression["digital_events"].items()}).localCheckpoint()  # read twice per universe
    households = persons.select("person_id", "household_id")
    parts, counts = [], []
    for name, rule in sorted(definitions.items()):
        members = uni.select_universe(scores, households, suppressed, rule)
        parts.append(members.select(F.lit(name).alias("universe"), F.lit(rule.channel).alias("channel"), "*"))
        counts.append(uni.rule_counts(scores, suppressed, name, rule))
    return reduce(DataFrame.unionByName, parts), reduce(DataFrame.unionByName, counts)


def segments_used(definitions: dict[str, UniverseRule]) -> list[str]:
    """The universes whose rules read a segment column (``segment_id``, ``segment_name``)."""
    return sorted(name for name, rule in definitions.items()
                  if (rules.columns_read(rule.where) | rules.columns_read(rule.priority)) & set(uni.SEGMENT_COLUMNS))


def check_segments(lake: Lakehouse, version: int | None, scoring_run: str, users: list[str]) -> None:
    """Fail unless the published segments segment the scores a build reads.

    Args:
        lake: the lakehouse.
        version: the version of ``gold.voter_segments`` (None: absent).
        scoring_run: the scoring run of the scores read.
        users: the universes selecting by segment.

    Raises:
        RuntimeError: no segments, or segments of another scoring run.
    """
    if version is None:
        raise RuntimeError(f"universe(s) {', '.join(users)} select by segment and gold.voter_segments does not "
                           "exist: run the segment job first")
    # One row: every row of a segmentation names the same scoring run.
    found = lake.read("gold.voter_segments", version=version).select("scoring_run_id").limit(1).collect()
    if not found or found[0][0] != scoring_run:
        raise RuntimeError(f"universe(s) {', '.join(users)} select by segment and gold.voter_segments segments "
                           f"scoring run {found[0][0] if found else None}, not {scoring_run} of the scores: "
                           "run the segment job again")


def _erased(lake: Lakehouse, settings: Settings, suppression: dict) -> erasure.Suppression | None:
    version = suppression.get("erasures")
    return None if version is None else erasure.suppression(lake, settings, version)


def universe_rows(members: DataFrame, build_id: str, scoring_run: str, built_at: dt.datetime) -> DataFrame:
    """``gold.target_universes`` rows (its contract's column order)."""
    return members.select("universe", F.lit(build_id).alias("build_id"), "person_id", "state_voter_id",
                          "household_id", "state", "county_id", "precinct", "channel", "priority", "turf_rank",
                          "household_voters", F.lit(scoring_run).alias("scoring_run_id"),
                          F.lit(built_at).cast("timestamp").alias("built_at"))


def build_id_of(definitions: dict[str, UniverseRule], versions: dict, suppression: dict) -> str:
    """A build's id: a hash of the definitions, the input versions and the list fingerprints."""
    inputs = {"definitions": {n: r.model_dump() for n, r in sorted(definitions.items())}, "versions": versions,
              "suppression": {**suppression, "lists": [i["sha256"] for i in suppression["lists"]]}}
    return publish.fingerprint(inputs)


def export_folder(settings: Settings, name: str, build_id: str) -> Path:
    """Where a universe's hand-off files of a build go."""
    return settings.universes.exports / name / build_id


def exported(settings: Settings, name: str, build_id: str) -> bool:
    """Whether a universe's hand-off of a build is complete: its marker is written after Spark's commit."""
    return (export_folder(settings, name, build_id) / EXPORTED).is_file()


def export(lake: Lakehouse, settings: Settings, version: int, build_id: str, names: list[str]) -> dict[str, str]:
    """Write each named universe's hand-off files (an empty universe too): a file per turf and a manifest.

    Files are named ``<universe>_<county>_<precinct>_<build>.csv`` (see
    :mod:`votelake.exports`).

    Returns:
        The folder of each universe.
    """
    rows = lake.read("gold.target_universes", version=version).where(F.col("build_id") == build_id)
    fmt = settings.universes.export_format
    folders = {}
    for name in names:
        folder = export_folder(settings, name, build_id)
        shutil.rmtree(folder, ignore_errors=True)  # a hand-off cut short is written again whole
        written = folder / "_written"
        county, precinct = exports.TURF_COLUMNS
        # Partitioned by copies of the turf columns, so each file still holds its county and precinct.
        (rows.where(F.col("universe") == name)
         .select(*EXPORT_COLUMNS, F.col("county_id").alias(county), F.col("precinct").alias(precinct))
         .repartition(county, precinct).sortWithinPartitions(county, precinct, "turf_rank")
         .write.mode("overwrite").partitionBy(county, precinct)
         .option("header", True).format(fmt).save(str(written)))
        exports.name_turf_files(written, folder, name, build_id, fmt)
        # Written last: a folder without it was cut short.
        marker = folder / f".{EXPORTED}.tmp"
        marker.write_text(json.dumps({"universe": name, "build_id": build_id}))
        marker.replace(folder / EXPORTED)
        folders[name] = str(folder)
    return folders


def run(spark: SparkSession, settings: Settings) -> dict:
    """Build, publish and export the configured universes.

    Args:
        spark: the session.
        settings: the run configuration (``universes``).

    Returns:
        The build id, per universe the members, voters matching and
        suppressed, the table versions and the export folders; or, when the
        same build is already published, that it was skipped.

    Raises:
        ValueError: a list lacks ``state_voter_id``.
        FileNotFoundError: a suppression list does not exist.
    """
    cfg = settings.universes
    if not cfg.definitions:
        return {"published": False, "reason": "no universe configured (universes.definitions)"}
    lake = Lakehouse.open(spark, settings, job="universes")
    current = lake.current_versions(INPUTS.values())
    versions = {key: current[name] for key, name in INPUTS.items()}
    for key in ("scores_version", "persons_version", "registrations_version"):
        if versions[key] is None:
            raise RuntimeError(f"{INPUTS[key]} does not exist: run the build and score jobs first")
    scoring_run = lake.read("gold.voter_scores", version=versions["scores_version"]).select(
        "scoring_run_id").limit(1).collect()[0][0]  # one value: the run of the scores read
    users = segments_used(cfg.definitions)
    if users:
        check_segments(lake, versions["segments_version"], scoring_run, users)
    else:
        versions["segments_version"] = None  # a new segmentation alone does not change a build that ignores it
    suppression = {**suppression_settings(settings), "erasures": lake.version(erasure.AUDIT)}
    build_id = build_id_of(cfg.definitions, versions, suppression)
    # A build publishes its members, records itself, then exports: a run stopped
    # between these steps is finished by the next, which does only what is left.
    done = lake.run_versions(("gold.target_universes", "gold.universe_builds"), BUILD_KEY, build_id)
    to_export = [name for name in sorted(cfg.definitions) if not exported(settings, name, build_id)]
    if all(v is not None for v in done.values()) and not to_export:
        recorded = lake.complete(build_id, done)  # a run killed after its exports gets its manifest now
        return {"build_id": build_id, "published": False,
                "reason": f"build {build_id} (the same definitions, inputs and lists) is already published"
                          + ("; its run manifest is recorded now" * recorded)}
    built_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    members, counted = build_members(spark, lake, cfg.definitions, versions, suppression,
                                     _erased(lake, settings, suppression))
    version = done["gold.target_universes"]
    if version is None:
        version = lake.publish(universe_rows(members, build_id, scoring_run, built_at), "gold.target_universes",
                               metadata={BUILD_KEY: build_id}).version
    published = lake.read("gold.target_universes", version=version).where(F.col("build_id") == build_id)
    sizes = {r["universe"]: r["members"] for r in published.groupBy("universe").agg(
        F.count("*").alias("members")).collect()}  # one row per universe
    counts = {r["universe"]: r for r in counted.collect()}  # one row per universe
    voters = {name: r["voters"] for name, r in counts.items()}
    suppressed = {name: r["suppressed"] for name, r in counts.items()}
    builds_version = done["gold.universe_builds"]
    if builds_version is None:
        rows = [(build_id, name, json.dumps(rule.model_dump(), sort_keys=True),
                 json.dumps(suppression, sort_keys=True), *[versions[k] for k in INPUTS], version, scoring_run,
                 sizes.get(name, 0), voters.get(name, 0), suppressed.get(name, 0), built_at)
                for name, rule in sorted(cfg.definitions.items())]
        builds = spark.createDataFrame(rows, lake.table("gold.universe_builds").schema)
        if lake.version("gold.universe_builds") is not None:
            builds = lake.read_current("gold.universe_builds").unionByName(builds)
        # Few rows (one per universe and build), fixed before the publish overwrites their table.
        builds_version = lake.publish(builds.localCheckpoint(), "gold.universe_builds",
                                      metadata={BUILD_KEY: build_id}).version
    export(lake, settings, version, build_id, to_export)
    # Written last: readers move to this build's tables together, once its hand-off files are whole.
    lake.complete(build_id, {"gold.target_universes": version, "gold.universe_builds": builds_version})
    folders = {name: str(export_folder(settings, name, build_id)) for name in cfg.definitions}
    return {
        "build_id": build_id, "published": True,
        "already_done": sorted([n for n, v in done.items() if v is not None]),
        "tables": {"gold.target_universes": version, "gold.universe_builds": builds_version},
        "universes": {name: {"members": int(sizes.get(name, 0)),
                             "voters_matching": int(voters.get(name, 0)), "suppressed": int(suppressed.get(name, 0)),
                             "export": folders.get(name)} for name in sorted(cfg.definitions)},
        "inputs": versions,
        "quality": lake.quality_report(),
    }


def rebuild(spark: SparkSession, settings: Settings, build_id: str) -> DataFrame:
    """Recompute a recorded build's ``gold.target_universes`` rows from its recorded inputs.

    Args:
        spark: the session.
        settings: the run configuration (the lakehouse).
        build_id: a build in ``gold.universe_builds``.

    Returns:
        The rows, as the build published them.

    Raises:
        KeyError: no such build.
        ValueError: a suppression list changed since the build (its SHA-256 differs).
    """
    lake = Lakehouse.open(spark, settings)
    # One row per universe of the build.
    records = lake.read_current("gold.universe_builds").where(F.col("build_id") == build_id).collect()
    if not records:
        raise KeyError(f"no universe build {build_id} in gold.universe_builds")
    first = records[0]
    versions = {key: first[key] for key in INPUTS}
    suppression = json.loads(first["suppression"])
    for item in suppression["lists"]:
        if sha256(Path(item["path"])) != item["sha256"]:
            raise ValueError(f"suppression list {item['path']} changed since build {build_id}")
    definitions = {r["universe"]: UniverseRule.model_validate(json.loads(r["definition"])) for r in records}
    members, _ = build_members(spark, lake, definitions, versions, suppression, _erased(lake, settings, suppression))
    return universe_rows(members, build_id, first["scoring_run_id"], first["built_at"])


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("universes", run, __doc__.splitlines()[0], argv)
