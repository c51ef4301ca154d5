"""The control API's routes, parsed from the raw request path: pure, no I/O.

Each segment is percent-decoded on its own, after splitting, so ``..%2f`` or ``%00`` inside a
segment can never add or climb one; an API key must then pass ``parse_api_key`` and a run id
its own pattern, or the request is refused (400) before anything else happens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from rotator.errors import InvalidIdentifierError
from rotator.identifiers import ApiKey, parse_api_key

PREFIX: Final = "/v1"
KEY_ACTIONS: Final = ("rotate", "rollback", "pause", "resume")
_RUN_ID: Final = re.compile(r"[0-9A-Za-z-]{1,64}")


class RouteError(Exception):
    """A request the routes refuse: ``status`` and a message that echoes nothing hostile."""

    def __init__(self, status: int, message: str, *, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.allow = allow


@dataclass(frozen=True, kw_only=True)
class Route:
    action: str  # one of KEY_ACTIONS, "keys" or "run"
    api_key: ApiKey | None = None
    run_id: str | None = None

    @property
    def writes(self) -> bool:
        return self.action in KEY_ACTIONS

    def capability_path(self, vault_path: str) -> str:
        """Where Vault is asked: ``<vault_path>/<api_key>/<action>``, ``/keys`` or ``/runs``."""
        if self.api_key is not None:
            return f"{vault_path}/{self.api_key}/{self.action}"
        return f"{vault_path}/{'keys' if self.action == 'keys' else 'runs'}"


def is_control_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def match(method: str, path: str) -> Route:
    """The route for ``method`` on the raw ``path`` (still percent-encoded), or ``RouteError``."""
    raw = path[len(PREFIX) :].strip("/").split("/")
    parts = [unquote(p, errors="replace") for p in raw]
    if parts == ["keys"]:
        _method(method, "GET")
        return Route(action="keys")
    if len(parts) == 2 and parts[0] == "runs":
        _method(method, "GET")
        if _RUN_ID.fullmatch(parts[1]) is None:
            raise RouteError(400, "not a valid run id")
        return Route(action="run", run_id=parts[1])
    if len(parts) == 3 and parts[0] == "keys" and parts[2] in KEY_ACTIONS:
        _method(method, "POST")
        try:
            key = parse_api_key(parts[1], source="the API key in the path")
        except InvalidIdentifierError as exc:
            raise RouteError(400, str(exc)) from None
        return Route(action=parts[2], api_key=key)
    raise RouteError(404, "no such control route")


def _method(method: str, wanted: str) -> None:
    if method != wanted:
        raise RouteError(405, f"use {wanted} on this route", allow=wanted)


__all__ = ["KEY_ACTIONS", "PREFIX", "Route", "RouteError", "is_control_path", "match"]
