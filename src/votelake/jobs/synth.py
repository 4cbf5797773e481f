"""Synth job: generate a synthetic state's landing files and ground truth.

Inputs: none (``synth`` section of the config: voters, seed, out, partitions).
Outputs: ``<out>/landing/{ncvoter,ncvhis,contacts,experiments,digital}/`` in the
layouts of ``conf/layouts/`` and ``<out>/truth/`` (Parquet; never read by the
pipeline, only by tests and evaluation).
Launch: ``votelake synth --voters 200000 --seed 42 --out data/synth`` or
``spark-submit jobs/synth.py --conf conf/local.yaml --set synth.voters=5000``.

``votelake synth --next-delivery [--days 7] [--change-rate 0.01]`` instead
writes the state's next delivery beside the first (:func:`next_delivery`): a
snapshot ``--days`` later in which ``--change-rate`` of the registrations on
the rolls moved, were added, removed or renamed, and one more day of contacts
and digital events.
"""

from __future__ import annotations

import dataclasses

from pyspark.sql import SparkSession

from votelake import progress
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.synth import generate
from votelake.synth.next_delivery import write_next_delivery


def run(spark: SparkSession, settings: Settings) -> dict:
    """Generate the synthetic state.

    Args:
        spark: the session.
        settings: the run configuration (``synth`` and ``layouts``).

    Returns:
        Row counts per output and where they were written.
    """
    progress.stage(f"writing {settings.synth.voters:,} voters' landing files")
    report = generate(spark, settings.synth, settings.layouts)
    return {k: str(v) if not isinstance(v, (int, float, dict)) else v for k, v in dataclasses.asdict(report).items()}


def next_delivery(spark: SparkSession, settings: Settings, days: int = 7, rate: float = 0.01) -> dict:
    """Write the synthetic state's next delivery into its landing folder.

    Args:
        spark: the session.
        settings: the run configuration (``landing``, ``synth.seed``, ``synth.partitions``,
            ``synth.out`` for the truth of the changes).
        days: days from the newest snapshot to the new one.
        rate: the share of registrations on the rolls that change.

    Returns:
        The delivery's dates, changes per kind, rows and folders written.
    """
    progress.stage("writing the next delivery")
    delivery = write_next_delivery(spark, settings.landing, settings.layouts, settings.synth.seed,
                                   settings.synth.partitions, truth=settings.synth.out / "truth", days=days, rate=rate)
    return {k: v if isinstance(v, (int, float, dict)) else str(v) for k, v in dataclasses.asdict(delivery).items()}


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("synth", run, __doc__.splitlines()[0], argv)
