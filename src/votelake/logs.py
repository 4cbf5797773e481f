"""One logging set-up for the command line and the spark-submit jobs.

Text lines for people (``14:02:11 INFO build: ...``) or JSON lines for
machines (``--json-logs``), at one level (``--log-level``), with the libraries
that talk a lot at INFO held to warnings. Spark's own JVM log is configured by
the packaged ``conf/log4j2.properties``, which the session factory and
``python -m votelake.jars submit-args`` hand to the driver JVM.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TEXT_DATE_FORMAT = "%H:%M:%S"
# Spark's JVM log: warnings and errors, the known noise filtered out (see the file's comments).
LOG4J_CONFIG = Path(__file__).parent / "conf" / "log4j2.properties"

# Libraries that log their routine steps at INFO, or warn of what is expected here.
# Each is held to the level given unless --log-level DEBUG asks for everything.
QUIET = {
    # Py4J logs every call into the JVM at INFO/DEBUG.
    "py4j": logging.WARNING,
    # Splink narrates each EM iteration and warns when a training sample lacks a
    # comparison level (rare levels often do); the model's parameters and charts
    # record what it learnt.
    "splink": logging.ERROR,
    # Great Expectations and MLflow announce each context, run and registration.
    "great_expectations": logging.WARNING,
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    "urllib3": logging.WARNING,
    "matplotlib": logging.WARNING,
}

# Attributes every LogRecord has: the rest were passed with ``extra=`` and go into JSON lines.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message and any ``extra=`` fields."""

    # The timestamp ends in Z: it must be UTC whatever the machine's zone.
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        """Format a record as a JSON line.

        Args:
            record: the log record.

        Returns:
            The JSON text (``ts``, ``level``, ``logger``, ``message``, extras, ``error``).
        """
        line = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The text format, naming our own loggers by their last part (``votelake.jobs.build`` → ``build``)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        """Format a record as a text line.

        Args:
            record: the log record.

        Returns:
            The line.
        """
        if record.name.startswith("votelake."):
            record = logging.makeLogRecord({**vars(record), "name": record.name.rsplit(".", 1)[-1]})
        return super().format(record)


_terminal: IO[str] | None = None  # where lines go, when it is a terminal that can redraw a line
_json = False


def in_terminal() -> bool:
    """True when text lines go to a terminal, where progress can be drawn in place."""
    return _terminal is not None


def terminal() -> IO[str] | None:
    """The terminal text lines go to (where a status line is drawn), or None."""
    return _terminal


def draws_in_place(stream: IO[str]) -> bool:
    """Whether a stream is a terminal of known width, where a status line can be redrawn.

    A terminal that reports no width (0 columns: a pseudo-terminal nobody
    sized, as some CI runners and ``script`` give) would have a line cut to
    nothing, so it gets the periodic lines a log gets.

    Args:
        stream: where the lines go.

    Returns:
        True for a sized terminal.
    """
    try:
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):  # no file descriptor (a notebook's stream, a StringIO)
        return False


def in_json() -> bool:
    """True when lines are JSON objects (``--json-logs``)."""
    return _json


def configure(level: str = "INFO", json_logs: bool = False, stream: IO[str] | None = None) -> None:
    """Send every logger's records to one handler, in one format.

    Replaces handlers an earlier call installed, so a notebook or a test may
    call it again. Python warnings are logged too (logger ``py.warnings``).

    Args:
        level: the least severe level shown (one of :data:`LEVELS`).
        json_logs: one JSON object per line instead of text.
        stream: where lines go (default standard error, leaving standard
            output to results).
    """
    if level.upper() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    global _terminal, _json
    numeric = getattr(logging, level.upper())
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    _terminal = stream if not json_logs and draws_in_place(stream) else None
    _json = json_logs
    handler.set_name("votelake")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "votelake"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name, quiet in QUIET.items():
        # At DEBUG, everything; otherwise the library's own level, never below the one asked for.
        logging.getLogger(name).setLevel(numeric if numeric == logging.DEBUG else max(quiet, numeric))
    # MLflow gives its logger a handler and format of its own at import: its lines come here instead.
    mlflow_log = logging.getLogger("mlflow")
    mlflow_log.handlers, mlflow_log.propagate = [], True
    # ... and draws a progress bar for each artifact it fetches; the job's own progress is the one shown.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.captureWarnings(True)


def add_arguments(parser) -> None:
    """Add ``--log-level`` and ``--json-logs`` to an argument parser.

    Args:
        parser: an ``argparse.ArgumentParser``.
    """
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LEVELS,
                        help="least severe messages shown (default INFO)")
    parser.add_argument("--json-logs", action="store_true",
                        help="log one JSON object per line (for log collectors) instead of text")
