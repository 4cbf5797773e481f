"""Calibration of per-voter scores to precinct results: real county data, and a synthetic state with ground truth.

**County mode** (``--mode county``, the default). Reads ``gold.voter_scores``
of a real county (``support_prob_model``: the partisanship model's
P(registered DEM | features), learnt on DEM vs REP registrants;
``support_prob``: the score job's published, precinct-calibrated probability)
and ``gold.precinct_calibration`` (the score job's shifts), and the county's
MEDSL precinct results, then measures the precinct-level error of the
predicted two-party DEM share (the mean score of the precinct's scored
voters, turnout-weighted when turnout scores exist):

* **before**: the model's probabilities (``support_prob_model``);
* **county shift**: one logit shift for the whole county, fitted here to the
  calibration contest's county total over the located precincts (fixes the
  level, keeps the model's between-precinct pattern);
* **precinct shift**: one logit shift per precinct, fitted to the
  calibration contest's precinct shares (what voter-file vendors do): the
  published ``support_prob`` of the score job with ``calibration`` on (when
  the lakehouse has no published shifts, fitted here instead).

Errors are reported on the calibration contest (in-sample: zero by
construction for the precinct shift) and on the other partisan contests of
the same ballot (held out). Two baselines without the voter model are
reported beside them: the contest-to-contest baseline, predicting each
held-out contest's precinct share by the calibration contest's share (without
turnout weights the precinct shift reproduces it exactly), and the DEM share
of DEM + REP active registrants of the precinct.

Result precincts missing from the voter file (early, absentee and provisional
pseudo-precincts) are reported and dropped: their votes cannot be placed in a
precinct, so the located vote is essentially the Election Day vote.

**Synthetic mode** (``--mode synthetic``). For a generated state scored with
calibration on, compares against the generator's ground truth
(``votelake.synth.generate.read_truth``: the true per-person turnout and
support probabilities):

* precinct totals of the calibrated election: predicted ballots (Σ turnout),
  DEM votes (Σ turnout × support) and two-party share, before (model) and
  after (calibrated) calibration, against the EXPECTED totals (Σ of the true
  probabilities over the election's voters, counting a voter only when the
  truth says they were eligible) and against the actual results. The error of
  the actual results against the expected totals is the sampling noise that a
  calibration to them inherits;
* per person: mean |p − p_true| (and mean p − p_true) of turnout and support,
  before and after, for the election-date scores and for the published
  (current) scores.

The election-date scores are recomputed with the champion models the score
job used and shifted with its published shifts; their precinct sums are
checked against the published ``predicted_after``.

Run (county): ``python -m bench.precinct_calibration --conf conf/nc_chatham_2018.yaml``
after ``votelake run score --conf conf/nc_chatham_2018.yaml``.
Run (synthetic): ``python -m bench.precinct_calibration --mode synthetic --name synth20k
--set synth.out=DIR --set landing=DIR/landing --set storage.lakehouse=LAKE
--set mlflow.tracking_uri=sqlite:///DB --set mlflow.artifact_root=ART``.
Results go to ``bench/results/precinct_calibration_<name>.{json,md}`` (aggregates only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyspark
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.storage_bench import machine
from votelake.config import CONF_DIR, SparkSettings, load_settings
from votelake.lakehouse import Lakehouse
from votelake.models import tracking
from votelake.models.scoring import apply_model, spec_from_run
from votelake.models.totals import (
    CALIBRATED,
    DEM,
    REP,
    apply_shifts,
    ballots_cast,
    logit_shift,
    match_precincts,
    precinct_error,
    precinct_results,
    precinct_totals,
    read_results,
    share_targets,
)
from votelake.session import build_spark
from votelake.synth.generate import read_truth
from votelake.synth.history import eligible
from votelake.transforms.scores import county_names, probability_frame
from votelake.transforms.training_sets import election_electorate

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ["county_name", "precinct"]
PROB = "support_prob_model"
PUBLISHED = "support_prob_published"
MODEL_TURNOUT = "turnout_prob_model"
BENCH_SPARK = SparkSettings(
    master="local[2]",
    app_name="votelake-precinct-calibration",
    shuffle_partitions=2,
    driver_memory="2g",
    conf={"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
          "spark.default.parallelism": "2"},
)


def partisan_contests(raw: DataFrame) -> list[tuple[str, str | None]]:
    """``(office, district)`` of every contest with both a DEM and a REP candidate."""
    party = F.upper(F.trim(F.col("party_simplified")))
    rows = (raw.where(party.isin(DEM, REP))
            .groupBy(F.upper(F.trim("office")).alias("office"), F.trim("district").alias("district"))
            .agg(F.countDistinct(party).alias("parties"))
            .where(F.col("parties") == 2)
            .orderBy("office", "district")
            .collect())
    return [(r["office"], r["district"]) for r in rows]


def label(contest: tuple[str, str | None]) -> str:
    """``OFFICE`` or ``OFFICE:district``."""
    office, district = contest
    return office if district is None else f"{office}:{district}"


def mean_share(frame: DataFrame, prob_col: str, weight_col: str | None, keys: list[str]) -> DataFrame:
    """Per group, the (weighted) mean score: the predicted two-party DEM share."""
    w = F.col(weight_col) if weight_col else F.lit(1.0)
    scored = frame.where(F.col(prob_col).isNotNull())
    return scored.groupBy(*keys).agg((F.sum(w * F.col(prob_col)) / F.sum(w)).alias("pred"))


def county_share(results: DataFrame) -> dict:
    """Two-party DEM votes and share summed over the given precinct rows."""
    row = results.agg(F.sum("dem_votes").alias("dem"), F.sum("rep_votes").alias("rep")).first()
    dem, rep = int(row["dem"] or 0), int(row["rep"] or 0)
    return {"dem_votes": dem, "rep_votes": rep, "share": dem / (dem + rep) if dem + rep else None}


def shift_summary(shifts: DataFrame) -> dict:
    """Range of the shifts and the worst miss of the expected counts."""
    targeted = shifts.where(F.col("target").isNotNull())
    row = targeted.agg(
        F.count("*").alias("groups"),
        F.min("delta").alias("delta_min"), F.max("delta").alias("delta_max"),
        F.avg("delta").alias("delta_mean"),
        F.max(F.abs(F.col("predicted_after") - F.col("target"))).alias("max_abs_count_miss"),
    ).first()
    untargeted = shifts.where(F.col("target").isNull()).agg(F.count("*").alias("g"), F.sum("n").alias("n")).first()
    return {**{k: (round(v, 6) if isinstance(v, float) and k != "max_abs_count_miss" else v)
               for k, v in row.asDict().items()},
            "groups_without_target": untargeted["g"], "voters_without_target": int(untargeted["n"] or 0)}


def sample(variant: str, is_calibration_contest: bool) -> str:
    """How a prediction relates to a contest: fitted to it (in-sample), level only, or held out."""
    if not is_calibration_contest:
        return "held out"
    fitted = {"county shift": "county level fitted", "precinct shift": "in-sample",
              "calibration contest's share": "in-sample"}
    return fitted.get(variant, "not fitted")


def rounded(err: dict) -> dict:
    """Error figures rounded for the report."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in err.items()}


