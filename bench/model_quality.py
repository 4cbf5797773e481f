"""Model quality and training time on a synthetic state with ground truth.

Runs the jobs (synth → ingest → build → train → score, or only those asked
for) on a synthetic state of ``--voters`` voters under ``--root``, then scores
the champion models against the generator's true probabilities
(:mod:`votelake.models.against_truth`): AUC of model, baseline and oracle on
the same held-out voters and the share of the gap closed, expected
calibration error, and the uplift model's Qini with its bootstrap interval
beside the oracle Qini. Writes ``bench/results/models_<voters>k.{json,md}``
(or ``<--name>.{json,md}``).

Run: ``python -m bench.model_quality --voters 1000000 --root /data/bench1m``
(``--jobs train,score`` re-runs only those jobs on an existing state;
``--set key=value`` overrides any setting, e.g. ``spark.driver_memory=12g``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from votelake.config import load_settings
from votelake.jobs import build, ingest, score, synth, train
from votelake.jobs.common import run_jobs, session_for
from votelake.lakehouse import Lakehouse
from votelake.models import propensity as prop
from votelake.models.against_truth import active_ids_scored, model_quality_against_truth, truth_by_voter_id
from votelake.resolve.evaluate import resolution_against_truth
from votelake.synth.generate import read_truth
from votelake.transforms.training_sets import feature_dates, support_training_set

from bench.storage_bench import machine

RESULTS = Path(__file__).resolve().parent / "results"
JOBS = {"synth": synth.run, "ingest": ingest.run, "build": build.run, "train": train.run, "score": score.run}


def write_results(stem: str, result: dict, summary: str) -> None:
    """Write ``bench/results/<stem>.json`` (the result) and ``<stem>.md`` (its summary), and print the summary."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text(summary)
    print(summary)


def settings_for(voters: int, root: Path, overrides: list[str]):
    """Settings of a synthetic state kept entirely under ``root``."""
    return load_settings(None, [
        f"synth.voters={voters}", f"synth.out={root / 'synth'}", f"landing={root / 'synth' / 'landing'}",
        f"storage.lakehouse={root / 'lakehouse'}", f"storage.metastore={root / 'metastore'}",
        f"quality.results_dir={root / 'quality'}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"mlflow.artifact_root={root / 'mlartifacts'}",
        *overrides,
    ])


def ceiling_groups() -> dict:
    """What a support model without protected attributes can see of a voter, coarsened."""
    return {
        "party": F.coalesce(F.col("party"), F.lit("?")),
        "age_band": F.when(F.col("age") < 35, 0).when(F.col("age") <= 65, 1).otherwise(2),
        "county_id": F.col("county_id"),
        "ballots": F.signum(F.col("dem_ballots") - F.col("rep_ballots")),
        "clicks": F.least(F.col("digital_clicks"), F.lit(3)),
    }


def support_ceiling(spark, settings, truth: DataFrame) -> dict:
    """The support AUC a perfect model without protected attributes could reach.

    Each voter's score is the mean true support of every voter sharing their
    party, age band (<35, 35-65, >65), county, primary-ballot lean and clicks
    (capped at 3); AUC on the support-ID voters' own labels, beside the
    baseline's and the oracle's on the same voters. A model using more of the
    inputs could do slightly better; one fitted on the IDs alone, worse.

    Returns:
        ``n``, ``auc``, ``baseline_auc``, ``oracle_auc``, ``gap_closed``.
    """
    lake = Lakehouse.open(spark, settings)
    features = lake.read("gold.voter_features")
    score_date = feature_dates(features)[-1]
    groups = ceiling_groups()
    current = features.where(F.col("as_of_date") == F.lit(score_date)).select(
        "person_id", "state_voter_id", *[c.alias(k) for k, c in groups.items()])
    known = current.join(truth_by_voter_id(truth).select("state_voter_id", "p_support"), "state_voter_id", "inner")
    means = known.groupBy(*groups).agg(F.avg("p_support").alias("p"))
    ids = support_training_set(features, lake.read("silver.contacts"), score_date).select(
        "person_id", "label", "baseline")
    rows = ids.join(known, "person_id", "inner").join(means, list(groups), "inner").cache()
    ceiling, base, oracle = (prop.auc(rows, col) for col in ("p", "baseline", "p_support"))
    n = rows.count()
    rows.unpersist()
    return {"n": n, "auc": ceiling, "baseline_auc": base, "oracle_auc": oracle,
            "gap_closed": (ceiling - base) / (oracle - base), "groups": list(groups)}


