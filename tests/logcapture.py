"""rotator's logging set-up in a test process, undone afterwards.

``rotator.logs.configure`` changes process-wide state: structlog's configuration, the library
loggers it routes (their handler, level, and ``propagate = False``) and Python's last-resort
handler. A test that leaves them changed changes later tests: pytest (9+) attaches its own raw
capture to every non-propagating logger when a test starts, so a library logger left
non-propagating would hand a later test's unredacted records to pytest's captured log.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from rotator import logs


@contextmanager
def rotator_logs(level: str = "info") -> Iterator[io.StringIO]:
    """rotator's JSON logs into a buffer for the block; everything configure changed restored."""
    saved_structlog, saved_last = structlog.get_config(), logging.lastResort
    library = [logging.getLogger(name) for name in logs.LIBRARY_LOGGERS]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in library]
    stream = io.StringIO()
    logs.configure(format="json", level=level, stream=stream)
    try:
        yield stream
    finally:
        for logger, handlers, lvl, propagate in saved:
            logger.handlers[:] = handlers
            logger.setLevel(lvl)
            logger.propagate = propagate
        logging.lastResort = saved_last
        structlog.configure(**saved_structlog)
