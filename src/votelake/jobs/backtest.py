"""Backtest job: predict past generals out of time and compare with who voted.

Inputs: ``silver.persons``, ``silver.vote_history``, ``silver.contacts`` and
``silver.digital_events`` (from the build job).
Outputs: one MLflow run per backtested general in the experiment
``<prefix>-backtest`` (AUC, calibration error and log loss per learner,
beside the share-of-past-generals baseline); the job's summary holds the figures.
Launch: ``spark-submit jobs/backtest.py --conf conf/oh_2021.yaml`` or
``votelake run backtest``.

For each general of ``model.backtest_elections`` (default: the latest
presidential and the latest midterm general in the history), the turnout model
is fitted as the train job fits it, on the generals before it only, and scores
its voters with features as of its date (:mod:`votelake.models.backtest`).
Nothing is registered: the champions are untouched.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.models import backtest, tracking
from votelake.transforms import features as feat


def run(spark: SparkSession, settings: Settings) -> dict:
    """Backtest the turnout model on past generals.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Per election (ISO date): :func:`votelake.models.backtest.turnout_backtest`'s
        figures and the MLflow run id.
    """
    lake = Lakehouse.open(spark, settings)
    persons, history = lake.read_current("silver.persons"), lake.read_current("silver.vote_history")
    contacts, digital = lake.read_current("silver.contacts"), lake.read_current("silver.digital_events")
    results = {}
    for election in backtest.backtest_generals(feat.known_elections(history), list(settings.model.backtest_elections)):
        result = backtest.turnout_backtest(settings, persons, history, contacts, digital, election)
        result["run_id"] = tracking.log_backtest(settings.mlflow, result)
        results[result["election"]] = result
    return results


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("backtest", run, __doc__.splitlines()[0], argv)
