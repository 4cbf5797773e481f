"""Score job: per-voter turnout, support and persuasion scores for every active voter.

Inputs: ``gold.voter_features`` (the latest as-of date) and the MLflow models
``<prefix>-turnout@champion``, ``<prefix>-support@champion`` and
``<prefix>-persuasion@champion``; with ``calibration.results`` set, also the
MEDSL precinct results of an election, ``silver.vote_history`` (the default
election: the latest general) and ``silver.persons`` (county names).
Outputs: ``gold.voter_scores`` (one row per active voter; no names, addresses,
phones, e-mails or birth dates) and ``gold.precinct_calibration`` (the
precinct shifts), each published under its data contract
(``conf/contracts``) in one commit per scoring run; earlier runs stay
readable by Delta time travel. Gate reports go to ``quality.results_dir``
(``publish/<scoring run>.md``).
Launch: ``spark-submit jobs/score.py --conf conf/local.yaml`` or
``votelake run score``.

Publishing: a scoring run is identified by its inputs (feature version, as-of
date, champion models, calibration settings;
:func:`votelake.transforms.scores.scoring_run_id`), so re-running an
unchanged run commits nothing. Its run manifest (``audit.runs``), written
last, moves readers to both tables at once; a stopped run is finished by the
next. Before a run replaces the published one, its rows must match the
contract (columns, types, ranges, no direct identifiers;
:meth:`votelake.lakehouse.Lakehouse.publish`) and its score distributions,
statewide and per county, must stay within ``publish.*`` of the published
run's (:func:`votelake.publish.distribution_gate`, Great Expectations);
otherwise nothing is published and the report says why, unless
``publish.force`` is set with a reason, which the commit records.

Calibration to known totals (:func:`votelake.models.totals.calibrate_to_results`):
the turnout and support champions also score the voters as of the election
date, per-precinct logit shifts make those predictions add up to the
precinct's ballots cast and the contest's two-party vote, and the same
shifts are applied to today's probabilities. With
``model.target_election.expected_turnout`` declared, one more logit shift
sets the published turnout's mean to it. ``turnout_prob``/``support_prob``
publish the shifted probabilities, ``*_prob_model`` keep the model's.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import progress, publish
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.models import scoring, tracking
from votelake.transforms import features as feat
from votelake.transforms import scores
from votelake.transforms.training_sets import feature_dates

# The tables a scoring run publishes, in order.
TABLES = ("gold.voter_scores", "gold.precinct_calibration")
# The published columns whose means the summary reports (as ``mean_<column>``), in its order.
MEANS = ("turnout_prob", "support_prob", "turnout_prob_model", "support_prob_model", "persuasion_uplift")


def run(spark: SparkSession, settings: Settings) -> dict:
    """Score every active voter with the champion models, calibrate to precinct results when configured, publish.

    A model type without a champion (e.g. turnout for a voter file without
    vote history) leaves its columns null and is not calibrated; with no
    champion at all the job fails.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Rows written, table version, models used, score means (published and
        model), and with calibration: the election, the precincts matched and
        unmatched, and the precinct error before and after per model kind.

    Raises:
        RuntimeError: no model of any type has a champion.
        FileNotFoundError: ``calibration.results`` does not exist.
        ValueError: calibration needs ``calibration.election_date`` (no vote history).
    """
    lake = Lakehouse.open(spark, settings, job="score")
    feature_version = lake.current("gold.voter_features")
    features = lake.read("gold.voter_features", version=feature_version)
    as_of = feature_dates(features)[-1]
    target = scoring.target_of(settings, as_of)
    current = feat.with_target_election(features.where((F.col("as_of_date") == F.lit(as_of)) & F.col("is_active")),
                                        target)
    progress.stage("loading the champion models")
    models, specs, missing = scoring.load_champions(settings, as_of)
    target_json = scoring.target_summary(settings, target)
    scoring_run = scores.scoring_run_id(feature_version, as_of, models, settings.calibration.model_dump(mode="json"),
                                        target_json, tracking.code_version())
    published = publish.published_run(lake)
    done = lake.run_versions(TABLES, publish.SCORING_RUN_KEY, scoring_run)
    if all(v is not None for v in done.values()):
        # The same features, models and calibration: the published tables are this run's
        # (a run killed after its last publish gets its manifest now).
        version, recorded = done["gold.voter_scores"], lake.complete(scoring_run, done)
        return {"table": lake.table("gold.voter_scores").uri, "version": version, "published": False,
                "reason": f"scoring run {scoring_run} is already published (version {version})"
                          + ("; its run manifest is recorded now" * recorded),
                "scoring_run": scoring_run, "as_of_date": as_of.isoformat(),
                "models": {k: m.label for k, m in models.items()}}
    predictions = {kind: scoring.apply_model(m.model, specs[kind], current, bounded=True)
                   for kind, m in models.items()}
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)

    probabilities, shift_rows, summary_calibration = scoring.calibrated_probabilities(
        settings, lake, features, current, models, specs, predictions, scoring_run, scored_at)
    probabilities, turnout_level = scoring.at_expected_turnout(probabilities, target_json.get("expected_turnout"))
    rows = scores.voter_scores(current, probabilities, models, feature_version, scoring_run, scored_at)
    gate: dict = {}
    tags = {"votelake.as_of": str(as_of), publish.SCORING_RUN_KEY: scoring_run}
    def drift(scored: DataFrame) -> dict[str, str]:
        return publish.distribution_gate(lake, settings, scored, scoring_run, published, gate)

    # A run stopped between its two publishes left the scores on this run: publish what is left.
    version, committed = done["gold.voter_scores"], False
    if version is None:
        result = lake.publish(rows, "gold.voter_scores", metadata=tags, before_write=drift)
        version, committed = result.version, result.committed
    # Every publish replaces the shifts: none (empty) when nothing was calibrated.
    written = lake.publish(shift_rows, "gold.precinct_calibration", metadata=tags)
    if isinstance(summary_calibration, dict):
        summary_calibration["table"] = {"uri": lake.table("gold.precinct_calibration").uri,
                                        "version": written.version, "rows": written.rows}
    # Written last: readers move to this run's tables together.
    lake.complete(scoring_run, {"gold.voter_scores": version, "gold.precinct_calibration": written.version})
    # One row: the published table's row count and mean scores, for the summary.
    means = lake.read("gold.voter_scores", version=version).agg(
        F.count("*").alias("rows"), *[F.avg(c).alias(c) for c in MEANS]).first()
    return {
        "table": lake.table("gold.voter_scores").uri,
        "version": version,
        "published": committed,
        "scoring_run": scoring_run,
        "gate": gate,
        "rows": means["rows"],
        **{f"mean_{c}": None if means[c] is None else round(means[c], 4) for c in MEANS},
        "as_of_date": as_of.isoformat(),
        "target_election": target_json,
        "models": {k: m.label for k, m in models.items()},
        "not_scored": {k: "no champion model" for k in missing},
        "calibration": summary_calibration,
        "turnout_level": turnout_level,
        "quality": lake.quality_report(),
        "mlflow": settings.mlflow.tracking_uri,
    }


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("score", run, __doc__.splitlines()[0], argv)