def markdown(result: dict) -> str:
    """The summary table of one run (a model type without a champion in this store says so)."""
    quality = result["quality"]
    lines = [f"# Model quality on a synthetic state of {result['voters']:,} voters", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']}", "",
             "| model | learner | held-out n | AUC | baseline AUC | oracle AUC | gap closed | ECE | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for kind in ("turnout", "support"):
        q = quality[kind]
        lines.append(f"| {kind} | {q['skipped']} |" if "skipped" in q else
                     f"| {kind} | {q['learner']} | {q['n']:,} | {q['auc']:.4f} | {q['baseline_auc']:.4f} | "
                     f"{q['oracle_auc']:.4f} | {q['gap_closed']:.2f} | {q['ece']:.4f} | {q['train_seconds']:.0f} |")
    p = quality["persuasion"]
    lines += ["", "| uplift | learner | experiment rows | Qini (95% CI) | oracle Qini (95% CI) | observed ATE "
              "| true ATE |",
              "|---|---|---|---|---|---|---|",
              f"| persuasion | {p['skipped']} |" if "skipped" in p else
              f"| persuasion | {p['learner']} | {p['experiment_rows']:,} | {p['qini']:.5f} ({p['qini_low']:.5f}, "
              f"{p['qini_high']:.5f}) | {p['oracle_qini']:.5f} ({p['oracle_qini_low']:.5f}, "
              f"{p['oracle_qini_high']:.5f}) | {p['observed_ate']:.4f} | {p['true_ate']:.4f} |",
              "", "Job wall times (s): " + ", ".join(f"{k} {v}" for k, v in result["job_seconds"].items())]
    i = quality.get("identity")
    if i:
        d, scored = i["resolution"]["dedupe"], i["scored"]
        lines += ["", f"Identity: duplicate registrations precision {d['precision']:.4f}, recall {d['recall']:.4f} "
                  f"({i['method']}); active voter ids scored {scored['scored']:,} of {scored['active_ids']:,} "
                  f"({scored['share']:.4%}); score rows answering for several ids {scored['multi_id_rows']:,}."]
    if "horizon_days" in quality["turnout"]:
        lines.append(f"Turnout learnt from examples measured {quality['turnout']['horizon_days']} days ahead of "
                     "their general (the configured target's horizon); both elections below are scored by it.")
    for t in quality["turnout"].get("targets", []):
        lines.append(f"Turnout for the {t['type']} general of {t['date']}: mean {t['mean_p']:.4f} against the true "
                     f"{t['mean_true']:.4f}, ECE against the true probabilities {t['ece']:.4f}"
                     + (f"; at the voters' ages on that day (the generator's law for past generals) true mean "
                        f"{t['mean_true_aged']:.4f}, ECE {t['ece_aged']:.4f}" if "ece_aged" in t else "") + ".")
    r = quality["support"].get("ranking")
    if r:
        published = r.get("published_spearman")
        lines.append(f"Support Spearman against the true probability: published score "
                     f"{'n/a' if published is None else f'{published:.4f}'}, model alone {r['model_spearman']:.4f}, "
                     f"party registration alone {r['party_spearman']:.4f} ({r['n']:,} active voters).")
    c = quality.get("support_ceiling")
    if c:
        lines += ["", f"Support ceiling without protected attributes (true mean support by {', '.join(c['groups'])}; "
                  f"{c['n']:,} voters with IDs): AUC {c['auc']:.4f}, baseline {c['baseline_auc']:.4f}, oracle "
                  f"{c['oracle_auc']:.4f}, gap closed {c['gap_closed']:.2f}."]
    return "\n".join(lines) + "\n"


def identity(lake: Lakehouse, settings, truth: dict) -> dict:
    """Resolution against the truth and the share of active voter ids the published scores answer for."""
    resolution = resolution_against_truth(lake.read("silver.person_ids"), lake.read("silver.contacts"),
                                          lake.read("silver.digital_events"), truth, settings.state)
    return {"method": settings.resolve.method, "resolution": resolution.as_dict(),
            "scored": active_ids_scored(lake.read("gold.voter_scores"), truth["registrations"])}


def main(argv: list[str] | None = None) -> dict:
    """Run the jobs, evaluate against the truth, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--jobs", default="synth,ingest,build,train,score")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default=None, help="results file stem (default models_<voters/1000>k)")
    args = parser.parse_args(argv)
    settings = settings_for(args.voters, args.root.resolve(), args.overrides)
    names = [n for n in args.jobs.split(",") if n]
    started = time.perf_counter()
    summaries = run_jobs(settings, [(n, JOBS[n]) for n in names]) if names else {}
    spark = session_for(settings)
    truths = read_truth(spark, settings.synth.out)
    truth = truths["registrations"]
    quality = model_quality_against_truth(spark, settings, truth)
    quality["support_ceiling"] = support_ceiling(spark, settings, truth)
    lake = Lakehouse.open(spark, settings)
    if lake.version("gold.voter_scores") is not None:
        quality["identity"] = identity(lake, settings, truths)
    result = {
        "voters": args.voters, "machine": machine(),
        "command": "python -m bench.model_quality " + " ".join(argv or sys.argv[1:]),
        "job_seconds": {n: s.get("seconds") for n, s in summaries.items()},
        "total_seconds": round(time.perf_counter() - started, 1),
        "train": summaries.get("train"), "quality": quality,
    }
    write_results(args.name or f"models_{args.voters // 1000}k", result, markdown(result))
    return result


if __name__ == "__main__":
    main()
