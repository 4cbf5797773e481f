"""Top-level synthetic state generation: build every output, then write it.

:func:`build_frames` is pure (DataFrames only, no I/O); :func:`generate` is the
only function that writes. Row counts are read back from the written files
(cheap: no columns are parsed), so the report states what is on disk.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake.config import SynthSettings
from votelake.layouts import load_layout
from votelake.synth import campaign, history, reference, voters
from votelake.synth.plan import keep_where
from votelake.synth.reference import SNAPSHOT_DATE

# Output name -> (relative path, format). Landing files mimic what arrives from
# outside; truth tables are for tests and evaluation only.
# The voter file's folder names its snapshot date, as a state's file name does,
# so that ingest dates the snapshot (``snapshot_date_pattern`` of the source).
# ``results`` (precinct results of the latest general, MEDSL format, one CSV)
# is published data read by calibration code, not an ingest source.
OUTPUTS: dict[str, tuple[str, str]] = {
    "ncvoter": (f"landing/ncvoter/snapshot_{SNAPSHOT_DATE:%Y%m%d}", "tsv"),
    "ncvhis": ("landing/ncvhis", "tsv"),
    "contacts": ("landing/contacts", "csv"),
    "experiments": ("landing/experiments", "csv"),
    "digital": ("landing/digital", "jsonl"),
    "results": ("landing/results", "csv"),
    "truth_registrations": ("truth/registrations", "parquet"),
    "truth_persons": ("truth/persons", "parquet"),
    "truth_contacts": ("truth/contacts", "parquet"),
    "truth_digital": ("truth/digital", "parquet"),
}
TRUTH_KINDS = ("registrations", "persons", "contacts", "digital")


STAGE_DIR = "_stage"
PARTITION_KEYS = {"ncvoter": "ncid", "ncvhis": "ncid"}


@dataclass(frozen=True)
class SynthReport:
    """What :func:`generate` wrote.

    Attributes:
        persons: number of synthetic persons.
        rows: row count per output name (see ``OUTPUTS``).
        paths: absolute output folder per output name.
    """

    persons: int
    rows: dict[str, int] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def build_registrations(spark: SparkSession, settings: SynthSettings) -> DataFrame:
    """Build the wide registration table every output derives from (no I/O).

    Args:
        spark: the session (used for ``range`` and the small reference tables).
        settings: voters, seed, partitions.

    Returns:
        :func:`voters.registrations` output: one row per ncvoter row with the
        person's latent traits.
    """
    seed, n, parts = settings.seed, settings.voters, settings.partitions
    counties = reference.county_table(spark, n, seed)
    buckets = reference.county_buckets(spark)
    people = voters.persons(spark.range(n, numPartitions=parts), counties, buckets, seed)
    return voters.registrations(people, counties, seed, n)


def truth_persons(regs: DataFrame) -> DataFrame:
    """The ground truth per person: the true probabilities every outcome is drawn from.

    Args:
        regs: :func:`voters.registrations` output.

    Returns:
        ``person_id, p_turnout (the next general, a midterm), p_presidential, p_support, uplift,
        p_primary, p_municipal``, one
        row per person (from their current registration row).
    """
    return keep_where(regs, F.col("kind") == voters.KIND_CURRENT).select(
        "person_id", "p_turnout", "p_presidential", "p_support", "uplift", "p_primary", "p_municipal")


def build_outputs(spark: SparkSession, settings: SynthSettings, layouts_dir: Path,
                  regs: DataFrame) -> dict[str, DataFrame]:
    """Build every synthetic output from the registration table (no I/O).

    Args:
        spark: the session.
        settings: voters, seed, partitions, ID-program, experiment and follow-up shares.
        layouts_dir: folder of layout YAML files.
        regs: :func:`build_registrations` output (or a stored copy of it).

    Returns:
        Output name -> DataFrame, in the column order of its layout.
    """
    seed, n, parts = settings.seed, settings.voters, settings.partitions
    elections = reference.election_table(spark)
    ncvoter_cols = load_layout(layouts_dir, "nc_ncvoter").columns
    ncvhis_cols = load_layout(layouts_dir, "nc_ncvhis").columns
    contact_cols = load_layout(layouts_dir, "contacts").columns
    digital_cols = load_layout(layouts_dir, "digital").columns
    events = history.vote_events(regs, elections, seed)
    assigned = campaign.experiment_assignment(campaign.audience(regs), seed, settings.experiment_share)
    contacts = campaign.contact_attempts(assigned, seed, settings.followup_share, settings.id_share)
    digital = campaign.digital_events(
        campaign.digital_audience(spark, campaign.audience(regs), n, parts, seed), seed)
    return {
        "ncvoter": voters.to_ncvoter(regs, ncvoter_cols, seed),
        "ncvhis": history.to_ncvhis(events, ncvhis_cols, seed),
        "contacts": contacts.select(*contact_cols),
        "experiments": campaign.to_experiments(assigned),
        "digital": digital.select(*digital_cols),
        "results": history.to_results(events, history.latest_general(), seed),
        "truth_registrations": voters.to_truth_registrations(regs),
        "truth_persons": truth_persons(regs),
        "truth_contacts": contacts.select("contact_id", "person_id"),
        "truth_digital": digital.select("event_id", "person_id"),
    }


def build_frames(spark: SparkSession, settings: SynthSettings, layouts_dir: Path) -> dict[str, DataFrame]:
    """Build every synthetic output as a DataFrame, without writing anything.

    Convenient for tests and small runs; :func:`generate` instead stores the
    registration table once so the persons are not recomputed for every output.

    Args:
        spark: the session (used for ``range`` and the small reference tables).
        settings: voters, seed, partitions.
        layouts_dir: folder of layout YAML files.

    Returns:
        Output name -> DataFrame, in the column order of its layout.
    """
    return build_outputs(spark, settings, layouts_dir, build_registrations(spark, settings))


def read_truth(spark: SparkSession, out: Path) -> dict[str, DataFrame]:
    """The ground truth of a generated state, for evaluation.

    Args:
        spark: the session.
        out: the generator's output folder (``synth.out``).

    Returns:
        ``registrations``, ``persons`` (one row per person with the true
        probabilities), ``contacts`` and ``digital`` truth frames.
    """
    return {kind: spark.read.parquet(str(out / OUTPUTS[f"truth_{kind}"][0])) for kind in TRUTH_KINDS}


def _write(df: DataFrame, path: Path, fmt: str) -> None:
    writer = df.write.mode("overwrite")
    if fmt in ("tsv", "csv"):
        # Empty strings stay empty (not ""), as in the state's files; stray
        # whitespace is part of the mess and must not be trimmed by the writer.
        (writer.option("sep", "\t" if fmt == "tsv" else ",").option("header", True)
         .option("ignoreLeadingWhiteSpace", False).option("ignoreTrailingWhiteSpace", False)
         .option("emptyValue", "").option("nullValue", "").csv(str(path)))
    elif fmt == "jsonl":
        # Every line carries every key, null when the platform has no value.
        writer.option("ignoreNullFields", False).json(str(path))
    else:
        writer.parquet(str(path))


def _count_written(spark: SparkSession, path: Path, fmt: str) -> int:
    # Observation would avoid the re-read, but in Spark 4.1 it leaves the session
    # unable to serialize later RDD-based jobs (MLlib evaluators fail).
    if fmt in ("tsv", "csv"):
        return spark.read.option("header", True).option("sep", "\t" if fmt == "tsv" else ",").csv(str(path)).count()
    if fmt == "jsonl":
        return spark.read.text(str(path)).count()
    return spark.read.parquet(str(path)).count()


def generate(spark: SparkSession, settings: SynthSettings, layouts_dir: Path) -> SynthReport:
    """Generate the synthetic state and write it under ``settings.out``.

    Args:
        spark: the session.
        settings: voters, seed, output folder, partitions.
        layouts_dir: folder of layout YAML files.

    Returns:
        A :class:`SynthReport` with the row count and path of every output.
    """
    out = Path(settings.out).expanduser().resolve()
    # Every output derives from the registration table; storing it once (Parquet,
    # removed at the end) avoids recomputing all persons for each output.
    stage = out / STAGE_DIR / "registrations"
    build_registrations(spark, settings).write.mode("overwrite").parquet(str(stage))
    frames = build_outputs(spark, settings, layouts_dir, spark.read.parquet(str(stage)))
    rows: dict[str, int] = {}
    paths: dict[str, Path] = {}
    for name, df in frames.items():
        rel, fmt = OUTPUTS[name]
        if name in PARTITION_KEYS:
            # Reading the stage back may pack files into fewer partitions; the
            # state's files come in settings.partitions parts, split by a stable key.
            df = df.repartition(settings.partitions, PARTITION_KEYS[name])
        _write(df, out / rel, fmt)
        rows[name] = _count_written(spark, out / rel, fmt)
        paths[name] = out / rel
    shutil.rmtree(out / STAGE_DIR, ignore_errors=True)
    return SynthReport(persons=settings.voters, rows=rows, paths=paths)
