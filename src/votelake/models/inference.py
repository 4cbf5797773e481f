"""Predict with a registered model: the one documented way, from the feature table as stored.

The models are Spark ML pipelines that expect their inputs typed as they were
fitted (numbers as doubles, categories as strings: :func:`propensity.model_frame`).
``mlflow.pyfunc`` checks the stored feature table against the signature and
refuses it (``county_id`` is an integer there); this helper prepares the rows
and applies the model as the score job does.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from votelake.config import Settings, load_settings
from votelake.models import propensity as prop
from votelake.models import scoring, tracking
from votelake.transforms import features as feat
from votelake.transforms.training_sets import feature_dates

KEEP = ("person_id", "as_of_date")


def predict(features: DataFrame, kind: str = "turnout", *, settings: Settings | None = None,
            version: str | None = None, keep: Sequence[str] = KEEP, as_of: dt.date | None = None) -> DataFrame:
    """Apply a model type's champion (or one registered version) to feature rows.

    Rows of the feature table are scored as the score job scores them: those
    of one as-of date, with the inputs that name the election predicted
    (``model.target_election``, else the next general).
    The probability is the model's own, calibrated as it was trained. The
    published ``gold.voter_scores`` may also be shifted to precinct results
    (``calibration``), which this does not do.

    Args:
        features: rows of ``gold.voter_features`` as stored (e.g.
            ``spark.table("gold.voter_features")``), or any rows holding the
            model's inputs (without ``as_of_date`` they are scored as they are).
        kind: ``turnout``, ``support`` or ``persuasion``.
        settings: the configuration naming the MLflow store (default: the
            packaged one, as ``votelake`` reads it from the current folder).
        version: a registered version of ``<prefix>-<kind>``; default the champion.
        keep: columns of ``features`` kept beside the prediction.
        as_of: the as-of date scored (default the newest in ``features``).

    Returns:
        ``keep`` and ``p`` (the probability of the positive class, or for
        persuasion the predicted uplift in [-1, 1]); a classifier adds
        ``p_raw``, its probability before calibration.

    Raises:
        ValueError: ``kind`` is not a model type.
        RuntimeError: the model type has no champion (and no ``version`` was given).
    """
    if kind not in prop.SPECS:
        raise ValueError(f"kind must be one of {', '.join(prop.SPECS)}, not {kind!r}")
    settings = settings or load_settings()
    if version is None:
        champion, run, spec = scoring.load_champion(settings, kind)
        model = champion.model
    else:
        client = tracking.configure(settings.mlflow)
        name = tracking.registered_name(settings.mlflow, kind)
        run = client.get_run(client.get_model_version(name, version).run_id)
        model, spec = tracking.load_version(name, version), scoring.spec_from_run(run, kind)
    return scoring.apply_model(model, spec, model_inputs(features, settings, as_of), passthrough=tuple(keep),
                               bounded=True)


def model_inputs(features: DataFrame, settings: Settings, as_of: dt.date | None = None) -> DataFrame:
    """Feature-table rows as the models read them: one as-of date, with the inputs naming the election predicted.

    Args:
        features: rows of ``gold.voter_features``; rows without ``as_of_date`` are returned as they are.
        settings: the configuration (``model.target_election``; else the next general is predicted).
        as_of: the as-of date (default the newest in ``features``).

    Returns:
        The rows of ``as_of`` with ``target_level``, ``same_level_rate`` and
        ``voted_last_same_level``, and age and tenure at the election.
    """
    if "as_of_date" not in features.columns:
        return features
    as_of = as_of or feature_dates(features)[-1]
    return feat.with_target_election(features.where(F.col("as_of_date") == F.lit(as_of)),
                                     scoring.target_of(settings, as_of))
