"""structlog set-up: JSON lines to stdout (console renderer on a TTY), ``run_id``/``api_key``/
``step`` bound through contextvars, and a redaction processor as the last line of defence.

Libraries that log through the standard library join the same stream as ``library_log`` lines,
rendered by the same processors (redaction included) through structlog's ``ProcessorFormatter``:
APScheduler's warnings, and any other library's warning no handler takes (Python would print it
unredacted on stderr).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from rotator.secret import MASK, Secret, mask_known

SENSITIVE_KEYS = re.compile(r"(secret|token|password|passwd|authorization|api_secret)$", re.I)
SAFE_KEYS = {"secret_id", "new_secret_id", "old_secret_id", "secret_ids", "token_env"}
LIBRARY_LOGGERS = ("apscheduler",)  # their warnings and errors become library_log lines
LIBRARY_LEVEL = logging.WARNING


def _scrub(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        return mask_known(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


@functools.lru_cache(maxsize=1024)
def _sensitive(key: str) -> bool:
    """Whether a field of this name is masked whatever it holds (a log line's field names
    repeat: the pattern is matched once per name)."""
    return SENSITIVE_KEYS.search(key) is not None and key not in SAFE_KEYS


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask sensitive keys and every secret value this process knows, wherever it appears."""
    for key in list(event):
        if _sensitive(key) and event[key] is not None:
            event[key] = MASK
        else:
            event[key] = _scrub(event[key])
    return event


def configure(
    *,
    format: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    stream = stream or sys.stdout
    use_console = format == "console" or (format == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if use_console
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_shared(), redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _route_library_logs(stream, renderer, max(threshold, LIBRARY_LEVEL))


def _shared() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]


def _as_library_log(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A standard-library record as one ``library_log`` event naming its logger."""
    record: logging.LogRecord = event["_record"]
    event["message"] = str(event.pop("event", ""))[:500]
    event["event"] = "library_log"
    event["logger"] = record.name
    return event


class _LibraryHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler rotator installed, so a second ``configure`` replaces it."""


_strip_meta = structlog.stdlib.ProcessorFormatter.remove_processors_meta


def _route_library_logs(stream: TextIO, renderer: Any, level: int) -> None:
    handler = _LibraryHandler(stream)
    handler.setLevel(level)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_as_library_log, *_shared()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redact,
                renderer,
            ],
        )
    )
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _LibraryHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
    # Any other library's warning that no handler takes (httpx, SQLAlchemy, psycopg...) would
    # reach Python's last-resort handler: a plain, unredacted line on stderr. It takes this one.
    logging.lastResort = handler
