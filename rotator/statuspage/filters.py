"""The status page's query string (``?q=&state=&page=&refresh=``), parsed strictly and bounded,
and the server-side filter and pagination it asks for. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import parse_qsl, urlencode

from rotator.errors import RotatorError
from rotator.snapshot import KeyStatus
from rotator.statuspage.states import BY_NAME, State

PER_PAGE: Final = 100
MAX_PER_PAGE: Final = 1000
MAX_PAGE: Final = 100_000
MAX_Q: Final = 64
REFRESH_MIN, REFRESH_MAX = 5, 3600  # seconds; ?refresh= outside is clamped
KNOWN: Final = frozenset({"q", "state", "page", "per_page", "refresh"})


class BadQueryError(RotatorError):
    hint = "use ?q=TEXT&state=NAME&page=N&per_page=N&refresh=SECONDS"


@dataclass(frozen=True, kw_only=True)
class Query:
    q: str = ""
    state: str | None = None
    page: int = 1
    per_page: int = PER_PAGE
    refresh: int | None = None

    def link(self, **changes: object) -> str:
        """This query with ``changes``, as a query string (defaults left out)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [
            ("q", query.q),
            ("state", query.state or ""),
            ("page", "" if query.page == 1 else str(query.page)),
            ("per_page", "" if query.per_page == PER_PAGE else str(query.per_page)),
            ("refresh", "" if query.refresh is None else str(query.refresh)),
        ]
        text = urlencode([(k, v) for k, v in pairs if v])
        return f"?{text}" if text else "?"


@dataclass(frozen=True, kw_only=True)
class Page:
    rows: tuple[tuple[KeyStatus, State], ...]
    total: int  # keys managed
    matching: int  # keys the filter lets through
    page: int
    pages: int
    per_page: int

    def to_json(self) -> dict[str, int]:
        return {
            "page": self.page,
            "pages": self.pages,
            "per_page": self.per_page,
            "matching": self.matching,
            "total": self.total,
        }


def _int(name: str, text: str, low: int, high: int) -> int:
    if not text.isdigit() or len(text) > 7:
        raise BadQueryError(f"?{name}= must be a whole number")
    return min(max(int(text), low), high)


def parse_query(raw: str) -> Query:
    """The query string as a ``Query``; unknown parameters and bad numbers are refused."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=10)
    except ValueError as exc:
        raise BadQueryError("too many query parameters") from exc
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in KNOWN:
            raise BadQueryError("unknown query parameter")
        values[name] = value
    state = values.get("state") or None
    if state is not None and state not in BY_NAME:
        raise BadQueryError(f"?state= must be one of: {', '.join(BY_NAME)}")
    refresh = values.get("refresh") or None
    return Query(
        q=values.get("q", "").strip()[:MAX_Q],
        state=state,
        page=_int("page", values.get("page") or "1", 1, MAX_PAGE),
        per_page=_int("per_page", values.get("per_page") or str(PER_PAGE), 1, MAX_PER_PAGE),
        refresh=None if refresh is None else _int("refresh", refresh, REFRESH_MIN, REFRESH_MAX),
    )


def matches(key: KeyStatus, state: State, query: Query) -> bool:
    if query.state is not None and state.name != query.state:
        return False
    if not query.q:
        return True
    needle = query.q.casefold()
    return needle in key.api_key.casefold() or needle in (key.name or "").casefold()


def select(rows: Sequence[tuple[KeyStatus, State]], query: Query) -> Page:
    """The page of keys ``query`` asks for (a page past the end is the last one)."""
    found = [row for row in rows if matches(row[0], row[1], query)]
    pages = max(1, -(-len(found) // query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    return Page(
        rows=tuple(found[start : start + query.per_page]),
        total=len(rows),
        matching=len(found),
        page=page,
        pages=pages,
        per_page=query.per_page,
    )


__all__ = ["BadQueryError", "Page", "Query", "parse_query", "select"]
