"""The ``votelake`` command line: the same job functions as ``jobs/*.py``.

    votelake synth --voters N --seed S --out DIR
    votelake synth --next-delivery [--days 7] [--change-rate 0.01] [--out DIR]   # a later snapshot, one more day
    votelake run JOB [--conf FILE] [--set key=value ...]
    votelake pipeline [--conf FILE] [--set key=value ...]
    votelake forget --state-voter-id ID [--email E] [--phone P] --reason R [--purge-now]
    votelake contracts render [--out FILE]   # the data dictionary of the published tables
    votelake tables [--conf FILE]            # each table's current version and run (Spark-free)

Every command takes ``--log-level`` and ``--json-logs``; ``votelake --version`` prints the version.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

from votelake import contracts, logs, progress, readers
from votelake.config import ConfigError, Settings, load_settings
from votelake.jobs import (allocate, backtest, build, forget, ingest, maintain, metrics, score, segment, synth,
                           train, universes)
from votelake.jobs.common import JobFailed, report_failure, run_jobs
from votelake.models import tracking

JOBS = {"synth": synth.run, "ingest": ingest.run, "build": build.run, "train": train.run, "score": score.run,
        "universes": universes.run, "allocate": allocate.run, "metrics": metrics.run, "maintain": maintain.run,
        "backtest": backtest.run, "segment": segment.run}
PIPELINE = ("ingest", "build", "train", "score", "segment", "universes", "allocate", "metrics")
# Relative to the current directory: in a checkout, the repository's copy.
DATA_DICTIONARY = Path("docs") / "data_dictionary.md"
DESCRIPTION = "votelake: voter files, contacts and digital signals in; per-voter scores out, on Spark and Delta Lake."
EPILOG = """examples:
  votelake synth --voters 20000 --out data/synth    a synthetic state to try it on
  votelake pipeline --conf conf/local.yaml          every job, in order
  votelake run score --set spark.driver_memory=12g  one job, one setting changed
  votelake tables                                   what readers see now

Each job's inputs and outputs: docs/ in the repository, or `votelake run --help`."""

log = logging.getLogger(__name__)


def champion_runs(trained: Any, scored_models: Any = None) -> dict[str, dict[str, str | None]]:
    """Per model kind, its champion and the run that trained it, from the jobs' summaries.

    Reads the train job's summary (per kind: per learner ``run_id`` and
    ``model``, and ``champion``; or ``skipped``) without assuming every kind is
    there or has that shape; kinds not trained in this run come from the score
    job's models.

    Args:
        trained: the train job's summary (anything but a dict gives nothing).
        scored_models: the score job's ``models`` (kind to ``name/version``), if any.

    Returns:
        Kind to ``model`` (``name/version`` or None), ``run_id`` (None when this
        run did not train the champion) and ``note``.
    """
    found: dict[str, dict[str, str | None]] = {}
    for kind, result in (trained.items() if isinstance(trained, dict) else ()):
        if not isinstance(result, dict):
            continue
        if "skipped" in result:
            found[kind] = {"model": None, "run_id": None, "note": f"skipped: {result['skipped']}"}
            continue
        # One run for the kind, or one per candidate learner (the train job's shape).
        runs = {None: result} if "run_id" in result else {
            learner: r for learner, r in result.items() if isinstance(r, dict) and "run_id" in r}
        champion = result.get("champion") or (next(iter(runs.values())).get("model") if len(runs) == 1 else None)
        winner = next(((learner, r) for learner, r in runs.items() if r.get("model") == champion), None)
        if winner is not None:
            learner, r = winner
            found[kind] = {"model": champion, "run_id": r["run_id"],
                           "note": f"learner {learner}" if learner else "trained now"}
        else:
            found[kind] = {"model": champion, "run_id": None,
                           "note": "kept: no candidate of this run beat it" if champion else "no champion"}
    for kind, label in (scored_models.items() if isinstance(scored_models, dict) else ()):
        if kind not in found:
            found[kind] = {"model": label, "run_id": None, "note": "not trained in this run"}
        elif found[kind]["model"] is None:  # skipped now, but an earlier champion scored
            found[kind]["model"] = label
    return found


def _registry_run_id(settings: Settings, label: str) -> str | None:
    """The run that trained a registered ``name/version``, from the MLflow registry."""
    name, _, version = label.rpartition("/")
    try:
        return tracking.configure(settings.mlflow).get_model_version(name, version).run_id
    except Exception:  # the summary must not fail a finished pipeline; the label alone still helps
        log.debug("no run found for %s", label, exc_info=True)
        return None


