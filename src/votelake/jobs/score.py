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
date, champion models, calibration settings; :func:`scoring_run_id`), so
re-running an unchanged run commits nothing. Before a run replaces the
published one, its rows must match the contract (columns, types, ranges, no
direct identifiers; :meth:`Lakehouse.publish`) and its score distributions,
statewide and per county, must stay within ``publish.*`` of the published
run's (:func:`distribution_gate`, Great Expectations); otherwise nothing is
published and the report says why, unless ``publish.force`` is set with a
reason, which the commit records.

Calibration to known totals (:func:`votelake.models.totals.calibrate_to_results`):
the turnout and support champions also score the voters as of the election
date, per-precinct logit shifts make those predictions add up to the
precinct's ballots cast and the contest's two-party vote, and the same
shifts are applied to today's probabilities. ``turnout_prob``/``support_prob``
publish the shifted probabilities, ``*_prob_model`` keep the model's.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from votelake import publish
from votelake.config import Settings
from votelake.jobs.common import job_main
from votelake.lakehouse import Lakehouse
from votelake.jobs.train import feature_dates, spec_from_run
from votelake.models import propensity as prop
from votelake.models import totals
from votelake.models import tracking
from votelake.transforms import features as feat

# The published value column of each model kind, and the kinds calibrated to results.
VALUE = {"turnout": "prob", "support": "prob", "persuasion": "uplift"}
CALIBRATED_KINDS = (totals.TURNOUT, totals.SUPPORT)
KEYS = list(totals.RESULT_KEYS)
# Commit metadata key naming the scoring run a publish of gold.voter_scores holds.
SCORING_RUN_KEY = "votelake.scoring_run"
# Decile columns of the published values (within the state, 10 = highest).
DECILES = {"turnout_decile": "turnout_prob", "support_decile": "support_prob", "persuasion_decile": "persuasion_uplift"}


def to_score(prob: Column) -> Column:
    """A probability as a 0-100 integer score (an uplift as percentage points)."""
    return F.round(prob * 100).cast("int")


def predict(champion: tracking.ChampionModel, spec: prop.ModelSpec, features: DataFrame) -> DataFrame:
    """Apply one champion model.

    Args:
        champion: the loaded model.
        spec: its feature spec.
        features: ``gold.voter_features`` rows.

    Returns:
        ``person_id`` and ``p``: the calibrated probability of the positive
        class, or for an uplift model the predicted uplift.
    """
    scored = champion.model.transform(prop.model_frame(features, spec, extra=("person_id",)))
    if spec.kind == prop.PERSUASION.kind:
        return scored.select("person_id", prop.bounded_uplift(F.col(prop.UPLIFT)).alias("p"))
    return scored.select("person_id", prop.positive_probability(scored).alias("p"))


def county_names(persons: DataFrame) -> DataFrame:
    """The county name of every county id, as precinct results spell it.

    Args:
        persons: ``silver.persons`` (only ``county_id`` and ``county_name`` are read).

    Returns:
        ``county_id, county_name`` (trimmed, upper case), one row per county id.
    """
    name = F.upper(F.trim(F.col("county_name")))
    return (persons.where(F.col("county_id").isNotNull())
            .groupBy("county_id").agg(F.min(name).alias("county_name"))
            .select("county_id", "county_name"))


def election_electorate(features: DataFrame, election_date: dt.date) -> DataFrame:
    """The voters of an election: feature rows as of its date of voters 18 or older (or of unknown age).

    The same voters the turnout model learns from (``train.turnout_training_set``),
    active or not today.

    Args:
        features: ``gold.voter_features``.
        election_date: the election (an as-of date of the features).

    Returns:
        The feature rows.
    """
    adult = F.coalesce(F.col("age") >= 18, F.lit(True))
    return features.where((F.col("as_of_date") == F.lit(election_date)) & adult)


def probability_frame(rows: DataFrame, predictions: dict[str, DataFrame],
                      counties: DataFrame | None = None) -> DataFrame:
    """One row per voter: the precinct keys and every model's prediction.

    Args:
        rows: feature rows (``person_id``, ``county_id``, ``precinct``).
        predictions: by model kind, ``person_id`` and ``p`` (:func:`predict`).
        counties: :func:`county_names`, to add ``county_name`` (the key of
            precinct results); None leaves it out.

    Returns:
        ``person_id, county_id, [county_name,] precinct`` and ``<kind>_prob``
        (``persuasion_uplift``) for each kind in ``predictions``.
    """
    out = rows.select("person_id", "county_id", F.trim(F.col("precinct")).alias("precinct"))
    if counties is not None:
        out = out.join(F.broadcast(counties), on="county_id", how="left")
    for kind, preds in predictions.items():
        out = out.join(preds.select("person_id", F.col("p").alias(f"{kind}_{VALUE[kind]}")),
                       on="person_id", how="left")
    return out


