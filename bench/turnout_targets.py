"""Turnout champions of several MLflow stores scored for the elections ahead of one synthetic state.

Each store holds a champion trained on the same state (for example for another
target election, or by another learner). Every champion scores the state's
active voters for the next midterm and the next presidential general
(:func:`votelake.models.against_truth.target_quality`), against the
generator's truth as drawn (at the snapshot's ages) and at the voters' ages on
the election's day. Writes ``bench/results/<--name>.{json,md}``.

Run: ``python -m bench.turnout_targets --voters 200000 --root /tmp/b200 --name turnout_targets_200k
--store h63=sqlite:////tmp/b200/mlflow_a.db --store h798=sqlite:////tmp/b200/mlflow_b.db``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyspark.sql import functions as F

from votelake.jobs.common import session_for
from votelake.lakehouse import Lakehouse
from votelake.models import against_truth
from votelake.synth.generate import read_truth
from votelake.transforms.training_sets import feature_dates

from bench.model_quality import settings_for, write_results
from bench.storage_bench import machine


def markdown(result: dict) -> str:
    """The results as a table: one row per store and election."""
    lines = [f"# Turnout for the elections ahead, {result['voters']:,} voters", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']}", "",
             "| store | learner, horizon (days) | election | mean p | true mean (snapshot ages) | ECE | "
             "true mean (ages that day) | ECE | AUC |", "|---|---|---|---|---|---|---|---|---|"]
    for store, figures in result["stores"].items():
        for t in figures["targets"]:
            lines.append(f"| {store} | {figures['learner']}, {figures['horizon_days']} | {t['type']} {t['date']} | "
                         f"{t['mean_p']:.4f} | {t['mean_true']:.4f} | {t['ece']:.4f} | {t['mean_true_aged']:.4f} | "
                         f"{t['ece_aged']:.4f} | {t['auc']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Score each store's turnout champion for the elections ahead; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--store", action="append", required=True, help="label=MLflow tracking URI")
    parser.add_argument("--name", required=True, help="results file stem")
    args = parser.parse_args(argv)
    stores = dict(s.split("=", 1) for s in args.store)
    settings = {label: settings_for(args.voters, args.root.resolve(), [f"mlflow.tracking_uri={uri}"])
                for label, uri in stores.items()}
    first = next(iter(settings.values()))
    spark = session_for(first)
    truth = against_truth.truth_by_voter_id(read_truth(spark, first.synth.out)["registrations"])
    features = Lakehouse.open(spark, first).read_current("gold.voter_features")
    score_date = feature_dates(features)[-1]
    # Read once per champion and election below.
    current = features.where((F.col("as_of_date") == F.lit(score_date)) & F.col("is_active")).cache()
    result: dict = {"voters": args.voters, "machine": machine(), "score_date": score_date.isoformat(),
                    "command": "python -m bench.turnout_targets " + " ".join(argv or sys.argv[1:]), "stores": {}}
    for label, store in settings.items():
        _, run, _ = against_truth.load_champion(store, "turnout")
        result["stores"][label] = {
            "learner": run.data.params.get("learner"), "horizon_days": run.data.params.get("horizon_days", "0"),
            "targets": [against_truth.target_quality(store, current, truth, t)
                        for t in against_truth.next_of_each_level(score_date)]}
    current.unpersist()
    write_results(args.name, result, markdown(result))
    return result


if __name__ == "__main__":
    main()
