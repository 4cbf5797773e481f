"""Forget job: erase people on request, from every table, export and artifact, and keep them suppressed.

Inputs: the identifiers to forget (``--state-voter-id``, ``--email``,
``--phone``, repeatable, or ``--from-file`` a CSV whose header names any of
``state_voter_id``, ``email``, ``phone``; a file keeps them out of the process
list and shell history) and ``--reason``.
Outputs: the people's rows deleted from every bronze, silver and gold table,
export files rewritten without them, their identifiers masked in reports and
MLflow artifacts, and one row per identifier in ``audit.erasures`` (a salted
hash, never the identifier): the suppression list every later universe build
honours. ``--purge-now`` also vacuums the changed tables at once (run it when
no other job is running); otherwise the maintain job's vacuum removes the old
versions after ``maintenance.retention_hours``.
Launch: ``spark-submit jobs/forget.py --state-voter-id ID --reason "..."`` or
``votelake forget --state-voter-id ID --reason "..."``.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from pyspark.sql import SparkSession

from votelake import erasure
from votelake.config import Settings
from votelake.jobs.common import job_main, parse_args
from votelake.transforms.erasure import KINDS


def options(parser: argparse.ArgumentParser) -> None:
    """The job's own arguments (also those of ``votelake forget``)."""
    parser.add_argument("--state-voter-id", dest="state_voter_id", action="append", default=[], metavar="ID")
    parser.add_argument("--email", action="append", default=[], metavar="ADDRESS")
    parser.add_argument("--phone", action="append", default=[], metavar="NUMBER")
    parser.add_argument("--from-file", type=Path, metavar="CSV",
                        help="identifiers in a CSV with a header naming state_voter_id, email and/or phone")
    parser.add_argument("--reason", required=True, help="why (recorded in audit.erasures; identifiers masked)")
    parser.add_argument("--purge-now", action="store_true",
                        help="vacuum the changed tables now, so no earlier version holds the people")


def build_args(argv: list[str]) -> argparse.Namespace:
    """The job's arguments from a command line (``--conf``/``--set`` included)."""
    return parse_args(__doc__.splitlines()[0], argv, options)


def identifiers(args: argparse.Namespace) -> dict[str, list[str]]:
    """The identifiers of the arguments and of ``--from-file``, by kind.

    Raises:
        ValueError: the file names none of the kinds.
    """
    given = {kind: list(getattr(args, kind)) for kind in KINDS}
    if args.from_file is not None:
        with Path(args.from_file).open(newline="") as handle:
            reader = csv.DictReader(handle)
            if not set(reader.fieldnames or ()) & set(KINDS):
                raise ValueError(f"--from-file: the header names none of {', '.join(KINDS)}")
            for row in reader:
                for kind in KINDS:
                    if (row.get(kind) or "").strip():
                        given[kind].append(row[kind])
    return given


def run(spark: SparkSession, settings: Settings, args: argparse.Namespace) -> dict:
    """Forget the people the arguments name (see :func:`votelake.erasure.forget`).

    Returns:
        The erasure's summary (counts and the request id; no identifier).
    """
    return erasure.forget(spark, settings, identifiers(args), args.reason, purge=args.purge_now)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point."""
    return job_main("forget", run, __doc__.splitlines()[0], argv, options=options)