def with_deciles(scores: DataFrame, values: dict[str, str]) -> DataFrame:
    """Add the decile (1-10, 10 = highest) of value columns within each state.

    Cut points are approximate percentiles (``percentile_approx``, one
    aggregation per state), so no global sort or single-partition window
    runs at state scale; ties at a cut point share the lower decile.

    Args:
        scores: rows with ``state`` and the value columns.
        values: decile column name → value column.

    Returns:
        ``scores`` with the decile columns (null where the value is null).
    """
    quantiles = [i / 10 for i in range(1, 10)]
    cuts = scores.groupBy("state").agg(*[F.percentile_approx(v, quantiles, 10_000).alias(f"_cuts_{d}")
                                         for d, v in values.items()])

    def decile(name: str, value: str) -> Column:
        below = F.size(F.filter(F.col(f"_cuts_{name}"), lambda cut: cut < F.col(value)))
        return F.when(F.col(value).isNotNull(), (below + 1).cast("int")).alias(name)

    joined = scores.join(F.broadcast(cuts), on="state", how="left")
    return joined.select(*scores.columns, *[decile(d, v) for d, v in values.items()])


def scoring_run_id(feature_version: int, as_of: dt.date, models: dict[str, tracking.ChampionModel],
                   calibration: dict) -> str:
    """The identity of a scoring run: a hash of everything that determines its scores.

    Args:
        feature_version: Delta version of ``gold.voter_features`` read.
        as_of: the scoring as-of date.
        models: the champion models by kind.
        calibration: the calibration settings (as JSON-able values).

    Returns:
        16 hex digits; the same inputs give the same id, so re-publishing a run is a no-op.
    """
    inputs = {"feature_version": feature_version, "as_of": as_of.isoformat(),
              "models": {k: m.label for k, m in sorted(models.items())}, "calibration": calibration}
    return publish.fingerprint(inputs)


def voter_scores(
    features: DataFrame,
    probabilities: DataFrame,
    models: dict[str, tracking.ChampionModel],
    feature_version: int,
    scoring_run: str,
    scored_at: dt.datetime,
) -> DataFrame:
    """Assemble the published scores table from features and predictions.

    Args:
        features: the scoring as-of date's feature rows of active voters.
        probabilities: :func:`probability_frame` of the same voters: the model
            predictions ``<kind>_prob`` (``persuasion_uplift``) of the kinds with a
            champion (the others are absent and their columns null), and, for
            calibrated kinds, ``<kind>_prob_calibrated``.
        models: the champion models by kind (for names, versions, run ids).
        feature_version: Delta version of the features read.
        scoring_run: :func:`scoring_run_id`.
        scored_at: the run's timestamp.

    Returns:
        DataFrame in the ``gold.voter_scores`` schema (its contract's column
        order): ``<kind>_prob`` (and its score and decile) is the calibrated
        probability where there is one, else the model's; ``<kind>_prob_model``
        is the model's.
    """
    present = [c for c in probabilities.columns if c != "person_id" and c.startswith(tuple(VALUE))]
    joined = features.join(probabilities.select("person_id", *present), on="person_id", how="left")

    def col(name: str) -> Column:
        return F.col(name) if name in present else F.lit(None).cast("double")

    def model_columns(kind: str) -> dict[str, Column]:
        model = models.get(kind)
        value = f"{kind}_{VALUE[kind]}"
        calibrated = f"{value}{totals.CALIBRATED}"
        published = col(calibrated) if calibrated in present else col(value)
        return {
            "score": to_score(published).alias(f"{kind}_score"),
            "value": published.alias(value),
            "model_value": col(value).alias(f"{value}_model"),
            "model": F.lit(model.label if model else None).cast("string").alias(f"{kind}_model"),
            "run_id": F.lit(model.run_id if model else None).cast("string").alias(f"{kind}_run_id"),
        }

    turnout, support, persuasion = (model_columns(k) for k in ("turnout", "support", "persuasion"))
    scores = joined.select(
        "person_id", "state_voter_id", "state", "county_id", "precinct", "cong_dist", "state_senate", "state_house",
        turnout["score"], turnout["value"], turnout["model_value"],
        support["score"], support["value"], support["model_value"],
        persuasion["score"], persuasion["value"],
        turnout["model"], support["model"], persuasion["model"],
        turnout["run_id"], support["run_id"], persuasion["run_id"],
        F.lit(feature_version).cast("bigint").alias("feature_version"),
        F.lit(scoring_run).alias("scoring_run_id"),
        "as_of_date",
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )
    ranked = with_deciles(scores, DECILES)
    return ranked.select(
        "person_id", "state_voter_id", "state", "county_id", "precinct", "cong_dist", "state_senate", "state_house",
        "turnout_score", "turnout_prob", "turnout_prob_model", "turnout_decile",
        "support_score", "support_prob", "support_prob_model", "support_decile",
        "persuasion_score", "persuasion_uplift", "persuasion_decile",
        "turnout_model", "support_model", "persuasion_model",
        "turnout_run_id", "support_run_id", "persuasion_run_id",
        "feature_version", "scoring_run_id", "as_of_date", "scored_at",
    )


