"""MLflow tracking and registry: experiments, runs, registered models, aliases."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.tracking import MlflowClient

from votelake import __version__
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


def register(name: str, model_info) -> str:
    """Register a logged model as a new version of ``name``, creating the registered model once.

    The registry's client calls, not ``log_model(registered_model_name=...)``:
    that path prints its progress to standard error, outside logging.

    Args:
        name: the registered model's name.
        model_info: what ``mlflow.<flavor>.log_model`` returned.

    Returns:
        The new version's number.
    """
    client = MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    return str(client.create_model_version(name, model_info.model_uri, run_id=model_info.run_id,
                                           model_id=model_info.model_id).version)


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


def code_version() -> str:
    """The git commit of the code that is running, or the package version outside a checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"votelake {__version__}"
    return head or f"votelake {__version__}"


def champion_version(client: MlflowClient, name: str):
    """The registered version carrying the ``champion`` alias, or None.

    Args:
        client: the registry client.
        name: the registered model name.

    Returns:
        An MLflow ``ModelVersion`` or ``None`` (no model or no alias yet).
    """
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def load_version(name: str, version: str):
    """Load one registered version of a Spark model (a fitted ``PipelineModel``)."""
    return mlflow.spark.load_model(f"models:/{name}/{version}")


def promote(client: MlflowClient, name: str, version: str) -> None:
    """Give a registered version the ``champion`` alias (scoring loads ``models:/<name>@champion``)."""
    client.set_registered_model_alias(name, CHAMPION, version)


RESOLUTION_ARTIFACT = "splink_model.json"


def log_resolution_model(settings: MlflowSettings, kind: str, model_json: str, params: dict,
                         metrics: dict[str, float]) -> str:
    """Version a trained identity-resolution model as an MLflow run.

    The run, in experiment ``<prefix>-resolve-<kind>``, holds the Splink model
    (its JSON: comparisons, m and u probabilities, prior) as an artifact, the
    resolution settings as parameters and the run's counts as metrics.

    Args:
        settings: the MLflow section.
        kind: ``dedupe`` (registrations) or ``link`` (records to persons).
        model_json: the Splink model.
        params: the settings it was trained with (flattened into parameters).
        metrics: figures of the run (registrations, persons, pairs).

    Returns:
        The run id.
    """
    configure(settings)
    experiment = experiment_id(settings, f"resolve-{kind}")
    flat = _flatten(params)
    with mlflow.start_run(experiment_id=experiment, run_name=f"resolve-{kind}") as run:
        # MLflow caps a parameter value's length; long rules are kept whole in the artifact.
        mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        mlflow.log_metrics(metrics)
        mlflow.log_text(model_json, RESOLUTION_ARTIFACT)
        mlflow.set_tags({"votelake.model": f"resolve-{kind}"})
    return run.info.run_id


def log_identity_report(settings: MlflowSettings, metrics: dict[str, float], several_ids: list[list[str]]) -> str:
    """Record a build's identity figures as an MLflow run (experiment ``<prefix>-identity``).

    Args:
        settings: the MLflow section.
        metrics: registrations, persons, persons holding several voter ids and their share.
        several_ids: a sample of those persons' voter ids (ids only: no name, address or birth date).

    Returns:
        The run id.
    """
    configure(settings)
    with mlflow.start_run(experiment_id=experiment_id(settings, "identity"), run_name="build-identity") as run:
        mlflow.log_metrics(metrics)
        mlflow.log_dict({"persons_with_several_voter_ids": several_ids}, "several_voter_ids_sample.json")
        mlflow.set_tags({"votelake.report": "identity"})
    return run.info.run_id


def log_backtest(settings: MlflowSettings, result: dict) -> str:
    """Record one out-of-time backtest as an MLflow run (experiment ``<prefix>-backtest``).

    Args:
        settings: the MLflow section.
        result: :func:`votelake.models.backtest.turnout_backtest`'s figures.

    Returns:
        The run id.
    """
    configure(settings)
    metrics = {k: float(v) for k, v in _flatten(result).items() if isinstance(v, (int, float))}
    with mlflow.start_run(experiment_id=experiment_id(settings, "backtest"),
                          run_name=f"turnout-{result['election']}") as run:
        mlflow.log_params({"election": result["election"], "type": result["type"], "champion": result["champion"],
                           "training_elections": ", ".join(result["training_elections"])})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"votelake.report": "backtest", "votelake.model": "turnout"})
    return run.info.run_id


def latest_resolution_model(settings: MlflowSettings, kind: str) -> str | None:
    """The most recently logged identity-resolution model (Splink JSON), or None.

    Args:
        settings: the MLflow section.
        kind: ``dedupe`` or ``link``.

    Returns:
        The model JSON text, or ``None`` when none was logged yet.
    """
    configure(settings)
    found = mlflow.get_experiment_by_name(f"{settings.experiment_prefix}-resolve-{kind}")
    if found is None:
        return None
    runs = mlflow.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    if not runs:
        return None
    return mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/{RESOLUTION_ARTIFACT}")


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
