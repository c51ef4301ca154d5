"""Libraries log through the standard library; their warnings join rotator's JSON lines."""

from __future__ import annotations

import io
import json
import logging

import structlog

from rotator import logs
from rotator.secret import Secret


class RecordsSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_library_warnings_become_redacted_library_log_lines() -> None:
    """A library's warning is one library_log JSON line naming its logger, secrets masked;
    its info lines are dropped."""
    saved, saved_last, stream = structlog.get_config(), logging.lastResort, io.StringIO()
    secret = Secret("Library9Secret")
    logs.configure(format="json", level="info", stream=stream)
    root = RecordsSeen()
    logging.getLogger().addHandler(root)
    try:
        library = logging.getLogger("apscheduler.scheduler")
        library.info("job added")
        library.warning("job %s missed its run time", secret.reveal())
    finally:
        logging.getLogger().removeHandler(root)
        logging.lastResort = saved_last
        structlog.configure(**saved)
    assert [r for r in root.records if r.name.startswith("apscheduler")] == []  # not unredacted
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "library_log"
    assert line["logger"] == "apscheduler.scheduler"
    assert line["level"] == "warning"
    assert line["message"] == "job ******** missed its run time"


def test_any_other_librarys_warning_is_a_redacted_library_log_line_too() -> None:
    """A warning no handler takes (Python's last resort: a plain line on stderr) is a
    library_log line too, secrets masked."""
    saved, saved_last = structlog.get_config(), logging.lastResort
    stream, secret = io.StringIO(), Secret("Orphan9Library")
    logs.configure(format="json", level="info", stream=stream)
    library = logging.getLogger("some.library.nobody.handles")
    library.propagate = False  # as in a process whose root logger has no handler
    try:
        library.warning("retrying with %s", secret.reveal())
    finally:
        logging.lastResort = saved_last
        structlog.configure(**saved)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["event"], line["logger"]) == ("library_log", "some.library.nobody.handles")
    assert line["message"] == "retrying with ********"
