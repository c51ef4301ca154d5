"""Vonage's answers, read as possibly hostile: the records a call returns, the checks every
answer passes (size cap, JSON object, identifiers through ``rotator.identifiers``, scrubbed
texts) and the mapping of error answers and transport failures to ``VonageError`` subclasses.
Pure functions over ``httpx.Response``; ``rotator.vonage.VonageClient`` does the calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import structlog

from rotator import clock
from rotator.errors import (
    RotatorError,
    VonageAuthError,
    VonageError,
    VonageForbiddenError,
    VonageInvalidIdentifierError,
    VonageLastSecretError,
    VonageNotFoundError,
    VonageProtocolError,
    VonageRateLimitError,
    VonageSecretLimitError,
    VonageServerError,
    VonageTransportError,
    VonageValidationError,
)
from rotator.identifiers import ApiKey, SecretId, is_api_key, is_secret_id, parse_secret_id, shown
from rotator.redact import scrub

log = structlog.get_logger("rotator.vonage")

MAX_BODY = 1 << 20  # a larger answer is not something Vonage documents
# A 403 ``type`` that means "already two secrets": today's name, and the older API's (recorded
# in Vonage's SDK test fixtures).
SECRET_LIMIT_KINDS = frozenset({"add-excess-secret", "maximum-secrets-allowed"})


@dataclass(frozen=True)
class SecretInfo:
    # Always a validated SecretId; typed ``str`` until the engine's sets and lists (rotation.py)
    # are typed SecretId too (set[SecretId] is not a set[str] to mypy).
    id: str
    created_at: datetime


@dataclass(frozen=True)
class Subaccount:
    api_key: ApiKey
    name: str | None
    suspended: bool


@dataclass(frozen=True)
class Reply:
    """What a call returned, with Vonage's ``X-Request-Id`` for the audit log."""

    request_id: str | None
    secrets: list[SecretInfo] = field(default_factory=list)
    created: SecretInfo | None = None
    subaccounts: list[Subaccount] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # listed keys refused (sanitised): quarantine
    revoked: bool = False  # Vonage itself answered the DELETE 204: the secret is gone


def read_capped(response: httpx.Response, limit: int = MAX_BODY) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise VonageProtocolError(
                f"{response.request.method} {response.request.url.path}: answer larger than "
                f"{limit // 1024} KiB",
                status=response.status_code,
                request_id=request_id(response),
            )
        chunks.append(chunk)
    return b"".join(chunks)


def request_id(response: httpx.Response) -> str | None:
    """Vonage's request id, printable ASCII only and short: it goes into messages and the log."""
    value = "".join(c for c in response.headers.get("X-Request-Id", "")[:64] if " " < c <= "~")
    return value or None


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def json_object(response: httpx.Response) -> dict[str, Any]:
    content_type = response.headers.get("Content-Type", "")
    try:
        body = response.json()
    except ValueError:
        raise protocol_error(
            response, f"not JSON (Content-Type {content_type or 'missing'})"
        ) from None
    if not isinstance(body, dict):
        raise protocol_error(response, "JSON that is not an object")
    return body


def protocol_error(response: httpx.Response, what: str) -> VonageProtocolError:
    request = response.request
    return VonageProtocolError(
        scrub(f"{request.method} {request.url.path}: unexpected answer from Vonage: {what}"),
        status=response.status_code,
        request_id=request_id(response),
    )


def invalid_identifier(
    response: httpx.Response, parse: Callable[[object], object], value: object
) -> VonageInvalidIdentifierError:
    """The answer named an identifier ``parse`` refuses: say which, sanitised, and why."""
    try:
        parse(value)
    except RotatorError as exc:
        reason = str(exc.args[0]) if exc.args else "malformed identifier"
    else:  # pragma: no cover - only called for values the pattern refused
        reason = "malformed identifier"
    request = response.request
    return VonageInvalidIdentifierError(
        scrub(f"{request.method} {request.url.path}: refused Vonage's answer: {reason}"),
        status=response.status_code,
        request_id=request_id(response),
    )


def secret_info(response: httpx.Response, item: object) -> SecretInfo:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise protocol_error(response, "secret without an id")
    if not is_secret_id(item["id"]):
        raise invalid_identifier(response, parse_secret_id, item["id"])
    secret_id = SecretId(item["id"])
    created = item.get("created_at")
    try:
        created_at = clock.parse(str(created))
    except ValueError:
        shown = repr(str(created)[:40])
        raise protocol_error(response, f"secret {secret_id} with created_at {shown}") from None
    return SecretInfo(id=secret_id, created_at=created_at)


def age_order(info: SecretInfo) -> tuple[datetime, str]:
    return info.created_at, info.id


