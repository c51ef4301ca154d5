"""Vonage's Secret Management, Subaccounts, Balance and SMS APIs over httpx.

Timeouts on every call; idempotent calls (GET, DELETE) retried with backoff on 429 (honouring
``Retry-After``), 5xx and transport errors; a POST is never repeated here — its caller reconciles
an ambiguous failure by listing. Every httpx error and error answer becomes a ``VonageError``
subclass here, once. Secrets travel only in the Authorization header or a form body, never a URL.

Every answer is treated as possibly hostile: each secret id and API key in it must match
``rotator.identifiers`` (else ``VonageInvalidIdentifierError``, nothing acted on) — except a
subaccount listing, where one bad API key is refused alone (``Reply.refused``, for the caller to
quarantine) and the valid ones are returned, so one hostile entry cannot stop every key. URL
paths are built from percent-encoded segments; every text taken from an answer is scrubbed of
known secret values; a ``Retry-After`` beyond ``vonage.max_retry_after`` fails the call instead
of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from rotator import clock
from rotator.config import VonageConfig
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
from rotator.identifiers import (
    ApiKey,
    SecretId,
    is_api_key,
    is_secret_id,
    parse_api_key,
    parse_secret_id,
    path_segment,
    shown,
)
from rotator.ratelimit import RateLimiter
from rotator.redact import safe_url, scrub
from rotator.secret import Credentials, Secret

log = structlog.get_logger("rotator.vonage")
T = TypeVar("T")
MAX_BODY = 1 << 20  # a larger answer is not something Vonage documents
# The subaccount list is one unpaginated answer of ~200 bytes per subaccount: 1 MiB would stop
# discovery at about 5,000 subaccounts; 32 MiB is room for ~160,000.
MAX_SUBACCOUNTS_BODY = 32 << 20
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


def _rate_limited(exc: BaseException) -> bool:
    """A 429 was refused before Vonage processed it: safe to repeat even for a POST."""
    return isinstance(exc, VonageRateLimitError)


def _never(exc: BaseException) -> bool:
    return False


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, VonageRateLimitError | VonageServerError):
        return True
    return isinstance(exc, VonageTransportError)


class VonageClient:
    def __init__(
        self,
        config: VonageConfig,
        *,
        limiter: RateLimiter | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = 0.25,
    ) -> None:
        self._config = config
        self._limiter = limiter or RateLimiter(config.max_calls_per_second)
        self._sleep = sleep
        self._backoff = backoff
        if not config.verify_tls:
            log.warning(
                "tls_verification_disabled",
                detail="vonage.verify_tls is false: Vonage's certificate is NOT checked",
            )
        self._http = httpx.Client(
            timeout=config.timeout.total_seconds(),
            verify=config.verify_tls,
            transport=transport,
            headers={"User-Agent": "rotator/0.1", "Accept": "application/json"},
            follow_redirects=False,
        )
        self.calls = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"VonageClient(api_url={safe_url(self._config.api_url)!r})"

    def close(self) -> None:
        self._http.close()

    # -- Secret Management ------------------------------------------------------------------

    def list_secrets(self, creds: Credentials, api_key: str) -> Reply:
        response = self._retrying(lambda: self._send("GET", self._secrets_url(api_key), creds))
        embedded = _json(response).get("_embedded")
        items = embedded.get("secrets") if isinstance(embedded, dict) else None
        if not isinstance(items, list):
            raise _protocol(response, "secret list without _embedded.secrets")
        secrets = sorted((_secret_info(response, item) for item in items), key=_age_order)
        return Reply(_request_id(response), secrets=secrets)

    def create_secret(self, creds: Credentials, api_key: str, secret: Secret) -> Reply:
        """POST, repeated only after a 429 (refused unprocessed: nothing was created). On
        ``VonageTransportError`` with ``maybe_applied``, list to find out."""
        response = self._retrying(
            lambda: self._send(
                "POST", self._secrets_url(api_key), creds, json={"secret": secret.reveal()}
            ),
            retry_on=_rate_limited,
        )
        return Reply(_request_id(response), created=_secret_info(response, _json(response)))

    def revoke_secret(self, creds: Credentials, api_key: str, secret_id: str) -> Reply:
        """DELETE, retried; a 404 after an attempt that may have applied counts as done.

        ``Reply.revoked`` is True only for Vonage's own 204, the one answer that settles the
        outcome without a listing (a 404 inferred as done, or any other 2xx, does not).

        ``secret_id`` is checked again here (``InvalidIdentifierError``): a DELETE is the one
        call where a bad id destroys something.
        """
        url = self._url(
            self._config.api_url, "accounts", api_key, "secrets", parse_secret_id(secret_id)
        )
        attempted = False
        inferred = False

        def attempt() -> httpx.Response:
            nonlocal attempted, inferred
            try:
                return self._send("DELETE", url, creds)
            except VonageNotFoundError:
                if attempted:
                    inferred = True  # probably ours, but Vonage did not say so: not authoritative
                    return httpx.Response(204)
                raise
            except VonageTransportError as exc:
                attempted = attempted or exc.maybe_applied
                raise
            except VonageServerError:
                attempted = True
                raise

        response = self._retrying(attempt)
        return Reply(_request_id(response), revoked=response.status_code == 204 and not inferred)

    # -- authentication check, subaccounts, SMS ----------------------------------------------

    def get_balance(self, creds: Credentials, *, retry: bool = True) -> Reply:
        """The cheapest call that proves ``creds`` authenticate (raises VonageAuthError if not).

        ``retry=False`` makes one attempt: the caller's own loop (verification) owns the timing.
        """
        url = self._url(self._config.rest_url, "account", "get-balance")
        response = self._retrying(
            lambda: self._send("GET", url, creds), retry_on=_retryable if retry else _never
        )
        body = _json(response)
        if "value" not in body:
            raise _protocol(response, "balance answer without 'value'")
        return Reply(_request_id(response))

    def list_subaccounts(self, creds: Credentials) -> Reply:
        url = self._url(self._config.api_url, "accounts", creds.api_key, "subaccounts")
        response = self._retrying(
            lambda: self._send("GET", url, creds, max_body=MAX_SUBACCOUNTS_BODY)
        )
        embedded = _json(response).get("_embedded")
        items = embedded.get("subaccounts") if isinstance(embedded, dict) else None
        if not isinstance(items, list):
            raise _protocol(response, "subaccount list without _embedded.subaccounts")
        subaccounts, refused = [], []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("api_key"), str):
                raise _protocol(response, "subaccount without api_key")
            if not is_api_key(item["api_key"]):
                # One bad key is refused alone (quarantined by the caller); the rest stand.
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
        return Reply(_request_id(response), subaccounts=subaccounts, refused=refused)

    def send_sms(self, creds: Credentials, *, sender: str, to: str, text: str) -> Reply:
        url = self._url(self._config.rest_url, "sms", "json")
        form = {
            "api_key": creds.api_key,
            "api_secret": creds.secret.reveal(),
            "from": sender,
            "to": to,
            "text": text,
        }
        response = self._retrying(
            lambda: self._send("POST", url, None, data=form), retry_on=_rate_limited
        )
        messages = _json(response).get("messages")
        if not isinstance(messages, list) or not messages:
            raise _protocol(response, "SMS answer without messages")
        status = str(messages[0].get("status", "")) if isinstance(messages[0], dict) else ""
        if status != "0":
            text = messages[0].get("error-text", "") if isinstance(messages[0], dict) else ""
            message = f"SMS to {to} refused: status {status[:10]} {str(text)[:200]}".strip()
            raise VonageError(scrub(message))
        return Reply(_request_id(response))

    # -- plumbing ---------------------------------------------------------------------------

    def _secrets_url(self, api_key: str) -> str:
        return self._url(self._config.api_url, "accounts", api_key, "secrets")

    @staticmethod
    def _url(base: str, *segments: str) -> str:
        """``base`` plus percent-encoded segments: no value can add, climb or query a segment.

        An API key that fails its pattern is refused here (``InvalidIdentifierError``) before
        any request is built.
        """
        if len(segments) > 1 and segments[0] == "accounts":
            parse_api_key(segments[1])
        return "/".join([base, *(path_segment(segment) for segment in segments)])

    def _retrying(
        self, call: Callable[[], T], retry_on: Callable[[BaseException], bool] = _retryable
    ) -> T:
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: retry_on(exc) and not self._too_long(exc)),
            stop=stop_after_attempt(self._config.max_retries + 1),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(call)

    def _too_long(self, exc: BaseException) -> bool:
        """A 429 whose Retry-After exceeds vonage.max_retry_after: fail now, never sleep it."""
        cap = self._config.max_retry_after.total_seconds()
        return isinstance(exc, VonageRateLimitError) and (exc.retry_after or 0.0) > cap

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, VonageRateLimitError) and exc.retry_after is not None:
            return exc.retry_after  # never beyond max_retry_after: _send raised for those
        return float(min(self._backoff * 2 ** (state.attempt_number - 1), 10.0))

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "vonage_retry",
            attempt=state.attempt_number,
            error=type(exc).__name__,
            status=getattr(exc, "status", None),
            wait=round(state.upcoming_sleep, 3),
        )

    def _send(
        self,
        method: str,
        url: str,
        creds: Credentials | None,
        *,
        json: Any = None,
        data: dict[str, str] | None = None,
        max_body: int = MAX_BODY,
    ) -> httpx.Response:
        auth = (creds.api_key, creds.secret.reveal()) if creds is not None else None
        request = self._http.build_request(method, url, json=json, data=data)
        if auth is not None:
            request.headers["Authorization"] = httpx.BasicAuth(*auth)._auth_header
        path = request.url.path
        waited = self._limiter.acquire()
        started = time.monotonic()
        self.calls += 1
        try:
            response = self._http.send(request, stream=True)
            try:
                body = _read_capped(response, max_body)
            finally:
                response.close()
        except httpx.ConnectError as exc:
            raise VonageTransportError(
                f"{method} {path}: cannot connect to {request.url.host}", maybe_applied=False
            ) from exc
        except httpx.ConnectTimeout as exc:
            raise VonageTransportError(
                f"{method} {path}: connection to {request.url.host} timed out",
                maybe_applied=False,
            ) from exc
        except httpx.TimeoutException as exc:
            raise VonageTransportError(
                f"{method} {path}: no answer within {self._config.timeout.total_seconds():g}s",
                maybe_applied=method != "GET",
            ) from exc
        except httpx.TransportError as exc:
            raise VonageTransportError(
                f"{method} {path}: connection failed ({type(exc).__name__})",
                maybe_applied=method != "GET",
            ) from exc
        response = httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )
        log.debug(
            "vonage_call",
            method=method,
            path=path,
            status=response.status_code,
            request_id=_request_id(response),
            seconds=round(time.monotonic() - started, 4),
            rate_wait=round(waited, 4),
        )
        if response.status_code == 429:
            self.rate_limited += 1
            retry_after = _retry_after(response)
            cap = self._config.max_retry_after.total_seconds()
            self._limiter.pause(min(retry_after if retry_after is not None else 1.0, cap))
            if retry_after is not None and retry_after > cap:
                raise VonageRateLimitError(
                    f"{method} {path}: HTTP 429 asking to wait {retry_after:g}s, more than "
                    f"vonage.max_retry_after ({cap:g}s); not waiting",
                    retry_after=retry_after,
                    status=429,
                    request_id=_request_id(response),
                    hint="re-run later, or raise vonage.max_retry_after",
                )
        if response.is_success:
            return response
        raise _error_for(method, path, response)


def _read_capped(response: httpx.Response, limit: int = MAX_BODY) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise VonageProtocolError(
                f"{response.request.method} {response.request.url.path}: answer larger than "
                f"{limit // 1024} KiB",
                status=response.status_code,
                request_id=_request_id(response),
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _request_id(response: httpx.Response) -> str | None:
    """Vonage's request id, printable ASCII only and short: it goes into messages and the log."""
    value = "".join(c for c in response.headers.get("X-Request-Id", "")[:64] if " " < c <= "~")
    return value or None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    content_type = response.headers.get("Content-Type", "")
    try:
        body = response.json()
    except ValueError:
        raise _protocol(response, f"not JSON (Content-Type {content_type or 'missing'})") from None
    if not isinstance(body, dict):
        raise _protocol(response, "JSON that is not an object")
    return body


