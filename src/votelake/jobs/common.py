"""What every job shares: the thin ``main()`` shell (arguments, session, running, failure reports).

The lakehouse handle the jobs read and write through is :class:`votelake.lakehouse.Lakehouse`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Callable, Sequence

from pyspark.sql import SparkSession

from votelake import logs, progress
from votelake.config import ConfigError, Settings, load_settings
from votelake.locations import local_path
from votelake.session import build_spark, submitted_driver_memory


JobRun = Callable[[SparkSession, Settings], dict]


class JobFailed(Exception):
    """A job raised; carries the job's name (the cause is ``__cause__``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and the start of its message.

    Args:
        exc: the exception.
        limit: the most characters of message kept.

    Returns:
        ``Type: message``, with the message's lines joined and cut at ``limit``.
    """
    # Spark and layout errors run over many lines; the first few say what went wrong.
    message = " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(message) > limit:
        message = message[:limit].rstrip() + " ..."
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def report_failure(error: BaseException, what: str, settings: Settings | None = None) -> None:
    """Print the traceback, then one last line saying what failed and why (what a scheduler's log shows).

    With ``--json-logs`` the traceback is a field of one ERROR record instead.

    A Spark JVM that died (out of memory, killed by a signal) is named as such,
    with the setting to change, instead of the bare Py4J error it surfaces as.

    Args:
        error: the exception.
        what: what failed, e.g. ``job ingest``.
        settings: the run's configuration, to quote its memory setting.
    """
    why = jvm_death(error, settings) or one_line(error)
    if logs.in_json():  # a log collector gets the traceback as a field of one record
        logging.getLogger("votelake").error("%s failed: %s", what, why, exc_info=error)
    else:
        traceback.print_exception(error, file=sys.stderr)
    print(f"votelake: {what} failed: {why}", file=sys.stderr)


# How a dead JVM reaches Python: Py4J loses its socket, or the JVM's own error text arrives.
_LOST_JVM = ("Answer from Java side is empty", "Error while sending or receiving",
             "Error while receiving", "Connection refused", "Broken pipe", "Connection reset")


def jvm_death(error: BaseException, settings: Settings | None = None) -> str | None:
    """Say so when an error means the Spark JVM died, and which setting to change.

    Args:
        error: the exception a job raised.
        settings: the run's configuration (for the memory it asked for).

    Returns:
        One line naming the cause and the setting, or None when the JVM did not die.
    """
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    texts = [f"{type(e).__module__}.{type(e).__name__}: {e}" for e in chain]
    # Under spark-submit the JVM's memory is its --driver-memory, whatever the config says.
    submitted = submitted_driver_memory()
    if submitted is not None:
        setting = f"spark-submit's --driver-memory (now {submitted})"
        raise_it = f"raise {setting}, e.g. --driver-memory 8g"
    else:
        setting = f"spark.driver_memory (now {settings.spark.driver_memory if settings else 'its default'})"
        raise_it = f"raise {setting}, e.g. --set spark.driver_memory=12g"
    if any("java.lang.OutOfMemoryError" in t for t in texts):
        return (f"the Spark JVM ran out of memory (java.lang.OutOfMemoryError): {raise_it}; on a cluster, "
                "spark.conf.spark.executor.memory")
    if any("Not enough memory to build and broadcast" in t for t in texts):
        # Spark's own advice (turn broadcasts off) would slow every join of every job.
        return f"the Spark driver had too little memory to broadcast a table to the join: {raise_it}"
    # Died before PySpark connected to it: PySpark keeps no process to ask for a signal.
    starting = any("JAVA_GATEWAY_EXITED" in t for t in texts)
    link_lost = starting or any(type(e).__name__ == "Py4JNetworkError" for e in chain) \
        or any(t.startswith("py4j.") and any(m in t for m in _LOST_JVM) for t in texts)
    # The kernel closes a killed JVM's sockets before its parent can reap it, so Py4J's error
    # can arrive while the process is not yet a zombie: wait a moment for its status then.
    status = _jvm_exit_status(wait=10.0 if link_lost else 0.0)
    if status is None and not link_lost:
        return None
    how = ("was killed by SIGKILL, most often the kernel's out-of-memory killer" if status == -9
           else f"was killed by signal {-status}" if status is not None and status < 0
           else f"exited with status {status}" if status is not None
           else "exited while starting" if starting else "stopped answering")
    return (f"the Spark JVM {how}: if memory ran out, {setting} must fit in the "
            "machine's free memory with room for Python workers (lower it, or raise it for a larger state "
            "on a larger machine); its own log above says more")


def _jvm_exit_status(wait: float) -> int | None:
    """The local Spark JVM's exit status, when this process launched it and it has exited.

    Args:
        wait: seconds to wait for it to exit (0 to only look).
    """
    # Only for this report: PySpark keeps the launched JVM's process on its gateway;
    # there is no public API for it. Absent under spark-submit and Spark Connect.
    from pyspark import SparkContext

    process = getattr(getattr(SparkContext, "_gateway", None), "proc", None)
    if process is None:
        return None
    try:
        return process.wait(timeout=wait) if wait > 0 else process.poll()
    except subprocess.TimeoutExpired:  # alive: the link was lost some other way
        return None



def parse_args(description: str, argv: Sequence[str] | None,
               options: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The arguments every job takes: ``--conf FILE`` and repeatable ``--set key=value``.

    Args:
        description: the ``--help`` text.
        argv: arguments (default ``sys.argv[1:]``).
        options: adds a job's own arguments.
    """
    parser = argparse.ArgumentParser(description=description)
    if options is not None:
        options(parser)
    parser.add_argument("--conf", default=None, help="YAML config (default: the packaged conf/local.yaml)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one config key, e.g. --set synth.voters=5000 (repeatable)",
    )
    logs.add_arguments(parser)
    return parser.parse_args(argv)


def session_for(settings: Settings) -> SparkSession:
    """Build the job's SparkSession from the configuration (the one factory).

    Sets the process's permissions mask first (``storage.umask``), so the JVM
    and every file the job writes inherit it.
    """
    os.umask(int(settings.storage.umask, 8))
    for folder in output_roots(settings):
        # Spark's Hadoop file system sets 0644 on the files it writes whatever the
        # mask; a folder only its owner can open keeps them private all the same.
        folder.mkdir(mode=0o777, parents=True, exist_ok=True)
    return build_spark(settings.spark, settings.storage.metastore)


def output_roots(settings: Settings) -> list[Path]:
    """The local folders jobs write into: the lakehouse, exports, quality reports, MLflow artifacts."""
    roots = [settings.storage.lakehouse, settings.universes.exports, settings.quality.results_dir,
             settings.mlflow.artifact_root]
    local = [local_path(r) for r in roots if r is not None]  # a file: URI too; not a store's
    return [p for p in local if p is not None]


def run_jobs(settings: Settings, jobs: Sequence[tuple[str, JobRun]]) -> dict[str, dict]:
    """Run jobs in order on one session, showing each one's progress and logging its end.

    Args:
        settings: the validated configuration.
        jobs: ``(name, run)`` pairs.

    Returns:
        Each job's summary, with ``seconds``, ``rows_written`` and ``tables_written`` added.
    """
    spark = session_for(settings)
    results: dict[str, dict] = {}
    for name, run in jobs:
        with progress.job(name) as tracked:
            try:
                summary = run(spark, settings)
            except Exception as exc:
                raise JobFailed(name) from exc
        summary.update(seconds=tracked.seconds, rows_written=sum(tracked.rows.values()),
                       tables_written=list(tracked.rows))
        results[name] = summary
        # The whole summary goes to JSON logs; a person reads the run's table at the end (--log-level DEBUG: all).
        job_log = progress.job_logger(name)
        job_log.info("finished in %.1f s, %s rows written to %d table(s)", tracked.seconds,
                     f"{summary['rows_written']:,}", len(tracked.rows), extra={"job": name, "summary": summary})
        job_log.debug("%s", json.dumps(summary, default=str))
    return results


def job_main(name: str, run: Callable[..., dict], description: str, argv: Sequence[str] | None = None,
             options: Callable[[argparse.ArgumentParser], None] | None = None) -> dict:
    """The thin shell of every job: parse, load config, build the session, run.

    Args:
        name: the job's name (for messages).
        run: the job's ``run(spark, settings)``, or ``run(spark, settings, args)``
            for a job with ``options``.
        description: the ``--help`` text.
        argv: arguments (default ``sys.argv[1:]``).
        options: adds the job's own arguments.

    Returns:
        The job's summary.
    """
    args = parse_args(description, argv, options)
    logs.configure(args.log_level, args.json_logs)
    if options is not None:
        run = functools.partial(run, args=args)
    try:
        settings = load_settings(args.conf, args.overrides)
    except ConfigError as exc:
        print(f"votelake {name}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        return run_jobs(settings, [(name, run)])[name]
    except Exception as exc:
        # spark-submit passes the 1 on to the scheduler.
        report_failure((exc.__cause__ or exc) if isinstance(exc, JobFailed) else exc, f"job {name}", settings)
        raise SystemExit(1) from None