def calibration_rows(
    calibration: totals.Calibration,
    counties: DataFrame,
    election_date: dt.date,
    results_file: str,
    models: dict[str, tracking.ChampionModel],
    scoring_run: str,
    scored_at: dt.datetime,
) -> DataFrame | None:
    """The ``gold.precinct_calibration`` rows of one calibration.

    Args:
        calibration: :func:`totals.calibrate_to_results` output.
        counties: :func:`county_names` (to add ``county_id``).
        election_date: the election the results are for.
        results_file: the results file or folder read.
        models: the champion models by kind (for run ids).
        scoring_run: :func:`scoring_run_id`.
        scored_at: the run's timestamp.

    Returns:
        One row per calibrated kind per voter-file precinct (voters without a
        county or precinct, never shifted, are left out), in the table's
        schema; None when no kind was calibrated.
    """
    parts = [
        table.select(F.lit(kind).alias("kind"), *KEYS, "delta", "n", "target", "predicted_before",
                     "predicted_after",
                     F.lit(models[kind].run_id if kind in models else None).cast("string").alias("run_id"))
        for kind, table in calibration.shifts.items()
    ]
    if not parts:
        return None
    ids = counties.groupBy("county_name").agg(F.min("county_id").alias("county_id"))
    rows = reduce(DataFrame.unionByName, parts)
    return (rows.where(F.col("county_name").isNotNull() & F.col("precinct").isNotNull())
            .join(F.broadcast(ids), on="county_name", how="left")
            .select("kind", F.col("county_id").cast("int").alias("county_id"), "county_name", "precinct",
                    F.lit(election_date).cast("date").alias("election_date"), "delta", "n", "target",
                    "predicted_before", "predicted_after", "run_id",
                    F.lit(results_file).alias("results_file"), F.lit(scoring_run).alias("scoring_run_id"),
                    F.lit(scored_at).cast("timestamp").alias("scored_at")))


def read_results(spark: SparkSession, path: Path) -> DataFrame:
    """Read MEDSL precinct results: one CSV file, or every ``*.csv`` file of a folder, as strings.

    Raises:
        FileNotFoundError: the path does not exist.
    """
    if not path.exists():
        raise FileNotFoundError(f"calibration.results: {path} does not exist")
    reader = spark.read.option("header", True)
    if path.is_dir():
        reader = reader.option("pathGlobFilter", "*.csv").option("recursiveFileLookup", True)
    return reader.csv(str(path))


def calibration_election(settings: Settings, lake: Lakehouse, as_of: dt.date) -> dt.date:
    """The election the results are for: ``calibration.election_date``, else the latest general in the history.

    Raises:
        ValueError: neither is available.
    """
    if settings.calibration.election_date is not None:
        return settings.calibration.election_date
    generals = []
    if lake.version("silver.vote_history") is not None:
        generals = feat.elections_before(feat.known_elections(lake.read("silver.vote_history")), as_of, "GENERAL")
    if not generals:
        raise ValueError("calibration.election_date must be set: silver.vote_history holds no general election")
    return generals[-1].date