def _protocol(response: httpx.Response, what: str) -> VonageProtocolError:
    request = response.request
    return VonageProtocolError(
        scrub(f"{request.method} {request.url.path}: unexpected answer from Vonage: {what}"),
        status=response.status_code,
        request_id=_request_id(response),
    )


def _invalid(
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
        request_id=_request_id(response),
    )


def _secret_info(response: httpx.Response, item: object) -> SecretInfo:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
        raise _protocol(response, "secret without an id")
    if not is_secret_id(item["id"]):
        raise _invalid(response, parse_secret_id, item["id"])
    secret_id = SecretId(item["id"])
    created = item.get("created_at")
    try:
        created_at = clock.parse(str(created))
    except ValueError:
        shown = repr(str(created)[:40])
        raise _protocol(response, f"secret {secret_id} with created_at {shown}") from None
    return SecretInfo(id=secret_id, created_at=created_at)


def _age_order(info: SecretInfo) -> tuple[datetime, str]:
    return info.created_at, info.id


def _problem(response: httpx.Response) -> tuple[str, str]:
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


def _error_for(method: str, path: str, response: httpx.Response) -> VonageError:
    status = response.status_code
    kind, detail = _problem(response)
    where = f"{method} {path}: HTTP {status}" + (f" {detail}" if detail else "")
    common: dict[str, Any] = {"status": status, "request_id": _request_id(response)}
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
        return VonageRateLimitError(where, retry_after=_retry_after(response), **common)
    if status >= 500:
        return VonageServerError(where, **common)
    return VonageError(where, **common)
