"""Logging and progress: one text format or JSON lines, quiet libraries, a progress line per interval, the run table."""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import pty
import re
import struct
import termios
import time

import pytest

from votelake import logs, progress


@pytest.fixture
def logged():
    """Configure logging into a buffer (text, INFO); restore the root logger's handlers and level afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET}
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)
    logging.captureWarnings(False)


def test_text_lines_name_our_loggers_shortly_and_hold_chatty_libraries_to_warnings(logged):
    logs.configure("INFO", stream=logged)
    logging.getLogger("votelake.jobs.build").info("resolving %d registrations", 12)
    logging.getLogger("splink.internals.em_training").info("iteration 3")
    logging.getLogger("splink.internals.em_training").warning("level not observed")
    logging.getLogger("py4j.clientserver").info("answer received")
    logging.getLogger("votelake.jobs.build").debug("not shown at INFO")
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO build: resolving 12 registrations\n", logged.getvalue())


def test_debug_shows_every_library(logged):
    logs.configure("DEBUG", stream=logged)
    logging.getLogger("splink.internals.em_training").info("iteration 3")
    assert "INFO splink.internals.em_training: iteration 3" in logged.getvalue()


def test_json_lines_carry_the_fields_a_log_collector_indexes(logged):
    logs.configure("INFO", json_logs=True, stream=logged)
    logging.getLogger("votelake.jobs.common").info("score: finished", extra={"job": "score", "summary": {"rows": 3}})
    try:
        raise ValueError("bad row")
    except ValueError:
        logging.getLogger("votelake.jobs.common").exception("failed")
    first, second = (json.loads(line) for line in logged.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "logger", "message", "job", "summary")} == {
        "level": "INFO", "logger": "votelake.jobs.common", "message": "score: finished", "job": "score",
        "summary": {"rows": 3}}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["level"] == "ERROR" and "ValueError: bad row" in second["error"]


def test_an_unknown_level_is_refused_naming_the_levels():
    with pytest.raises(ValueError, match="DEBUG, INFO, WARNING, ERROR"):
        logs.configure("LOUD")


def test_a_long_stage_logs_a_progress_line_each_interval_and_the_job_keeps_its_commits(logged):
    logs.configure("INFO", stream=logged)
    with progress.job("build", every=0.2) as tracked:
        progress.stage("resolving registrations")
        progress.committed("silver.persons", 120)
        time.sleep(0.5)
        progress.committed("silver.persons", 5)
        progress.committed("audit.runs", 1)
    progress.committed("silver.persons", 99)  # after the job: recorded nowhere
    beats = logged.getvalue().splitlines()
    assert len(beats) >= 2, beats
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d INFO build: 0:00 so far, resolving registrations", b)
               for b in beats), beats
    assert tracked.rows == {"silver.persons": 125, "audit.runs": 1}
    assert 0.5 <= tracked.seconds < 5


def _pty(columns: int):
    """A pseudo-terminal of the given width: its reading end (non-blocking) and its writing end as a text stream."""
    reader, writer = pty.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    os.set_blocking(reader, False)
    return reader, os.fdopen(writer, "w", buffering=1)


def _run_a_job_on(stream, reader: int, seconds: float) -> str:
    """Log into ``stream`` while a job runs; what the terminal got."""
    logs.configure("INFO", stream=stream)
    with progress.job("build", every=0.2):
        progress.stage("resolving registrations")
        time.sleep(seconds)
    try:
        return os.read(reader, 65536).decode()
    except BlockingIOError:  # nothing was written
        return ""
    finally:
        stream.close()
        os.close(reader)


def test_a_terminal_redraws_one_status_line_and_an_unsized_one_gets_progress_lines(logged):
    assert not logs.draws_in_place(logged)  # a buffer is no terminal
    reader, sized = _pty(120)
    assert logs.draws_in_place(sized)
    drawn = _run_a_job_on(sized, reader, 2.5)
    # Redrawn in place each second (carriage returns, no line of its own), and cleared at the end.
    assert re.search(r"\rbuild: 00:0[1-3], resolving registrations", drawn) and "so far" not in drawn, drawn
    # A terminal that reports no width would have the line cut to nothing: it gets a log's lines instead.
    reader, unsized = _pty(0)
    assert not logs.draws_in_place(unsized)
    drawn = _run_a_job_on(unsized, reader, 0.5)
    assert "INFO build: 0:00 so far, resolving registrations" in drawn, drawn


def test_the_run_table_lists_each_job_with_its_time_rows_and_tables():
    table = progress.summary_table({
        "ingest": {"seconds": 85.24, "rows_written": 1234567, "tables_written": ["bronze.ncvoter", "audit.runs",
                                                                                 "bronze.ncvhis"]},
        "train": {"seconds": 313.0, "rows_written": 0, "tables_written": []},
        "maintain": {"seconds": 2.0, "rows_written": 4, "tables_written": ["audit.runs"]}})
    assert table.splitlines() == [
        "job       seconds  rows written  tables",
        "ingest       85.2     1,234,567  bronze.ncvoter and 1 more",
        "train       313.0             0  -",
        "maintain      2.0             4  audit.runs",
    ]