def calibrate(
    spark: SparkSession,
    lake: Lakehouse,
    settings: Settings,
    features: DataFrame,
    current: DataFrame,
    models: dict[str, tracking.ChampionModel],
    specs: dict[str, prop.ModelSpec],
    predictions: dict[str, DataFrame],
    scoring_run: str,
    scored_at: dt.datetime,
) -> tuple[DataFrame, DataFrame | None, dict | str]:
    """Calibrate the turnout and support predictions to the configured precinct results.

    Reads the results, the election's voters (``gold.voter_features`` as of the
    election date, or today's voters when there are none), the county names
    (``silver.persons``) and, without ``calibration.election_date``, the vote
    history; scores the election's voters with the same champions and calls
    :func:`totals.calibrate_to_results`.

    Args:
        spark: the session.
        lake: the lakehouse.
        settings: the run configuration (``calibration`` set).
        features: ``gold.voter_features`` (every as-of date).
        current: the scoring date's rows of active voters.
        models: the champion models by kind.
        specs: their feature specs.
        predictions: their predictions for ``current`` (:func:`predict`).
        scoring_run: :func:`scoring_run_id`.
        scored_at: the run's timestamp.

    Returns:
        ``(probabilities, shift_rows, summary)``: :func:`probability_frame` of
        ``current`` with ``<kind>_prob_calibrated`` columns, the
        ``gold.precinct_calibration`` rows (None when nothing was calibrated),
        and the summary (the election, and per kind :func:`totals.calibration_report`).
    """
    cfg = settings.calibration
    calibrated = {k: m for k, m in models.items() if k in CALIBRATED_KINDS}
    if not calibrated:
        return probability_frame(current, predictions), None, "no turnout or support champion to calibrate"
    dates = feature_dates(features)
    as_of = dates[-1]
    election_date = calibration_election(settings, lake, as_of)
    counties = county_names(lake.read("silver.persons")).localCheckpoint()
    probabilities = probability_frame(current, predictions, counties)
    if election_date in dates and election_date != as_of:
        electorate = election_electorate(features, election_date)
        election = probability_frame(
            electorate, {k: predict(m, specs[k], electorate) for k, m in calibrated.items()}, counties)
        election_rows = f"voters as of {election_date}"
    else:
        election = probabilities
        election_rows = f"the scored voters as of {as_of} (no features as of {election_date})"
    calibration = totals.calibrate_to_results(
        election, probabilities, read_results(spark, cfg.results), office=cfg.office, district=cfg.district,
        turnout=cfg.turnout, support=cfg.support, keys=KEYS, max_shift=cfg.max_shift)
    report = totals.calibration_report(calibration)
    for kind, figures in report.items():
        if figures.get("matched_precincts") == 0:
            print(f"[votelake] score: no result precinct matches a voter-file precinct; {kind} not shifted",
                  flush=True)
    summary = {"results": str(cfg.results), "office": cfg.office, "district": cfg.district,
               "election_date": election_date.isoformat(), "election_rows": election_rows, **report}
    rows = calibration_rows(calibration, counties, election_date, str(cfg.results), models, scoring_run, scored_at)
    return calibration.current, rows, summary


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
    feature_version = lake.version("gold.voter_features")
    features = lake.read("gold.voter_features", version=feature_version)
    as_of = feature_dates(features)[-1]
    current = features.where((F.col("as_of_date") == F.lit(as_of)) & F.col("is_active"))
    models: dict[str, tracking.ChampionModel] = {}
    missing = {}
    for kind in prop.SPECS:
        try:
            models[kind] = tracking.load_champion(settings.mlflow, kind)
        except RuntimeError as exc:
            missing[kind] = str(exc)
    if not models:
        raise RuntimeError("no champion model to score with: " + "; ".join(missing.values()))
    client = tracking.configure(settings.mlflow)
    specs = {kind: spec_from_run(client.get_run(m.run_id), kind) for kind, m in models.items()}
    scoring_run = scoring_run_id(feature_version, as_of, models, settings.calibration.model_dump(mode="json"))
    published = published_run(lake)
    if published is not None and published["scoring_run"] == scoring_run:
        # The same features, models and calibration: the published scores are this run's.
        return {"table": lake.table("gold.voter_scores").uri, "version": published["version"], "published": False,
                "reason": f"scoring run {scoring_run} is already published (version {published['version']})",
                "scoring_run": scoring_run, "as_of_date": as_of.isoformat(),
                "models": {k: m.label for k, m in models.items()}}
    predictions = {kind: predict(m, specs[kind], current) for kind, m in models.items()}
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)

    if settings.calibration.enabled:
        probabilities, shift_rows, summary_calibration = calibrate(
            spark, lake, settings, features, current, models, specs, predictions, scoring_run, scored_at)
    else:
        probabilities, shift_rows, summary_calibration = probability_frame(current, predictions), None, "off"

    scores = voter_scores(current, probabilities, models, feature_version, scoring_run, scored_at)
    gate: dict = {}
    tags = {"votelake.as_of": str(as_of), SCORING_RUN_KEY: scoring_run}
    def drift(rows: DataFrame) -> dict[str, str]:
        return distribution_gate(lake, settings, rows, scoring_run, published, gate)

    result = lake.publish(scores, "gold.voter_scores", metadata=tags, before_write=drift)
    # Every publish replaces the shifts: none (empty) when nothing was calibrated.
    if shift_rows is None:
        shift_rows = spark.createDataFrame([], lake.table("gold.precinct_calibration").schema)
    written = lake.publish(shift_rows, "gold.precinct_calibration", metadata=tags)
    if isinstance(summary_calibration, dict):
        summary_calibration["table"] = {"uri": lake.table("gold.precinct_calibration").uri,
                                        "version": written.version, "rows": written.rows}
    means = lake.read("gold.voter_scores").agg(
        F.count("*").alias("rows"), F.avg("turnout_prob").alias("turnout"), F.avg("support_prob").alias("support"),
        F.avg("turnout_prob_model").alias("turnout_model"), F.avg("support_prob_model").alias("support_model"),
        F.avg("persuasion_uplift").alias("persuasion"),
    ).first()

    def mean(name: str) -> float | None:
        return None if means[name] is None else round(means[name], 4)

    return {
        "table": lake.table("gold.voter_scores").uri,
        "version": result.version,
        "published": result.committed,
        "scoring_run": scoring_run,
        "gate": gate,
        "rows": means["rows"],
        "mean_turnout_prob": mean("turnout"),
        "mean_support_prob": mean("support"),
        "mean_turnout_prob_model": mean("turnout_model"),
        "mean_support_prob_model": mean("support_model"),
        "mean_persuasion_uplift": mean("persuasion"),
        "as_of_date": as_of.isoformat(),
        "models": {k: m.label for k, m in models.items()},
        "not_scored": {k: "no champion model" for k in missing},
        "calibration": summary_calibration,
        "quality": lake.quality_report(),
        "mlflow": settings.mlflow.tracking_uri,
    }


