"""Synth job: generate a synthetic state's landing files and ground truth.

Inputs: none (``synth`` section of the config: voters, seed, out, partitions).
Outputs: ``<out>/landing/{ncvoter,ncvhis,contacts,experiments,digital}/`` in the
layouts of ``conf/layouts/`` and ``<out>/truth/`` (Parquet; never read by the
pipeline, only by tests and evaluation).
Launch: ``votelake synth --voters 200000 --seed 42 --out data/synth`` or
``spark-submit jobs/synth.py --conf conf/local.yaml --set synth.voters=5000``.
"""

from __future__ import annotations

import dataclasses

from pyspark.sql import SparkSession

from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.synth import generate


def run(spark: SparkSession, settings: Settings) -> dict:
    """Generate the synthetic state.

    Args:
        spark: the session.
        settings: the run configuration (``synth`` and ``layouts``).

    Returns:
        Row counts per output and where they were written.
    """
    report = generate(spark, settings.synth, settings.layouts)
    return {k: str(v) if not isinstance(v, (int, float, dict)) else v for k, v in dataclasses.asdict(report).items()}


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("synth", run, __doc__.splitlines()[0], argv)