def run(settings, results_csv: Path, calibrate: tuple[str, str | None], iterations: int,
        spark_settings: SparkSettings = BENCH_SPARK) -> dict:
    """Load the data, calibrate both ways, and measure every contest."""
    spark = build_spark(spark_settings, settings.storage.metastore)
    try:
        return measure(spark, settings, results_csv, calibrate, iterations)
    finally:
        spark.stop()


def measure(spark, settings, results_csv: Path, calibrate: tuple[str, str | None], iterations: int) -> dict:
    """The measurements on an open session (see the module docstring)."""
    lake = Lakehouse.open(spark, settings)
    scores_all = lake.read("gold.voter_scores")
    if "support_prob_model" not in scores_all.columns:
        raise SystemExit("gold.voter_scores has no support_prob_model: re-run the score job")
    latest = scores_all.agg(F.max("as_of_date")).first()[0]
    raw = spark.read.option("header", True).csv(str(results_csv))
    counties = [r[0] for r in raw.select(F.trim("county_name")).distinct().collect()]
    county_ids = [r[0] for r in scores_all.select("county_id").distinct().collect()]
    if len(counties) != 1 or len(county_ids) != 1:
        raise SystemExit(f"one county expected on both sides; results {counties}, scores {county_ids}")
    has_turnout = scores_all.where(F.col("turnout_prob_model").isNotNull()).limit(1).count() > 0
    # The model's probabilities are weighted by the model's turnout, the published ones by the published turnout.
    weight = MODEL_TURNOUT if has_turnout else None
    published_weight = "turnout_prob" if has_turnout else None
    # Results name the county, the voter file numbers it: one county, so its name is attached.
    scores = (scores_all.where(F.col("as_of_date") == F.lit(latest))
              .select(F.lit(counties[0]).alias("county_name"), F.trim("precinct").alias("precinct"),
                      PROB, "turnout_prob", F.col("support_prob").alias(PUBLISHED), MODEL_TURNOUT)
              .localCheckpoint())
    voters = scores.agg(F.count("*").alias("n"), F.count("precinct").alias("with_precinct"),
                        F.avg(PROB).alias("mean_support"), F.countDistinct("precinct").alias("precincts")).first()
    published = None
    if lake.version("gold.precinct_calibration") is not None:
        published = (lake.read("gold.precinct_calibration").where(F.col("kind") == "support")
                     .select("county_name", "precinct", "delta", "n", "target", "predicted_before",
                             "predicted_after", "election_date", "results_file", "scored_at")
                     .localCheckpoint())
        if published.isEmpty():
            published = None

    contests = partisan_contests(raw)
    if calibrate not in contests:
        raise SystemExit(f"calibration contest {label(calibrate)} not among the partisan contests {contests}")
    held_out = [c for c in contests if c != calibrate]

    actual: dict[str, DataFrame] = {}
    contest_info: dict[str, dict] = {}
    for contest in contests:
        everything = precinct_results(raw, *contest).localCheckpoint()
        located, pseudo = match_precincts(everything, scores, KEYS)
        located = located.localCheckpoint()
        name = label(contest)
        actual[name] = located
        contest_info[name] = {
            "role": "calibration" if contest == calibrate else "held out",
            "all_modes": county_share(everything),
            "located": {**county_share(located), "precincts": located.count()},
            "pseudo_precincts": {r["precinct"]: {"dem_votes": r["dem_votes"], "rep_votes": r["rep_votes"]}
                                 for r in pseudo.orderBy("precinct").collect()},
        }
    cal = label(calibrate)
    cal_results = actual[cal]
    located_share = contest_info[cal]["located"]["share"]
    voter_precincts_without_results = (scores.select(*KEYS).dropna().distinct()
                                       .join(cal_results, on=KEYS, how="left_anti").count())

    predictions: dict[str, DataFrame] = {"before": mean_share(scores, PROB, weight, KEYS).localCheckpoint()}
    timings, shift_tables = {}, {}

    # County shift: one group, its target the located two-party share of the calibration contest.
    county_shares = cal_results.groupBy("county_name").agg(
        (F.sum("dem_votes") / (F.sum("dem_votes") + F.sum("rep_votes"))).alias("share"))
    started = time.perf_counter()
    targets = share_targets(county_shares, ["county_name"], "share", scores, PROB, weight_col=weight)
    county_cal, county_shifts = logit_shift(scores, ["county_name"], PROB, targets, "target",
                                            iterations=iterations, weight_col=weight)
    predictions["county shift"] = mean_share(county_cal, f"{PROB}_calibrated", weight, KEYS).localCheckpoint()
    timings["county shift"] = round(time.perf_counter() - started, 1)
    shift_tables["county shift"] = county_shifts

    # Precinct shift: one group per precinct, its target the precinct's share:
    # the score job's published probabilities, or fitted here without them.
    if published is not None:
        precinct_cal = scores.select(*KEYS, F.col(PUBLISHED).alias(f"{PROB}_calibrated"), "turnout_prob")
        precinct_weight = published_weight
        shift_tables["precinct shift"] = published
        source = ("score job (gold.precinct_calibration, scored "
                  f"{published.agg(F.max('scored_at')).first()[0]})")
    else:
        started = time.perf_counter()
        targets = share_targets(cal_results, KEYS, "two_party_share", scores, PROB, weight_col=weight)
        precinct_cal, precinct_shifts = logit_shift(scores, KEYS, PROB, targets, "target",
                                                    iterations=iterations, weight_col=weight)
        timings["precinct shift"] = round(time.perf_counter() - started, 1)
        shift_tables["precinct shift"] = precinct_shifts
        precinct_weight = weight
        source = "fitted by this benchmark (no published shifts)"
    predictions["precinct shift"] = mean_share(precinct_cal, f"{PROB}_calibrated", precinct_weight,
                                               KEYS).localCheckpoint()

    # Two baselines without the voter model: the calibration contest's own
    # precinct shares, and the DEM share of DEM + REP active registrants.
    predictions["calibration contest's share"] = cal_results.select(*KEYS, F.col("two_party_share").alias("pred"))
    features = Lakehouse.open(spark, settings).read("gold.voter_features")
    party = F.upper(F.trim("party"))
    predictions["registered DEM share"] = (
        features.where(F.col("is_active") & (F.col("as_of_date") == F.lit(latest)) & party.isin("DEM", "REP"))
        .groupBy(F.lit(counties[0]).alias("county_name"), F.trim("precinct").alias("precinct"))
        .agg(F.avg((party == "DEM").cast("double")).alias("pred"))
        .localCheckpoint()
    )

    county_means = {"before": float(voters["mean_support"])}
    for name, frame, wcol in (("county shift", county_cal, weight), ("precinct shift", precinct_cal, precinct_weight)):
        w = F.col(wcol) if wcol else F.lit(1.0)
        row = frame.agg((F.sum(w * F.col(f"{PROB}_calibrated")) / F.sum(w)).alias("m")).first()
        county_means[name] = float(row["m"])

    errors: dict[str, dict[str, dict]] = {}
    for variant, pred in predictions.items():
        errors[variant] = {}
        for name, located in actual.items():
            err = rounded(precinct_error(pred, located, KEYS, "pred", "two_party_share"))
            err["sample"] = sample(variant, name == cal)
            errors[variant][name] = err
    summary = {}
    for variant in predictions:
        held = [errors[variant][label(c)] for c in held_out]
        summary[variant] = {
            "calibration_contest_mae": errors[variant][cal]["mae"],
            "calibration_contest_sample": errors[variant][cal]["sample"],
            "held_out_mean_mae": round(sum(e["mae"] for e in held) / len(held), 4),
            "held_out_mean_weighted_mae": round(sum(e["weighted_mae"] for e in held) / len(held), 4),
            "held_out_mean_bias": round(sum(e["bias"] for e in held) / len(held), 4),
            "held_out_mean_corr": round(sum(e["corr"] for e in held) / len(held), 3),
        }
    return {
        "voters": {"scored": voters["n"], "with_precinct": voters["with_precinct"],
                   "precincts": voters["precincts"], "as_of_date": str(latest),
                   "voter_precincts_without_results": voter_precincts_without_results},
        "weight": weight or "none (no turnout scores in gold.voter_scores): unweighted means",
        "precinct_shift_source": source,
        "calibration_contest": cal,
        "held_out_contests": [label(c) for c in held_out],
        "contests": contest_info,
        "county_mean_support": {k: round(v, 4) for k, v in county_means.items()},
        "county_actual_share": {"all_modes": round(contest_info[cal]["all_modes"]["share"], 4),
                                "located": round(located_share, 4)},
        "shifts": {k: shift_summary(v) for k, v in shift_tables.items()},
        "iterations": iterations,
        "logit_shift_seconds": timings,
        "errors": errors,
        "summary": summary,
    }


