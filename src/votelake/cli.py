"""The ``votelake`` command line: the same job functions as ``jobs/*.py``.

    votelake synth --voters N --seed S --out DIR
    votelake run JOB [--conf FILE] [--set key=value ...]
    votelake pipeline [--conf FILE] [--set key=value ...]
    votelake contracts render [--out FILE]   # the data dictionary of the published tables
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

from votelake import contracts
from votelake.config import REPO_ROOT, ConfigError, load_settings
from votelake.jobs import allocate, build, ingest, metrics, score, synth, train, universes
from votelake.jobs.common import run_jobs

JOBS = {"synth": synth.run, "ingest": ingest.run, "build": build.run, "train": train.run, "score": score.run,
        "universes": universes.run, "allocate": allocate.run, "metrics": metrics.run}
PIPELINE = ("ingest", "build", "train", "score", "universes", "allocate", "metrics")
DATA_DICTIONARY = REPO_ROOT / "docs" / "data_dictionary.md"


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default=None, help="YAML config (default: conf/local.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set synth.voters=5000 (repeatable)")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the requested jobs.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="votelake", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_synth = sub.add_parser("synth", help="generate a synthetic state's landing files and ground truth")
    p_synth.add_argument("--voters", type=int, help="number of voters (synth.voters)")
    p_synth.add_argument("--seed", type=int, help="random seed (synth.seed)")
    p_synth.add_argument("--out", help="output folder (synth.out); landing files go to OUT/landing")
    _config_args(p_synth)
    p_run = sub.add_parser("run", help="run one job")
    p_run.add_argument("job", choices=sorted(JOBS))
    _config_args(p_run)
    p_pipe = sub.add_parser("pipeline", help="run " + " → ".join(PIPELINE))
    _config_args(p_pipe)
    p_contracts = sub.add_parser("contracts", help="render the published tables' data dictionary")
    p_contracts.add_argument("action", choices=["render"])
    p_contracts.add_argument("--out", default=str(DATA_DICTIONARY), help=f"default: {DATA_DICTIONARY}")
    _config_args(p_contracts)
    args = parser.parse_args(argv)

    overrides = list(args.overrides)
    if args.command == "synth":
        for key, value in (("voters", args.voters), ("seed", args.seed), ("out", args.out)):
            if value is not None:
                overrides.append(f"synth.{key}={value}")
        if args.out is not None:
            overrides.append(f"landing={args.out.rstrip('/')}/landing")
    try:
        settings = load_settings(args.conf, overrides)
    except ConfigError as exc:
        print(f"votelake: {exc}", file=sys.stderr)
        return 2

    if args.command == "contracts":
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(contracts.render_markdown(contracts.load_contracts(settings.storage.contracts)))
        print(f"[votelake] data dictionary: {out}")
        return 0
    names = {"synth": ["synth"], "run": [getattr(args, "job", "")], "pipeline": list(PIPELINE)}[args.command]
    started = time.perf_counter()
    results = run_jobs(settings, [(n, JOBS[n]) for n in names])
    if args.command == "pipeline":
        print(f"[votelake] pipeline finished in {time.perf_counter() - started:.1f}s")
        print(f"[votelake] scores: {results['score']['table']} ({results['score'].get('rows', 'unchanged')} rows)")
        print(f"[votelake] MLflow: {settings.mlflow.tracking_uri} "
              f"(turnout run {results['train']['turnout']['run_id']}, support run {results['train']['support']['run_id']})")
        print(f"[votelake] browse runs: mlflow ui --backend-store-uri {settings.mlflow.tracking_uri}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
