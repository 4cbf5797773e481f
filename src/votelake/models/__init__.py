"""Model life cycle: training, evaluation, registry and scoring; :func:`predict` applies a registered model."""

from votelake.models.inference import model_inputs, predict

__all__ = ["model_inputs", "predict"]