def _corr(errors: dict) -> str:
    """A table cell for the correlation of one error row (— when undefined)."""
    return "—" if errors["corr"] is None else f"{errors['corr']:.3f}"


def _provenance(result: dict) -> list[str]:
    """The command, versions and machine lines of a report."""
    return [
        f"Command: `{result['command']}` — run {result['when']}",
        "",
        f"Versions: Python {result['versions']['python']}, PySpark {result['versions']['pyspark']}. "
        f"Machine: {result['machine']['nproc']} CPUs, load average at start "
        f"{result['machine']['load_average_at_start'][0]:.2f}.",
    ]


def markdown(result: dict) -> str:
    """The results as a Markdown report."""
    cal = result["calibration_contest"]
    info = result["contests"][cal]
    located_votes = info["located"]["dem_votes"] + info["located"]["rep_votes"]
    all_votes = info["all_modes"]["dem_votes"] + info["all_modes"]["rep_votes"]
    lines = [
        "# Precinct calibration of partisanship scores (Chatham County, NC, 2018 general)",
        "",
        *_provenance(result),
        "",
        "## Data",
        "",
        f"- Scores: {result['voters']['scored']:,} active voters of `gold.voter_scores` "
        f"(as of {result['voters']['as_of_date']}), {result['voters']['with_precinct']:,} with a precinct, "
        f"{result['voters']['precincts']} precincts; `support_prob_model` = P(registered DEM) from the "
        "partisanship model. Weights: " + result["weight"] + ". Precinct shift: "
        + result.get("precinct_shift_source", "fitted by this benchmark") + ".",
        f"- Calibration contest: **{cal}** (county-wide, D vs R, on every ballot). Held out: "
        + ", ".join(result["held_out_contests"]) + ".",
        f"- Pseudo-precincts dropped (not in the voter file): "
        + ", ".join(f"{p} ({v['dem_votes'] + v['rep_votes']:,} two-party votes)"
                    for p, v in info["pseudo_precincts"].items())
        + f". Located two-party votes in {cal}: {located_votes:,} of {all_votes:,} ({located_votes / all_votes:.0%}); "
        f"voter-file precincts without results: {result['voters']['voter_precincts_without_results']}.",
        f"- County DEM two-party share of {cal}: all modes **{result['county_actual_share']['all_modes']:.3f}**, "
        f"located (precinct) votes only **{result['county_actual_share']['located']:.3f}**. "
        "Mean score over all scored voters: "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["county_mean_support"].items()) + ".",
        "",
        "## Precinct-level error of the predicted two-party DEM share",
        "",
        "MAE / median AE / vote-weighted MAE / mean signed error (pred − actual) / Pearson r, "
        f"over the {info['located']['precincts']} located precincts.",
        "",
        "| prediction | contest | sample | MAE | median AE | weighted MAE | bias | r |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for variant, by_contest in result["errors"].items():
        for contest, e in by_contest.items():
            lines.append(f"| {variant} | {contest} | {e['sample']} | {e['mae']:.4f} | {e['median_ae']:.4f} | "
                         f"{e['weighted_mae']:.4f} | {e['bias']:+.4f} | "
                         + _corr(e) + " |")
    lines += [
        "",
        "## Summary",
        "",
        f"| prediction | {cal} MAE | sample | held-out mean MAE | held-out mean weighted MAE "
        "| held-out mean bias | held-out mean r |",
        "|---|---:|---|---:|---:|---:|---:|",
        *[f"| {v} | {s['calibration_contest_mae']:.4f} | {s['calibration_contest_sample']} | "
          f"{s['held_out_mean_mae']:.4f} | {s['held_out_mean_weighted_mae']:.4f} | {s['held_out_mean_bias']:+.4f} "
          f"| {s['held_out_mean_corr']:.3f} |"
          for v, s in result["summary"].items()],
        "",
        "Shifts (logit scale): "
        + "; ".join(f"{k}: {s['groups']} group(s), δ {s['delta_min']:+.3f} … {s['delta_max']:+.3f}, "
                    f"worst count miss {s['max_abs_count_miss']:.2e}"
                    for k, s in result["shifts"].items())
        + f". At most {result['iterations']} Newton iterations; logit_shift wall time here (s): "
        + ", ".join(f"{k} {v}" for k, v in result["logit_shift_seconds"].items()) + ".",
        "",
        "## Reading",
        "",
        "- The precinct results only place Election Day votes: early (ONE STOP), mail and provisional votes "
        "sit on county-wide pseudo-precincts. The precinct shares describe the Election Day electorate, "
        "which here is far more Republican than the county's whole vote; the raw scores' level error "
        "is mostly that gap (and the scores cover all active registrants, not voters).",
        "- Without turnout weights the precinct shift makes each precinct's mean score equal the "
        "calibration contest's share exactly, so its held-out error is the contest-to-contest "
        "baseline (same figures): it measures ticket splitting between contests, not the model.",
        "- The county shift fixes the level only; its error is the model's between-precinct pattern: "
        f"r {result['summary']['county shift']['held_out_mean_corr']:.2f} against the results, beside "
        f"{result['summary']['registered DEM share']['held_out_mean_corr']:.2f} for the precincts' registered "
        "DEM share.",
        "- After the precinct shift the county-wide mean score matches the located (Election Day) "
        "share, not the all-mode share: calibrating to these results moves the scores toward the "
        "Election Day electorate.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- synthetic mode


def _errors(pred: DataFrame, actual: DataFrame, pred_col: str, actual_col: str) -> dict:
    """precinct_error, rounded, unweighted figures only."""
    err = rounded(precinct_error(pred, actual, KEYS, pred_col, actual_col))
    return {k: err[k] for k in ("n", "mae", "median_ae", "bias", "corr")}


def _person_errors(frame: DataFrame, pairs: dict[str, tuple[str, str]]) -> dict:
    """Per label, mean |p - p_true| and mean p - p_true over rows with both."""
    aggs = []
    for label, (p, truth) in pairs.items():
        both = F.col(p).isNotNull() & F.col(truth).isNotNull()
        diff = F.when(both, F.col(p) - F.col(truth))
        aggs += [F.avg(F.abs(diff)).alias(f"{label}|mae"), F.avg(diff).alias(f"{label}|bias"),
                 F.count(diff).alias(f"{label}|n")]
    row = frame.agg(*aggs).first().asDict()
    out: dict = {}
    for key, value in row.items():
        label, stat = key.split("|")
        out.setdefault(label, {})[stat] = round(value, 4) if isinstance(value, float) else value
    return out


def measure_synthetic(spark, settings) -> dict:
    """The synthetic-state measurements on an open session (see the module docstring)."""
    lake = Lakehouse.open(spark, settings)
    if lake.version("gold.precinct_calibration") is None:
        raise SystemExit("no gold.precinct_calibration: score the state with calibration on first")
    shifts = lake.read("gold.precinct_calibration").localCheckpoint()
    kinds = sorted(r["kind"] for r in shifts.select("kind").distinct().collect())
    if not kinds:
        raise SystemExit("gold.precinct_calibration is empty: the last scoring run calibrated nothing")
    election_date = shifts.agg(F.max("election_date")).first()[0]
    features = lake.read("gold.voter_features")
    counties = county_names(lake.read("silver.persons")).localCheckpoint()

    # Election-date scores, recomputed with the champions the score job used.
    client = tracking.configure(settings.mlflow)
    models, preds = {}, {}
    electorate = election_electorate(features, election_date)
    for kind in ("turnout", "support"):
        used = shifts.where(F.col("kind") == kind).select("run_id").distinct().collect()
        try:
            models[kind] = tracking.load_champion(settings.mlflow, kind)
        except RuntimeError:
            continue
        if used and used[0]["run_id"] != models[kind].run_id:
            raise SystemExit(f"the {kind} champion changed since the scoring run: re-run the score job")
        preds[kind] = apply_model(models[kind].model, spec_from_run(client.get_run(models[kind].run_id), kind),
                                  electorate, bounded=True)
    election = probability_frame(electorate, preds, counties).join(
        electorate.select("person_id", "state_voter_id"), on="person_id", how="left")
    for kind in ("turnout", "support"):
        col = f"{kind}_prob"
        if col not in election.columns:
            continue
        election = apply_shifts(election, KEYS, col, shifts.where(F.col("kind") == kind), f"{col}{CALIBRATED}")

    # The truth: true probabilities of the voter's registration, and whether it could vote then.
    registrations = read_truth(spark, settings.synth.out)["registrations"].dropDuplicates(["ncid"])
    truth = registrations
    could_vote = eligible(F.col("birth_date"), F.col("reg_date"), F.col("removal_date"), F.col("status_cd"),
                          F.lit(election_date))
    truth = truth.select(F.col("ncid").alias("state_voter_id"),
                         (F.col("p_turnout") * could_vote.cast("double")).alias("true_turnout"),
                         F.col("p_support").cast("double").alias("true_support"))
    election = election.join(truth, on="state_voter_id", how="left").localCheckpoint()

    # Precinct totals: model, calibrated, expected (truth) and actual (results).
    has_t = "turnout_prob" in election.columns
    has_s = "support_prob" in election.columns
    totals = {
        "before": precinct_totals(election, KEYS, "turnout_prob" if has_t else None,
                                  "support_prob" if has_s else None),
        "after": precinct_totals(election, KEYS, f"turnout_prob{CALIBRATED}" if has_t else None,
                                 f"support_prob{CALIBRATED}" if has_s else None),
        "expected": precinct_totals(election, KEYS, "true_turnout", "true_support"),
    }
    totals = {k: v.localCheckpoint() for k, v in totals.items()}
    raw = read_results(spark, settings.calibration.results)
    ballots = ballots_cast(raw)
    house = precinct_results(raw, settings.calibration.office, settings.calibration.district)
    actual = (ballots.join(house, on=KEYS, how="full")
              .select(*KEYS, "ballots", F.col("dem_votes").cast("double").alias("dem"),
                      F.col("two_party_share").alias("share")))
    located, pseudo = match_precincts(actual, election, KEYS)
    located = located.localCheckpoint()
    totals["actual"] = located

    precinct: dict = {}
    measures = [("ballots", "ballots")] if has_t else []
    measures += [("dem", "dem"), ("share", "share")] if has_s else []
    for measure, _ in measures:
        precinct[measure] = {
            f"{variant} vs expected": _errors(totals[variant], totals["expected"], measure, measure)
            for variant in ("before", "after", "actual")
        }
        precinct[measure].update({
            f"{variant} vs actual": _errors(totals[variant], located, measure, measure)
            for variant in ("before", "after")
        })
    county = {name: {k: (round(v, 1) if isinstance(v, float) else v) for k, v in frame.agg(
        F.sum("ballots").alias("ballots"), F.sum("dem").alias("dem")).first().asDict().items()}
        for name, frame in totals.items()}

    pairs = {}
    if has_t:
        pairs.update({"turnout before": ("turnout_prob", "true_turnout"),
                      "turnout after": (f"turnout_prob{CALIBRATED}", "true_turnout")})
    if has_s:
        pairs.update({"support before": ("support_prob", "true_support"),
                      "support after": (f"support_prob{CALIBRATED}", "true_support")})
    person_election = _person_errors(election, pairs)

    # Today's (published) scores: every scored voter is active, so the true turnout is p_turnout.
    published = lake.read("gold.voter_scores")
    truth_now = registrations.select(F.col("ncid").alias("state_voter_id"),
                                     F.col("p_turnout").cast("double").alias("true_turnout_now"),
                                     F.col("p_support").cast("double").alias("true_support"))
    scored = published.join(truth_now, on="state_voter_id", how="left")
    person_current = _person_errors(scored, {
        "turnout model": ("turnout_prob_model", "true_turnout_now"),
        "turnout published": ("turnout_prob", "true_turnout_now"),
        "support model": ("support_prob_model", "true_support"),
        "support published": ("support_prob", "true_support"),
    })

    check = {}
    for kind, col in (("turnout", "ballots"), ("support", "dem")):
        if kind not in kinds:
            continue
        # The published support sums are turnout-weighted (Σ w · s): "dem" here.
        table = shifts.where(F.col("kind") == kind).select(*KEYS, "predicted_after")
        joined = table.join(totals["after"], on=KEYS, how="inner")
        check[kind] = joined.agg(F.max(F.abs(F.col("predicted_after") - F.col(col)))).first()[0]
    pseudo_row = pseudo.agg(F.count("*").alias("n"), F.sum("ballots").alias("ballots")).first()
    size = election.agg(F.count("*").alias("voters"), F.countDistinct(*KEYS).alias("precincts")).first()
    return {
        "election_date": str(election_date),
        "calibrated": kinds,
        "models": {k: m.label for k, m in models.items()},
        "voters": {"election": size["voters"], "precincts": size["precincts"],
                   "current": published.count()},
        "result_precincts": {"located": located.count(), "pseudo": pseudo_row["n"],
                             "pseudo_ballots": pseudo_row["ballots"]},
        "county_totals": county,
        "precinct_error": precinct,
        "person_error": {"election": person_election, "current": person_current},
        "check_max_abs_diff_vs_published": check,
    }


def markdown_synthetic(result: dict) -> str:
    """The synthetic-mode results as a Markdown report."""
    s = result["summary"]
    lines = [
        f"# Precinct calibration against ground truth (synthetic state, {s['voters']['current']:,} scored voters)",
        "",
        *_provenance(result),
        "",
        f"Election {s['election_date']}: {s['voters']['election']:,} voters as of that date in "
        f"{s['voters']['precincts']:,} precincts; calibrated: {', '.join(s['calibrated'])} "
        f"(models {', '.join(f'{k} {v}' for k, v in s['models'].items())}). Result precincts: "
        f"{s['result_precincts']['located']:,} located, {s['result_precincts']['pseudo']} unmatched. "
        "Expected = Σ of the true probabilities over the voters the truth says could vote; "
        "actual = the generated results (one draw of those probabilities).",
        "",
        "## Precinct totals of the election",
        "",
        "| measure | prediction | n | MAE | median AE | bias | r |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for measure, rows in s["precinct_error"].items():
        for label, e in rows.items():
            lines.append(f"| {measure} | {label} | {e['n']} | {e['mae']:.4f} | {e['median_ae']:.4f} | "
                         f"{e['bias']:+.4f} | " + _corr(e) + " |")
    lines += ["", "County totals: " + "; ".join(
        f"{k}: ballots {v['ballots']}, DEM {v['dem']}" for k, v in s["county_totals"].items()) + ".", "",
        "## Per-person error against the true probabilities", "",
        "| scores | column | n | mean abs error | mean error |", "|---|---|---:|---:|---:|"]
    for scope, rows in s["person_error"].items():
        for label, e in rows.items():
            lines.append(f"| {scope} | {label} | {e['n']:,} | {e['mae']:.4f} | {e['bias']:+.4f} |")
    lines += ["", "Check (recomputed election-date sums vs the published predicted_after, max abs diff): "
              + ", ".join(f"{k} {v:.2e}" for k, v in s["check_max_abs_diff_vs_published"].items()) + ".", "",
              "## Reading", "",
              "- After calibration the election's precinct totals equal the actual results, so their error "
              "against the expected totals is exactly the results' own sampling noise (rows 'after' and "
              "'actual' vs expected): calibration removes the model's precinct-level bias and adds that noise. "
              "It helps where the model's error is larger than the noise.",
              "- Per person, one shift per precinct moves every voter of the precinct alike: it fixes the "
              "level (mean error) but cannot reorder voters; small precincts get large shifts from few "
              "ballots (see the δ range in gold.precinct_calibration).", ""]
    return "\n".join(lines)


def parse_contest(text: str) -> tuple[str, str | None]:
    """``OFFICE[:district]`` → ``(office, district)``."""
    office, _, district = text.partition(":")
    return office.strip().upper(), (district.strip() or None)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the measurements and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("county", "synthetic"), default="county")
    parser.add_argument("--conf", default=None,
                        help="configuration (county default: conf/nc_chatham_2018.yaml; synthetic: conf/local.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable)")
    parser.add_argument("--lakehouse", help="lakehouse folder (default: the configuration's)")
    parser.add_argument("--results", help="county mode: MEDSL precinct results CSV (default: calibration.results)")
    parser.add_argument("--calibrate", default=None,
                        help="county mode: calibration contest, OFFICE[:district] (default: the configuration's)")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--driver-memory", default=BENCH_SPARK.driver_memory)
    parser.add_argument("--name", default=None, help="suffix of the results files (default: chatham / synthetic)")
    args = parser.parse_args(argv)
    conf = args.conf or (str(CONF_DIR / "nc_chatham_2018.yaml") if args.mode == "county" else None)
    overrides = [*args.overrides, *([f"storage.lakehouse={Path(args.lakehouse).resolve()}"] if args.lakehouse else [])]
    settings = load_settings(conf, overrides, environ={})
    spark_settings = BENCH_SPARK.model_copy(update={"driver_memory": args.driver_memory})
    name = args.name or ("chatham" if args.mode == "county" else "synthetic")
    host = machine()
    if args.mode == "county":
        results_csv = Path(args.results).resolve() if args.results else settings.calibration.results
        if results_csv is None:
            raise SystemExit("no results: pass --results or set calibration.results")
        contest = (parse_contest(args.calibrate) if args.calibrate
                   else (settings.calibration.office.upper(), settings.calibration.district))
        result = run(settings, results_csv, contest, args.iterations, spark_settings)
        render = markdown
    else:
        if settings.calibration.results is None:
            raise SystemExit("synthetic mode needs calibration.results")
        spark = build_spark(spark_settings, settings.storage.metastore)
        try:
            result = {"summary": measure_synthetic(spark, settings)}
        finally:
            spark.stop()
        render = markdown_synthetic
    result = {
        "benchmark": "precinct_calibration",
        "mode": args.mode,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "-m", "bench.precinct_calibration", *(argv or sys.argv[1:])]),
        "versions": {"pyspark": pyspark.__version__, "python": sys.version.split()[0]},
        "machine": {**host, "load_average_at_end": list(os.getloadavg())},
        **result,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"precinct_calibration_{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / f"precinct_calibration_{name}.md").write_text(render(result))
    print(json.dumps(result["summary"], indent=2, default=str))


if __name__ == "__main__":
    main()
