"""MLflow tracking and registry: experiments, runs, registered models, aliases."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from votelake.config import MlflowSettings

CHAMPION = "champion"


@dataclass(frozen=True)
class ChampionModel:
    """A registered model version loaded for scoring."""

    name: str
    version: str
    run_id: str
    model: object  # a fitted pyspark.ml PipelineModel

    @property
    def label(self) -> str:
        """``name/version``, as written into the scores table."""
        return f"{self.name}/{self.version}"


def configure(settings: MlflowSettings) -> MlflowClient:
    """Point MLflow at the configured tracking store and registry.

    Args:
        settings: the MLflow section of the configuration.

    Returns:
        A client for that store.
    """
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def experiment_id(settings: MlflowSettings, kind: str) -> str:
    """Get or create the experiment of one model type (``<prefix>-<kind>``).

    Args:
        settings: the MLflow section; new experiments store artifacts under
            ``artifact_root``.
        kind: ``turnout`` or ``support``.

    Returns:
        The experiment id.
    """
    name = f"{settings.experiment_prefix}-{kind}"
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = Path(settings.artifact_root) / name
    return mlflow.create_experiment(name, artifact_location=location.resolve().as_uri())


def registered_name(settings: MlflowSettings, kind: str) -> str:
    """The registry name of one model type."""
    return f"{settings.experiment_prefix}-{kind}"


def load_champion(settings: MlflowSettings, kind: str) -> ChampionModel:
    """Load the version of a registered model that carries the ``champion`` alias.

    Args:
        settings: the MLflow section.
        kind: ``turnout`` or ``support``.

    Returns:
        The model with its version and run id.

    Raises:
        RuntimeError: no champion is registered yet (run the train job first).
    """
    client = configure(settings)
    name = registered_name(settings, kind)
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException as exc:
        raise RuntimeError(
            f"no '{CHAMPION}' version of model {name} in {settings.tracking_uri}; run the train job first"
        ) from exc
    model = mlflow.spark.load_model(f"models:/{name}@{CHAMPION}")
    return ChampionModel(name=name, version=str(version.version), run_id=version.run_id, model=model)
