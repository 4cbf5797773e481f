"""Segment job: active voters clustered into segments with readable profiles.

Inputs: ``gold.voter_scores`` (the published scoring run) and
``gold.voter_features`` (the version those scores were computed from, their
as-of date), ``segments.*`` (algorithm, k, seeds, inputs) and
``model.protected_attributes`` (never inputs unless ``segments.include_protected``).
Outputs: ``gold.voter_segments`` (one row per active voter: segment id and
name, distance to the segment's centre) and ``gold.segment_profiles`` (per
segment: size, share, mean scores, distinguishing inputs), both published
under their data contracts; an MLflow run (experiment ``<prefix>-segments``)
with ``stability_ari``, the profile table, the figures and the fitted
pipeline, registered as ``<prefix>-segments``
(:mod:`votelake.models.segments`).
Launch: ``spark-submit jobs/segment.py --conf conf/local.yaml`` or
``votelake run segment``.

A segmentation run is identified by the scoring run, the settings and the
code version, so re-running it unchanged commits nothing; a run stopped between its two
publishes is finished by the next, and its run manifest (``audit.runs``),
written last, moves readers to both tables at once.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from votelake import progress, publish
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.models import segments as model
from votelake.models import tracking
from votelake.transforms import segments as seg

RUN_KEY = "votelake.segmentation_run"  # commit metadata: the segmentation a publish holds
TABLES = ("gold.voter_segments", "gold.segment_profiles")  # published in this order


def segmentation_run_id(settings: Settings, scoring_run: str, scores_version: int) -> str:
    """A segmentation's id: a hash of the scores it segments, the settings that shape it and the code."""
    inputs = {"scoring_run": scoring_run, "scores_version": scores_version,
              "segments": settings.segments.model_dump(mode="json"), "excluded": list(seg.excluded_inputs(settings)),
              "code": tracking.code_version()}
    return publish.fingerprint(inputs)


def run(spark: SparkSession, settings: Settings) -> dict:
    """Segment the active voters, log the model to MLflow and publish the segments and their profiles.

    Args:
        spark: the session.
        settings: the run configuration (``segments``).

    Returns:
        k, the voters segmented, the segments found, ``stability_ari``, the
        MLflow run id and registered version, and the tables' versions.

    Raises:
        RuntimeError: no published scores yet (run the score job first).
    """
    lake = Lakehouse.open(spark, settings, job="segment")
    scores_version = lake.current("gold.voter_scores")
    if scores_version is None:
        raise RuntimeError("gold.voter_scores does not exist: run the score job first")
    scores = lake.read("gold.voter_scores", version=scores_version)
    # One row: the scores' run, and the feature table version and as-of date they were computed from.
    found = scores.select("scoring_run_id", "feature_version", "as_of_date").limit(1).collect()
    if not found:
        raise RuntimeError("gold.voter_scores holds no voters: run the score job first")
    scoring_run, feature_version, as_of = found[0]
    run_id = segmentation_run_id(settings, scoring_run, scores_version)
    done = lake.run_versions(TABLES, RUN_KEY, run_id)
    if all(v is not None for v in done.values()):
        recorded = lake.complete(run_id, done)  # a run killed after its last publish gets its manifest now
        return {"segmentation_run": run_id, "published": False, "tables": done,
                "reason": f"segmentation {run_id} (the same scores and settings) is already published"
                          + ("; its run manifest is recorded now" * recorded)}

    features = lake.read("gold.voter_features", version=feature_version)
    # Without the scores' own features every engagement and demographic input would be unknown.
    if not features.where(F.col("as_of_date") == F.lit(as_of)).limit(1).collect():  # at most one row
        raise RuntimeError(f"gold.voter_features version {feature_version} holds no features as of {as_of}, "
                           "the scores' (score again after the next build)")
    numeric, categorical = seg.input_columns(settings.segments.features, settings.segments.categorical,
                                             seg.excluded_inputs(settings))
    rows = seg.segmentation_inputs(scores, features, numeric, categorical)
    lineage = {"segmentation_run": run_id, "scoring_run": scoring_run, "voter_scores_version": scores_version,
               "voter_features_version": feature_version}
    fitted = model.segment(settings, rows, lineage)
    built_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    segmentation = F.lit(run_id).alias("segmentation_run_id")
    built = F.lit(built_at).cast("timestamp").alias("built_at")
    try:
        names = fitted.profiles.select("segment_id", "segment_name")
        voters = (fitted.assigned.join(names, on="segment_id", how="left")
                  .select(segmentation, "person_id", "state_voter_id", "state", "county_id", "segment_id",
                          "segment_name", "distance", F.lit(scoring_run).alias("scoring_run_id"), built))
        profiles = fitted.profiles.select(segmentation, "segment_id", "segment_name", "voters", "share",
                                          *[f"mean_{c}" for c in seg.SCORES], "top_features",
                                          F.lit(fitted.run_id).alias("mlflow_run_id"), built)
        # A run stopped between its two publishes published the segments already: publish what is left.
        versions = dict(done)
        for name, published in (("gold.voter_segments", voters), ("gold.segment_profiles", profiles)):
            if versions[name] is None:
                progress.stage(f"checking {name} against its contract")
                versions[name] = lake.publish(published, name, metadata={RUN_KEY: run_id}).version
    finally:
        fitted.unpersist()
    # Written last: readers move to both tables together.
    lake.complete(run_id, versions)
    return {
        "segmentation_run": run_id, "published": True, "k": settings.segments.k, "segments": fitted.segments,
        "voters": fitted.voters, "stability_ari": round(fitted.stability_ari, 4), "mlflow_run_id": fitted.run_id,
        "model_version": fitted.model_version, "inputs": list(fitted.inputs), "inputs_dropped": list(fitted.dropped),
        "protected_excluded": list(fitted.excluded), "scoring_run": scoring_run, "tables": versions,
        "quality": lake.quality_report(),
    }


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("segment", run, __doc__.splitlines()[0], argv)
