"""The status page: ``/status`` (HTML or JSON, filtered and paginated on the server) and
``/status/keys/<api_key>``, rendered from the daemon's in-memory snapshot. Read-only.

Modules: ``states`` (the state table), ``filters`` (query string, filter, pages), ``svg``
(pictures), ``html`` and ``jsondoc`` (the two renderings), ``text`` (escaping and formats).
``rotator.httpserver`` only routes to ``StatusPages.answer``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from rotator.errors import InvalidIdentifierError
from rotator.identifiers import parse_api_key
from rotator.snapshot import KeyStatus, StatusSnapshot, StepMark
from rotator.statuspage import html, jsondoc
from rotator.statuspage.filters import BadQueryError, Query, parse_query, select
from rotator.statuspage.states import State, state_of

StatusSource = Callable[[], StatusSnapshot]
StepsSource = Callable[[str, str], tuple[StepMark, ...]]  # (api key, run id) -> its steps
KEY_PREFIX: Final = "/status/keys/"
HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def _json(status: int, body: Any) -> Answer:
    return Answer(status, JSON, (json.dumps(body, indent=2, default=str) + "\n").encode())


def classify(status: StatusSnapshot) -> list[tuple[KeyStatus, State]]:
    now = status.generated_at
    return [(key, state_of(key, now)) for key in status.keys]


def render_html(status: StatusSnapshot, query: Query | None = None) -> str:
    """The overview page for ``query`` (default: the first page, no filter)."""
    query = query or Query()
    rows = classify(status)
    return html.overview(status, rows, select(rows, query), query)


def status_json(status: StatusSnapshot, query: Query | None = None) -> dict[str, Any]:
    query = query or Query()
    rows = classify(status)
    return jsondoc.status_json(status, rows, select(rows, query), query)


class StatusPages:
    """Answers the status paths; ``None`` for any other path (the server's 404)."""

    def __init__(self, status: StatusSource, steps: StepsSource | None = None) -> None:
        self._status = status
        self._steps = steps

    def answer(self, path: str, raw_query: str, *, wants_html: bool) -> Answer | None:
        if path not in ("/status", "/status.html", "/status.json") and not path.startswith(
            KEY_PREFIX
        ):
            return None
        try:
            query = parse_query(raw_query)
        except BadQueryError as exc:
            return _json(400, {"error": str(exc)})
        if path.startswith(KEY_PREFIX):
            return self._key(path[len(KEY_PREFIX) :], query)
        if path == "/status.html" or (path == "/status" and wants_html):
            return Answer(200, HTML, render_html(self._status(), query).encode())
        return _json(200, status_json(self._status(), query))

    def _key(self, segment: str, query: Query) -> Answer:
        try:
            api_key = parse_api_key(unquote(segment), source="path")
        except InvalidIdentifierError:
            return _json(404, {"error": "not a valid API key"})
        status = self._status()
        key = next((k for k in status.keys if k.api_key == api_key), None)
        if key is None:
            return _json(404, {"error": "no such managed key"})
        run = key.last_run
        steps = self._steps(key.api_key, run.id) if self._steps and run is not None else ()
        page = html.key_page(status, key, state_of(key, status.generated_at), steps, query)
        return Answer(200, HTML, page.encode())


__all__ = ["Answer", "StatusPages", "render_html", "status_json"]
