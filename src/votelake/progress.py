"""A running job's progress: the stage it is in, a line at least every so often, and what it wrote.

Jobs name their stages (:func:`stage`); the store reports each commit
(:func:`committed`). While a job runs (:func:`job`), a terminal shows one
``tqdm`` line updated in place with the job, its time so far and its stage;
elsewhere (a scheduler's log, a pipe) a line is logged at each interval. The
run's summary table (:func:`summary_table`) comes from the same records.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Iterator

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from votelake import logs

log = logging.getLogger("votelake.progress")

# A long stage logs a line at least this often (seconds) outside a terminal.
EVERY = 30.0


@dataclass
class JobProgress:
    """One job's progress while it runs, and afterwards what it wrote.

    Attributes:
        name: the job's name.
        every: seconds between progress lines.
        started: ``time.monotonic()`` at its start.
        stage: what it is doing now.
        seconds: its run time, once finished.
        rows: rows committed per table, in the order first written (the store's commit metrics).
    """

    name: str
    every: float = EVERY
    started: float = field(default_factory=time.monotonic)
    stage: str = "reading its inputs"
    seconds: float | None = None
    rows: dict[str, int] = field(default_factory=dict)

    def elapsed(self) -> str:
        """Time so far as ``m:ss``."""
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        return f"{minutes}:{seconds:02d}"

    def line(self) -> str:
        """The progress line: time so far, stage (the job names the logger)."""
        return f"{self.elapsed()} so far, {self.stage}"


def job_logger(name: str) -> logging.Logger:
    """The logger of a job's own lines (``votelake.<job>``: its text lines read ``INFO build: ...``)."""
    return logging.getLogger(f"votelake.{name}")


_lock = threading.Lock()
_running: JobProgress | None = None


def stage(text: str) -> None:
    """Say what the running job is doing now (nothing happens outside a job).

    Args:
        text: a few words, e.g. ``resolving registrations (Splink)``.
    """
    with _lock:
        if _running is not None:
            _running.stage = text
    log.debug("%s", text)


def committed(table: str, rows: int) -> None:
    """Record a commit of the running job (called by the store).

    Args:
        table: the table's name.
        rows: rows the commit wrote.
    """
    with _lock:
        if _running is not None:
            _running.rows[table] = _running.rows.get(table, 0) + rows


@contextmanager
def job(name: str, every: float = EVERY) -> Iterator[JobProgress]:
    """Track a job while the block runs; log its end.

    Args:
        name: the job's name.
        every: seconds between progress lines outside a terminal.

    Yields:
        The job's :class:`JobProgress` (its ``seconds`` set on the way out).
    """
    global _running
    progress = JobProgress(name, every)
    job_log = job_logger(name)
    with _lock:
        _running = progress
    done = threading.Event()
    # Drawn on the terminal the log lines go to.
    bar = tqdm(total=None, desc=name, bar_format="{desc}: {elapsed}{postfix}", file=logs.terminal(), leave=False,
               dynamic_ncols=True) if logs.in_terminal() else None

    def beat() -> None:
        # A terminal's line is redrawn each second; a log gets a line per interval.
        while not done.wait(1.0 if bar is not None else every):
            if bar is not None:
                bar.set_postfix_str(progress.stage)
            else:
                job_log.info("%s", progress.line(), extra={"job": name, "stage": progress.stage})

    beater = threading.Thread(target=beat, name=f"progress-{name}", daemon=True)
    beater.start()
    try:
        # Log lines are written above the terminal's progress line, not through it.
        with logging_redirect_tqdm() if bar is not None else nullcontext():
            yield progress
    finally:
        done.set()
        beater.join()
        if bar is not None:
            bar.close()
        progress.seconds = round(time.monotonic() - progress.started, 1)
        with _lock:
            _running = None


def summary_table(results: dict[str, dict]) -> str:
    """The end-of-run table: each job's seconds, rows written and the tables it wrote.

    Args:
        results: job name to summary, in order, each with the ``seconds``,
            ``rows_written`` and ``tables_written`` that running it recorded.

    Returns:
        The table as text, a job per line; the tables named are the first
        written (audit tables only when there is no other) and how many more.
    """
    rows = [("job", "seconds", "rows written", "tables")]
    for name, summary in results.items():
        written = summary.get("tables_written", [])
        tables = [t for t in written if not t.startswith("audit.")] or written
        named = (tables[0] + (f" and {len(tables) - 1} more" if len(tables) > 1 else "")) if tables else "-"
        rows.append((name, f"{summary.get('seconds') or 0:,.1f}", f"{summary.get('rows_written', 0):,}", named))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)