def published_run(lake: Lakehouse) -> dict | None:
    """The scoring run of the latest publish of ``gold.voter_scores``: ``scoring_run`` and ``version``.

    None when the table was never published under a contract (absent, or
    written before contracts: its rows cannot be compared column for column).
    """
    if lake.published_contract("gold.voter_scores") is None:
        return None
    found = lake.latest_metadata("gold.voter_scores", SCORING_RUN_KEY)
    return None if found is None else {"scoring_run": found[0], "version": found[1]}


def distribution_gate(lake: Lakehouse, settings: Settings, scores: DataFrame, scoring_run: str,
                      published: dict | None, summary: dict) -> dict[str, str]:
    """Compare a run's score distributions with the published run's (Great Expectations) and report.

    Args:
        lake: the lakehouse.
        settings: the run configuration (``publish``).
        scores: the run's rows (cached by the publish).
        scoring_run: this run's id.
        published: :func:`published_run` (None: nothing to compare with).
        summary: filled with the verdict and the report path, for the job's summary.

    Returns:
        Commit metadata: the verdict, the report, and a forced publish's reason.

    Raises:
        PublishBlockedError: beyond the tolerance and not forced; nothing is published.
    """
    cfg = settings.publish
    if published is None:
        summary.update(verdict="first publish under the contract: nothing to compare with")
        return {"votelake.publish_gate": summary["verdict"]}
    previous = lake.read("gold.voter_scores", version=published["version"])
    shift = publish.distribution_shift(publish.score_distribution(scores), publish.score_distribution(previous),
                                       cfg.min_county_voters).localCheckpoint()
    result = lake.validate(shift.where(F.col("gated")), publish.drift_suite(cfg), f"score-{scoring_run}",
                           persist=False)
    verdict = ("within tolerance" if result.success
               else f"forced beyond tolerance: {cfg.force_reason}" if cfg.force else "blocked: beyond tolerance")
    report = publish.write_report(shift.toPandas(), cfg, Path(lake.reports) / "publish", scoring_run,
                                  published["scoring_run"], verdict)
    summary.update(verdict=verdict, report=str(report), compared_with=published["scoring_run"])
    if not result.success and not cfg.force:
        raise publish.PublishBlockedError(
            f"scoring run {scoring_run} not published: its score distributions moved beyond the tolerance "
            f"against the published run {published['scoring_run']} (set publish.force with publish.force_reason "
            f"to publish anyway). Report: {report}\n" + result.failure_message(), report)
    tags = {"votelake.publish_gate": verdict, "votelake.publish_report": str(report)}
    if not result.success:
        tags["votelake.forced_reason"] = str(cfg.force_reason)
    return tags


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("score", run, __doc__.splitlines()[0], argv)
