"""Train job: fit the turnout, support and persuasion models; track, report and gate them in MLflow.

Inputs: ``gold.voter_features``, ``silver.vote_history`` (turnout labels),
``silver.contacts`` (support IDs, experiment outcomes),
``silver.experiment_assignments`` (persuasion experiments).
Outputs: in the MLflow experiments ``<prefix>-turnout``, ``<prefix>-support``
and ``<prefix>-persuasion``, one run per candidate learner (parameters, the
feature table's Delta version, the code version, held-out metrics, the model
with signature and input example, and an HTML report with PNG plots); every
candidate is registered, and the ``champion`` alias moves to it only when it
beats the current champion on the same held-out voters.
Launch: ``spark-submit jobs/train.py --conf conf/local.yaml`` or
``votelake run train``.

Turnout: voter × election examples from the newest
``model.turnout_generals_per_level`` generals of each level (presidential,
midterm, off-year), label = voted in that general, features as of its date (so
only earlier events are used) and its level; the score job predicts the
election ahead at its level. Without a general election in the history the
turnout model is skipped, and says so. Support:
label = survey ID 1-2 (support) vs 4-5 (oppose); features as of the scoring
date. With fewer than ``model.min_labels`` survey IDs, the partisanship proxy
(registered with ``model.our_party`` vs the other main party) is trained
instead. Persuasion: residualised transformed-outcome uplift models
(``model.uplift_learners``: two-stage or lasso) on randomised experiments
(treated vs control), outcome = the latest support ID after assignment,
features as of the assignment date.
``model.kinds`` selects the model types to train; the others keep their champions.

Splits (by a hash of person_id, so stable across runs): ``model.test_fraction``
held out for evaluation and the gate; of the rest, ``model.calibration_fraction``
fits the probability calibration (isotonic, or Platt on small sets) and the
remainder fits the classifier, whose hyperparameters a train-validation split
(or cross-validation) chooses.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from votelake import progress
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.models import lifecycle
from votelake.transforms.training_sets import feature_dates

INPUTS = ("gold.voter_features", "silver.vote_history", "silver.contacts", "silver.experiment_assignments")


def run(spark: SparkSession, settings: Settings) -> dict:
    """Train, evaluate, log, register and gate the turnout, support and persuasion models.

    Args:
        spark: the session.
        settings: the run configuration.

    Returns:
        Per model type: per candidate learner its run, version, metrics and gate verdict.
    """
    lake = Lakehouse.open(spark, settings, job="train")
    cfg = settings.model
    # The latest complete build's tables (a build killed part-way is not read), from one read of the manifest.
    current = lake.current_versions(INPUTS)
    feature_version = current["gold.voter_features"]
    features = lake.read("gold.voter_features", version=feature_version)
    history = lake.read("silver.vote_history", version=current["silver.vote_history"])
    contacts = lake.read("silver.contacts", version=current["silver.contacts"])
    dates = feature_dates(features)
    score_date = dates[-1]
    results: dict = {}

    if "turnout" in cfg.kinds:
        progress.stage(f"training turnout models ({', '.join(cfg.learners)})")
        results["turnout"] = lifecycle.train_turnout(settings, features, history, dates, feature_version)
    if "support" in cfg.kinds:
        progress.stage(f"training support models ({', '.join(cfg.learners)})")
        results["support"] = lifecycle.train_support(settings, features, contacts, score_date, feature_version)
    if "persuasion" in cfg.kinds:
        progress.stage("training the persuasion (uplift) model")
        at = current["silver.experiment_assignments"]
        assignments = lake.read("silver.experiment_assignments", version=at) if at is not None else None
        results["persuasion"] = lifecycle.train_experiments(settings, features, assignments, contacts,
                                                            feature_version)
    return results


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("train", run, __doc__.splitlines()[0], argv)
