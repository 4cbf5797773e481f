"""Allocation on a synthetic state, valued on its ground truth: the plan, the naive plan and the oracle's.

Reads the published ``gold.voter_scores`` of a synthetic state (run the jobs
through score first, e.g. with ``bench.model_quality``) and the generator's
true probabilities, and fills the same capacities (``allocation.*``) three ways:

- **plan**: by expected net votes from the scores (what the allocate job publishes);
- **naive**: by support score alone;
- **oracle**: by expected net votes from the true probabilities (the best any
  scores could do under these capacities).

Each plan is valued on the truth: the expected net votes of its attempts from
the true turnout and support probabilities and the true door uplift
(:func:`votelake.transforms.allocation.contact_value`). Writes
``bench/results/allocation_<voters/1000>k.{json,md}``.

Run: ``python -m bench.allocation --voters 1000000 --root /data/bench1m``
(``--set key=value`` overrides any setting, e.g. the capacities).
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from votelake.config import AllocationSettings
from votelake.jobs.allocate import naive_order
from votelake.jobs.common import session_for
from votelake.lakehouse import Lakehouse
from votelake.models.against_truth import truth_by_voter_id
from votelake.synth.generate import read_truth
from votelake.transforms import allocation as alloc

from bench.model_quality import settings_for, write_results
from bench.storage_bench import machine

PLANS = ("plan", "naive", "oracle")


def true_value(cfg: AllocationSettings) -> Column:
    """Expected net votes of a plan row's attempt on the truth (its channel's effects)."""
    values = {name: alloc.contact_value(channel, "p_turnout", "p_support", "uplift")
              for name, channel in cfg.channels.items()}
    return reduce(lambda out, name: F.when(F.col("channel") == name, values[name]).otherwise(out),
                  values, F.lit(None).cast("double"))


def value_on_truth(plan: DataFrame, truth: DataFrame, cfg: AllocationSettings) -> dict:
    """Attempts, modelled and true expected net votes and cost of a plan, by channel and in total.

    Args:
        plan: :func:`votelake.transforms.allocation.allocate` output.
        truth: :func:`truth_by_voter_id`.
        cfg: the channels the plan used.

    Returns:
        ``{channel or "all": {attempts, modelled_net_votes, true_net_votes, cost}}``.
    """
    valued = plan.join(truth, on="state_voter_id", how="inner").select("channel", "expected_net_votes", "cost",
                                                                         true_value(cfg).alias("true_value"))
    stats = [F.count("*").alias("attempts"), F.sum("expected_net_votes").alias("modelled_net_votes"),
             F.sum("true_value").alias("true_net_votes"), F.sum("cost").alias("cost")]
    rows = valued.groupBy("channel").agg(*stats).unionByName(
        valued.agg(*stats).select(F.lit("all").alias("channel"), "*")).collect()
    return {r["channel"]: {"attempts": r["attempts"], "modelled_net_votes": round(r["modelled_net_votes"], 1),
                           "true_net_votes": round(r["true_net_votes"], 1), "cost": round(r["cost"], 2)}
            for r in rows}


def markdown(result: dict) -> str:
    """The results as a Markdown summary."""
    lines = [f"# Allocation on the synthetic ground truth: {result['voters']:,} voters", "",
             f"Command: `{result['command']}`", "",
             f"Voters with scores and truth: {result['voters_scored']:,}. Capacities: `{result['allocation']}`.", "",
             "| plan | channel | attempts | cost | modelled net votes | true net votes |",
             "|---|---|---:|---:|---:|---:|"]
    for plan in PLANS:
        for channel, v in sorted(result["plans"][plan].items(), key=lambda kv: kv[0] == "all"):
            lines.append(f"| {plan} | {channel} | {v['attempts']:,} | {v['cost']:,.2f} | "
                         f"{v['modelled_net_votes']:,.1f} | {v['true_net_votes']:,.1f} |")
    totals = {p: result["plans"][p]["all"]["true_net_votes"] for p in PLANS}
    lines += ["", f"True net votes: plan {totals['plan']:,.1f}, naive {totals['naive']:,.1f} "
              f"(plan / naive {result['plan_over_naive']}), oracle {totals['oracle']:,.1f} "
              f"(plan / oracle {result['plan_over_oracle']}).",
              f"Seconds per plan (made and valued): {result['seconds']}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Make the three plans, value them on the truth, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voters", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--name", default=None, help="results file stem (default allocation_<voters/1000>k)")
    args = parser.parse_args(argv)
    settings = settings_for(args.voters, args.root.resolve(), args.overrides)
    cfg = settings.allocation
    spark = session_for(settings)
    lake = Lakehouse.open(spark, settings)
    truth = truth_by_voter_id(read_truth(spark, settings.synth.out)["registrations"]).cache()
    scores = (lake.read("gold.voter_scores")
              .where(F.col("turnout_prob").isNotNull() & F.col("support_prob").isNotNull()).cache())
    # The oracle sees the true probabilities where the plan sees the scores.
    oracle_input = scores.join(truth, on="state_voter_id", how="inner").select(
        *alloc.VOTER_COLUMNS, F.col("p_turnout").alias("turnout_prob"), F.col("p_support").alias("support_prob"),
        F.col("uplift").alias("persuasion_uplift"))
    makers = {"plan": lambda: alloc.allocate(scores, cfg),
              "naive": lambda: alloc.allocate(scores, cfg, order=naive_order),
              "oracle": lambda: alloc.allocate(oracle_input, cfg)}
    plans, seconds = {}, {}
    for name, make in makers.items():
        started = time.perf_counter()
        plans[name] = value_on_truth(make(), truth, cfg)
        seconds[name] = round(time.perf_counter() - started, 1)
    totals = {name: plans[name]["all"]["true_net_votes"] for name in PLANS}
    result = {
        "voters": args.voters, "machine": machine(),
        "command": "python -m bench.allocation " + " ".join(argv or sys.argv[1:]),
        "voters_scored": scores.count(), "allocation": cfg.model_dump(mode="json"),
        "plans": plans, "seconds": seconds,
        "plan_over_naive": round(totals["plan"] / totals["naive"], 2) if totals["naive"] > 0 else None,
        "plan_over_oracle": round(totals["plan"] / totals["oracle"], 2) if totals["oracle"] > 0 else None,
    }
    write_results(args.name or f"allocation_{args.voters // 1000}k", result, markdown(result))
    return result


if __name__ == "__main__":
    main()
