"""APScheduler logs through the standard library; its warnings join rotator's JSON lines."""

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
    saved, stream = structlog.get_config(), io.StringIO()
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
        structlog.configure(**saved)
    assert [r for r in root.records if r.name.startswith("apscheduler")] == []  # not unredacted
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "library_log"
    assert line["logger"] == "apscheduler.scheduler"
    assert line["level"] == "warning"
    assert line["message"] == "job ******** missed its run time"
