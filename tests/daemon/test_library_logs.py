"""Libraries log through the standard library; their warnings join rotator's JSON lines."""

from __future__ import annotations

import json
import logging

from rotator.secret import Secret
from tests.logcapture import rotator_logs


class RecordsSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_library_warnings_become_redacted_library_log_lines() -> None:
    """A library's warning is one library_log JSON line naming its logger, secrets masked;
    its info lines are dropped."""
    secret = Secret("Library9Secret")
    root = RecordsSeen()
    with rotator_logs() as stream:
        logging.getLogger().addHandler(root)
        try:
            library = logging.getLogger("apscheduler.scheduler")
            library.info("job added")
            library.warning("job %s missed its run time", secret.reveal())
        finally:
            logging.getLogger().removeHandler(root)
    assert [r for r in root.records if r.name.startswith("apscheduler")] == []  # not unredacted
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["event"] == "library_log"
    assert line["logger"] == "apscheduler.scheduler"
    assert line["level"] == "warning"
    assert line["message"] == "job ******** missed its run time"


def test_any_other_librarys_warning_is_a_redacted_library_log_line_too() -> None:
    """A warning no handler takes (Python's last resort: a plain line on stderr) is a
    library_log line too, secrets masked."""
    secret = Secret("Orphan9Library")
    library = logging.getLogger("some.library.nobody.handles")
    library.propagate = False  # as in a process whose root logger has no handler
    try:
        with rotator_logs() as stream:
            library.warning("retrying with %s", secret.reveal())
    finally:
        library.propagate = True
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["event"], line["logger"]) == ("library_log", "some.library.nobody.handles")
    assert line["message"] == "retrying with ********"


def test_the_set_up_is_undone_for_the_tests_after() -> None:
    """Leaving the library loggers as rotator set them would let pytest capture a later test's
    raw library records (it hooks every non-propagating logger as a test starts)."""
    scheduler = logging.getLogger("apscheduler")
    before = (list(scheduler.handlers), scheduler.propagate, logging.lastResort)
    with rotator_logs():
        assert scheduler.propagate is False
    assert (list(scheduler.handlers), scheduler.propagate, logging.lastResort) == before
