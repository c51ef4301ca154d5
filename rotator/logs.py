"""structlog set-up: JSON lines to stdout (console renderer on a TTY), ``run_id``/``api_key``/
``step`` bound through contextvars, and a redaction processor as the last line of defence."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from rotator.secret import MASK, Secret, known_values

SENSITIVE_KEYS = re.compile(r"(secret|token|password|passwd|authorization|api_secret)$", re.I)
SAFE_KEYS = {"secret_id", "new_secret_id", "old_secret_id", "secret_ids", "token_env"}


def _scrub(value: Any, values: frozenset[str]) -> Any:
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, str):
        for known in values:
            if known in value:
                value = value.replace(known, MASK)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v, values) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask sensitive keys and every secret value this process knows, wherever it appears."""
    values = known_values()
    for key in list(event):
        if SENSITIVE_KEYS.search(key) and key not in SAFE_KEYS and event[key] is not None:
            event[key] = MASK
        else:
            event[key] = _scrub(event[key], values)
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
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