def _print_summary(settings: Settings, results: dict[str, dict], seconds: float, pipeline: bool) -> None:
    """The run's closing lines: a table of its jobs; for the pipeline, the scores, each champion run, MLflow."""
    print(progress.summary_table(results))
    if not pipeline:
        return
    print(f"[votelake] pipeline finished in {seconds:.1f}s; tables under {settings.storage.lakehouse}")
    scored = results.get("score") if isinstance(results.get("score"), dict) else {}
    if "table" in scored:
        state = f"{scored['rows']} rows" if "rows" in scored else "unchanged"
        if scored.get("published") is False and scored.get("reason"):
            state += f"; not published: {scored['reason']}"
        print(f"[votelake] scores: {scored['table']} ({state})")
    for kind, champ in champion_runs(results.get("train"), scored.get("models")).items():
        run_id = champ["run_id"] or (_registry_run_id(settings, champ["model"]) if champ["model"] else None)
        named = f"{champ['model']}, run {run_id or 'unknown'}, " if champ["model"] else ""
        print(f"[votelake]   {kind} champion: {named}{champ['note']}")
    print(f"[votelake] MLflow runs: mlflow ui --backend-store-uri {settings.mlflow.tracking_uri}")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", default=None, help="YAML config (default: the packaged conf/local.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set synth.voters=5000 (repeatable)")
    logs.add_arguments(parser)


def _job_lines() -> str:
    """One line per job for ``votelake run --help``: the first line of its module's docstring."""
    said = {name: sys.modules[run.__module__].__doc__.splitlines()[0].split(": ", 1)[-1] for name, run in JOBS.items()}
    return "jobs:\n" + "\n".join(f"  {name:<10} {line}" for name, line in said.items())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the requested jobs.

    Args:
        argv: arguments (default ``sys.argv[1:]``).

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(prog="votelake", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"votelake {metadata.version('votelake')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p_synth = sub.add_parser("synth", help="generate a synthetic state's landing files and ground truth")
    p_synth.add_argument("--voters", type=int, help="number of voters (synth.voters)")
    p_synth.add_argument("--seed", type=int, help="random seed (synth.seed)")
    p_synth.add_argument("--out", help="output folder (synth.out); landing files go to OUT/landing")
    p_synth.add_argument("--next-delivery", action="store_true",
                         help="write the next delivery of the state already under OUT: a later snapshot with "
                              "--change-rate of its registrations changed, and one more day of contacts and digital")
    p_synth.add_argument("--days", type=int, default=7, help="days from the newest snapshot to the next (default 7)")
    p_synth.add_argument("--change-rate", type=float, default=0.01,
                         help="share of the registrations on the rolls that change (default 0.01)")
    _config_args(p_synth)
    p_run = sub.add_parser("run", help="run one job", epilog=_job_lines(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p_run.add_argument("job", choices=sorted(JOBS))
    _config_args(p_run)
    p_pipe = sub.add_parser("pipeline", help="run " + " → ".join(PIPELINE))
    _config_args(p_pipe)
    p_forget = sub.add_parser("forget", help="erase people from every table, export and artifact; keep them "
                                             "suppressed")
    forget.options(p_forget)
    _config_args(p_forget)
    p_contracts = sub.add_parser("contracts", help="render the published tables' data dictionary")
    p_contracts.add_argument("action", choices=["render"])
    p_contracts.add_argument("--out", default=str(DATA_DICTIONARY), help=f"default: {DATA_DICTIONARY}")
    _config_args(p_contracts)
    p_tables = sub.add_parser("tables", help="each table's current version (what readers see) and its run")
    _config_args(p_tables)
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.json_logs)

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
    if args.command == "tables":
        found = readers.status(settings.storage.lakehouse)
        print(json.dumps(found, indent=1))
        incomplete = sorted(name for name, f in found.items() if f["latest"] != f["current"])
        if incomplete:
            print(f"[votelake] incomplete runs changed {', '.join(incomplete)}: readers stay on the current "
                  "versions until the job is re-run", file=sys.stderr)
        return 0
    names = {"synth": ["next_delivery" if getattr(args, "next_delivery", False) else "synth"],
             "run": [getattr(args, "job", "")], "pipeline": list(PIPELINE), "forget": ["forget"]}[args.command]
    jobs = {**JOBS, "forget": functools.partial(forget.run, args=args)}
    if args.command == "synth":
        jobs["next_delivery"] = functools.partial(synth.next_delivery, days=args.days, rate=args.change_rate)
    started = time.perf_counter()
    try:
        results = run_jobs(settings, [(n, jobs[n]) for n in names])
    except JobFailed as failed:
        report_failure(failed.__cause__ or failed, f"job {failed.name}", settings)
        return 1
    except Exception as exc:  # outside the jobs, e.g. the Spark session could not start
        report_failure(exc, args.command, settings)
        return 1
    _print_summary(settings, results, time.perf_counter() - started, pipeline=args.command == "pipeline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
