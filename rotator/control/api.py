"""The control API's decisions: route, authenticate, authorise, limit, act, audit refusals.

Order matters: the route (and the API key in it) is parsed before anything else, so a hostile
path touches neither Vault nor the database (beyond the refusal's audit event); the caller is
identified by Vault before its rate is counted; capabilities are asked on the exact
``<vault_path>/<api_key>/<action>`` path; only then is the key checked to be managed and the
work handed to the daemon (``Operations``), which runs it through the same code as the CLI.

Every refusal is an audit event (step ``control``, outcome ``refused``) with the method, path,
status, reason and the caller as Vault named it; never the token. Repeated 429s of one caller
are audited once per minute so a flood cannot flood the audit log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from rotator.audit import AuditLog, Run
from rotator.clock import utcnow
from rotator.config import ControlConfig
from rotator.control.authority import Caller, VaultAuthority
from rotator.control.bodies import BodyError, Request, parse_body
from rotator.control.limits import CallerLimits
from rotator.control.routes import Route, RouteError, is_control_path, match
from rotator.errors import (
    ConfigError,
    GracePeriodActiveError,
    KeyHeldError,
    LeaseHeldError,
    NothingToRollBackError,
    RotatorError,
    RunNotFoundError,
    VaultPermissionError,
)
from rotator.holds import Pause
from rotator.redact import scrub
from rotator.secret import Secret

log = structlog.get_logger("rotator.control")

TOKEN_HEADER: Final = "X-Vault-Token"  # noqa: S105 (a header name)
_TOKEN_MAX: Final = 2048
ADDRESS_FACTOR: Final = 10  # an address may send this many times one caller's budget


class Busy(RotatorError):
    """The daemon could not start the work in time (its pool is full, or it is stopping)."""

    hint = "retry in a few seconds"


class NotAvailable(RotatorError):
    """This build of rotator cannot do that over the API."""


class Operations(Protocol):
    """What the daemon does for the API (rotator.daemon.control): the CLI's code paths."""

    def managed(self, api_key: str) -> bool: ...
    def keys(self) -> list[dict[str, Any]]: ...
    def run(self, run_id: str) -> Run: ...
    def rotate(self, api_key: str, *, actor: str, reason: str, emergency: bool) -> Run: ...
    def rollback(self, api_key: str, *, actor: str, reason: str) -> Run: ...
    def pause(self, api_key: str, *, until: str | None, reason: str, actor: str) -> Pause: ...
    def resume(self, api_key: str, *, actor: str, reason: str | None) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Call:
    """One HTTP request as the connection layer read it (path still percent-encoded)."""

    method: str
    path: str
    token: str | None
    body: bytes
    client: str


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _vault_down() -> Refused:
    return Refused(503, "cannot reach Vault to check the token", {"Retry-After": "5"})


_NO_TOKEN: Final = {"WWW-Authenticate": TOKEN_HEADER}


