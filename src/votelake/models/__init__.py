"""Model life cycle: training, evaluation, registry and scoring; :func:`predict` applies a registered model."""

from votelake.models.inference import predict

__all__ = ["predict"]