def problem(response: httpx.Response) -> tuple[str, str]:
    """(type suffix, human detail) from an RFC 7807 body, tolerating anything else."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    kind = str(body.get("type", "")).rpartition("#")[2][:64]
    detail = str(body.get("detail") or body.get("title") or body.get("error-code-label") or "")
    if body.get("invalid_parameters"):
        kind = kind or "validation"
    # Scrubbed before truncation, so a cut can never leave part of a secret behind; control
    # characters go so that no answer can write to the operator's terminal.
    detail = "".join(c if c.isprintable() else " " for c in scrub(detail))
    return kind, detail[:300]


def error_for(method: str, path: str, response: httpx.Response) -> VonageError:
    status = response.status_code
    kind, detail = problem(response)
    where = f"{method} {path}: HTTP {status}" + (f" {detail}" if detail else "")
    common: dict[str, Any] = {"status": status, "request_id": request_id(response)}
    if status == 401:
        return VonageAuthError(where, **common)
    if status == 403:
        if kind in SECRET_LIMIT_KINDS:
            return VonageSecretLimitError(where, **common)
        if kind == "delete-last-secret":
            return VonageLastSecretError(where, **common)
        return VonageForbiddenError(where, **common)
    if status == 404:
        return VonageNotFoundError(where, **common)
    if status == 400 and method == "POST" and path.endswith("/secrets"):
        if kind == "validation":
            return VonageValidationError(where, **common)
        return VonageSecretLimitError(where, **common)
    if status == 400:
        return VonageValidationError(where, **common)
    if status == 429:
        return VonageRateLimitError(where, retry_after=retry_after(response), **common)
    if status >= 500:
        return VonageServerError(where, **common)
    return VonageError(where, **common)


def secret_list(response: httpx.Response) -> list[SecretInfo]:
    """A key's secrets, oldest first; every id must pass its pattern."""
    embedded = json_object(response).get("_embedded")
    items = embedded.get("secrets") if isinstance(embedded, dict) else None
    if not isinstance(items, list):
        raise protocol_error(response, "secret list without _embedded.secrets")
    return sorted((secret_info(response, item) for item in items), key=age_order)


def subaccount_list(response: httpx.Response) -> tuple[list[Subaccount], list[str]]:
    """The subaccounts listed, and the API keys refused (sanitised): one bad key is refused
    alone (the caller quarantines it) and the valid ones stand."""
    embedded = json_object(response).get("_embedded")
    items = embedded.get("subaccounts") if isinstance(embedded, dict) else None
    if not isinstance(items, list):
        raise protocol_error(response, "subaccount list without _embedded.subaccounts")
    subaccounts, refused = [], []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("api_key"), str):
            raise protocol_error(response, "subaccount without api_key")
        if not is_api_key(item["api_key"]):
            refused.append(shown(item["api_key"]))
            log.warning("subaccount_key_refused", api_key=refused[-1])
            continue
        subaccounts.append(
            Subaccount(
                api_key=ApiKey(item["api_key"]),
                name=item.get("name") if isinstance(item.get("name"), str) else None,
                suspended=bool(item.get("suspended", False)),
            )
        )
    return subaccounts, refused


def check_balance(response: httpx.Response) -> None:
    if "value" not in json_object(response):
        raise protocol_error(response, "balance answer without 'value'")


def check_sms(response: httpx.Response, to: str) -> None:
    """An SMS answer whose first message is not status "0" is a refusal (text scrubbed)."""
    messages = json_object(response).get("messages")
    if not isinstance(messages, list) or not messages:
        raise protocol_error(response, "SMS answer without messages")
    first = messages[0] if isinstance(messages[0], dict) else {}
    status = str(first.get("status", ""))
    if status != "0":
        text = first.get("error-text", "")
        message = f"SMS to {to} refused: status {status[:10]} {str(text)[:200]}".strip()
        raise VonageError(scrub(message))


def transport_error(
    method: str, request: httpx.Request, exc: httpx.TransportError, timeout: float
) -> VonageTransportError:
    """An httpx failure as a ``VonageTransportError``: ``maybe_applied`` unless the request
    surely never reached Vonage (no connection) or could not change anything (a GET)."""
    path, host = request.url.path, request.url.host
    if isinstance(exc, httpx.ConnectError):
        return VonageTransportError(
            f"{method} {path}: cannot connect to {host}", maybe_applied=False
        )
    if isinstance(exc, httpx.ConnectTimeout):
        return VonageTransportError(
            f"{method} {path}: connection to {host} timed out", maybe_applied=False
        )
    if isinstance(exc, httpx.TimeoutException):
        what = f"no answer within {timeout:g}s"
    else:
        what = f"connection failed ({type(exc).__name__})"
    return VonageTransportError(f"{method} {path}: {what}", maybe_applied=method != "GET")