class ControlApi:
    def __init__(
        self,
        config: ControlConfig,
        *,
        authority: VaultAuthority,
        operations: Operations,
        audit: AuditLog,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._config = config
        self._authority = authority
        self._ops = operations
        self._audit = audit
        limits = {"clock": clock} if clock else {}
        self._callers = CallerLimits(config.rate_per_minute, **limits)
        self._addresses = CallerLimits(config.rate_per_minute * ADDRESS_FACTOR, **limits)
        self._reported = CallerLimits(1, **limits)  # one audited 429 per caller per window

    def answer(self, call: Call) -> Answer | None:
        """The answer to ``call``, or None when the path is not the control API's."""
        if not is_control_path(call.path):
            return None
        caller: Caller | None = None
        route: Route | None = None
        try:
            self._limit(f"address:{call.client}")
            route = _route(call)
            token = _token(call.token)
            caller = self._identify(token)
            self._limit(f"caller:{caller.rate_key}")
            request = _body(route, call.body)
            self._authorise(token, route, request)
            return self._act(route, request, caller)
        except Refused as exc:
            self._refused(call, route, caller, exc)
            return Answer(exc.status, {"error": str(exc)}, exc.headers)

    def too_large(self, call: Call) -> Answer:
        """The connection layer refused a body over ``max_body`` (unread): audited, 413."""
        limit = self._config.max_body
        exc = Refused(413, f"the body exceeds http.control.max_body ({limit} bytes)")
        try:
            self._limit(f"address:{call.client}")
        except Refused as limited:
            exc = limited
        self._refused(call, None, None, exc)
        return Answer(exc.status, {"error": str(exc)}, exc.headers)

    # -- the steps --------------------------------------------------------------------------

    def _limit(self, who: str) -> None:
        wait = self._callers.take(who) if who.startswith("caller:") else self._addresses.take(who)
        if wait is not None:
            raise Refused(429, f"too many requests; retry in {wait}s", {"Retry-After": str(wait)})

    def _identify(self, token: Secret) -> Caller:
        try:
            return self._authority.identify(token)
        except VaultPermissionError:
            raise Refused(403, "Vault does not accept this token") from None
        except RotatorError as exc:
            log.error("control_vault_unavailable", error=str(exc))
            raise _vault_down() from None

    def _authorise(self, token: Secret, route: Route, request: Request) -> None:
        path = route.capability_path(self._config.vault_path)
        try:
            held = self._authority.capabilities(token, path)
        except RotatorError as exc:
            log.error("control_vault_unavailable", error=str(exc))
            raise _vault_down() from None
        needed = {"update"} if route.writes else {"read"}
        if request.emergency:
            needed.add("sudo")
        if "root" not in held and not needed <= held:
            missing = ", ".join(sorted(needed - held))
            raise Refused(403, f"the token lacks {missing} on {path}")

    def _act(self, route: Route, request: Request, caller: Caller) -> Answer:
        try:
            return self._dispatch(route, request, caller)
        except RunNotFoundError:
            raise Refused(404, "no such run") from None
        except GracePeriodActiveError as exc:
            wait = max(1, math.ceil((exc.until - utcnow()).total_seconds()))
            raise Refused(409, scrub(str(exc))[:500], {"Retry-After": str(wait)}) from None
        except (KeyHeldError, LeaseHeldError, NothingToRollBackError) as exc:
            raise Refused(409, scrub(str(exc))[:500]) from None
        except Busy as exc:
            raise Refused(503, str(exc), {"Retry-After": "5"}) from None
        except NotAvailable as exc:
            raise Refused(501, str(exc)) from None
        except ConfigError as exc:  # a bad "until" of a pause
            raise Refused(400, str(exc)[:300]) from None
        except RotatorError as exc:
            log.error("control_failed", action=route.action, error=str(exc))
            return Answer(502, {"error": scrub(str(exc))[:500]})

    def _dispatch(self, route: Route, request: Request, caller: Caller) -> Answer:
        if route.action == "keys":
            return Answer(200, {"keys": self._ops.keys()})
        if route.action == "run":
            return Answer(200, self._ops.run(route.run_id or "").to_json())
        key = route.api_key or ""
        if not self._ops.managed(key):
            raise Refused(404, f"{key} is not a key this daemon manages")
        actor, reason = caller.actor, request.reason or f"control API ({caller.actor})"
        if route.action == "pause":
            pause = self._ops.pause(key, until=request.until, reason=reason, actor=actor)
            return Answer(200, {"paused": pause.to_json()})
        if route.action == "resume":
            self._ops.resume(key, actor=actor, reason=request.reason)
            return Answer(200, {"resumed": key})
        if route.action == "rollback":  # quick: done before the answer, which is the run
            run = self._ops.rollback(key, actor=actor, reason=reason)
            return Answer(200, run.to_json(), {"Location": f"/v1/runs/{run.id}"})
        run = self._ops.rotate(key, actor=actor, reason=reason, emergency=request.emergency)
        return Answer(202, _accepted(run), {"Location": f"/v1/runs/{run.id}"})

    # -- refusals ---------------------------------------------------------------------------

    def _refused(
        self, call: Call, route: Route | None, caller: Caller | None, exc: Refused
    ) -> None:
        who = caller.actor if caller else None
        log.warning("control_refused", status=exc.status, path=_shown(call.path), actor=who)
        if exc.status == 429 and self._reported.take(f"{who or call.client}") is not None:
            return  # already audited in this window
        detail: dict[str, Any] = {
            "method": _shown(call.method)[:10],
            "path": _shown(call.path),
            "action": route.action if route else None,
            "status": exc.status,
            "reason": str(exc)[:300],
            "client": call.client,
        }
        if caller is not None:
            detail["caller"] = caller.to_json()
        try:
            self._audit.record(
                step="control",
                outcome="refused",
                started_at=utcnow(),
                api_key=route.api_key if route else None,
                actor=who,
                detail=detail,
            )
        except RotatorError as exc2:
            log.error("control_refusal_not_audited", error=str(exc2))


def _route(call: Call) -> Route:
    try:
        return match(call.method, call.path)
    except RouteError as exc:
        headers = {"Allow": exc.allow} if exc.allow else {}
        raise Refused(exc.status, str(exc), headers) from None


def _token(value: str | None) -> Secret:
    value = (value or "").strip()
    if not value:
        raise Refused(401, f"send your Vault token in {TOKEN_HEADER}", _NO_TOKEN)
    if len(value) > _TOKEN_MAX or not value.isprintable():
        raise Refused(401, "not a Vault token", _NO_TOKEN)
    return Secret(value)


def _body(route: Route, body: bytes) -> Request:
    if not route.writes:
        return Request()
    try:
        return parse_body(route.action, body)
    except BodyError as exc:
        raise Refused(400, str(exc)) from None


def _accepted(run: Run) -> dict[str, Any]:
    return {"run_id": run.id, "status": str(run.status), "poll": f"/v1/runs/{run.id}"}


def _shown(text: str) -> str:
    """A request's path for the audit log: printable ASCII, truncated (it may be hostile)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:200])


__all__ = ["TOKEN_HEADER", "Answer", "Busy", "Call", "ControlApi", "NotAvailable", "Operations"]
