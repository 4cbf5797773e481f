"""Predict with a registered model: the one documented way, from the feature table as stored.

The models are Spark ML pipelines that expect their inputs typed as they were
fitted (numbers as doubles, categories as strings: :func:`propensity.model_frame`).
``mlflow.pyfunc`` checks the stored feature table against the signature and
refuses it (``county_id`` is an integer there); this helper prepares the rows
and applies the model as the score job does.
"""

from __future__ import annotations

from typing import Sequence

from pyspark.sql import DataFrame

from votelake.config import Settings, load_settings
from votelake.models import propensity as prop
from votelake.models import scoring, tracking

KEEP = ("person_id", "as_of_date")


def predict(features: DataFrame, kind: str = "turnout", *, settings: Settings | None = None,
            version: str | None = None, keep: Sequence[str] = KEEP) -> DataFrame:
    """Apply a model type's champion (or one registered version) to feature rows.

    The probability is the model's own, calibrated as it was trained. The
    published ``gold.voter_scores`` may also be shifted to precinct results
    (``calibration``), which this does not do.

    Args:
        features: rows of ``gold.voter_features`` as stored (e.g.
            ``spark.table("gold.voter_features")``; pick one ``as_of_date``
            to score one day).
        kind: ``turnout``, ``support`` or ``persuasion``.
        settings: the configuration naming the MLflow store (default: the
            packaged one, as ``votelake`` reads it from the current folder).
        version: a registered version of ``<prefix>-<kind>``; default the champion.
        keep: columns of ``features`` kept beside the prediction.

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
    return scoring.apply_model(model, spec, features, passthrough=tuple(keep), bounded=True)
