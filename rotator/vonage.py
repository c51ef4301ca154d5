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
from typing import Any, TypeVar

import httpx
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from rotator.config import VonageConfig
from rotator.errors import (
    VonageNotFoundError,
    VonageRateLimitError,
    VonageServerError,
    VonageTransportError,
)
from rotator.identifiers import parse_api_key, parse_secret_id, path_segment
from rotator.ratelimit import RateLimiter
from rotator.redact import safe_url
from rotator.secret import Credentials, Secret
from rotator.tls import verify_for
from rotator.vonage_answers import (
    MAX_BODY,
    SECRET_LIMIT_KINDS,
    Reply,
    SecretInfo,
    Subaccount,
    check_balance,
    check_sms,
    error_for,
    json_object,
    read_capped,
    request_id,
    retry_after,
    secret_info,
    secret_list,
    subaccount_list,
    transport_error,
)

log = structlog.get_logger("rotator.vonage")
T = TypeVar("T")
# The subaccount list is one unpaginated answer of ~200 bytes per subaccount: 1 MiB would stop
# discovery at about 5,000 subaccounts; 32 MiB is room for ~160,000.
MAX_SUBACCOUNTS_BODY = 32 << 20


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
            verify=verify_for(config.verify_tls),
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
        return Reply(request_id(response), secrets=secret_list(response))

    def create_secret(self, creds: Credentials, api_key: str, secret: Secret) -> Reply:
        """POST, repeated only after a 429 (refused unprocessed: nothing was created). On
        ``VonageTransportError`` with ``maybe_applied``, list to find out."""
        response = self._retrying(
            lambda: self._send(
                "POST", self._secrets_url(api_key), creds, json={"secret": secret.reveal()}
            ),
            retry_on=_rate_limited,
        )
        return Reply(request_id(response), created=secret_info(response, json_object(response)))

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
        return Reply(request_id(response), revoked=response.status_code == 204 and not inferred)

    # -- authentication check, subaccounts, SMS ----------------------------------------------

    def get_balance(self, creds: Credentials, *, retry: bool = True) -> Reply:
        """The cheapest call that proves ``creds`` authenticate (raises VonageAuthError if not).

        ``retry=False`` makes one attempt: the caller's own loop (verification) owns the timing.
        """
        url = self._url(self._config.rest_url, "account", "get-balance")
        response = self._retrying(
            lambda: self._send("GET", url, creds), retry_on=_retryable if retry else _never
        )
        check_balance(response)
        return Reply(request_id(response))

    def list_subaccounts(self, creds: Credentials) -> Reply:
        url = self._url(self._config.api_url, "accounts", creds.api_key, "subaccounts")
        response = self._retrying(
            lambda: self._send("GET", url, creds, max_body=MAX_SUBACCOUNTS_BODY)
        )
        subaccounts, refused = subaccount_list(response)
        return Reply(request_id(response), subaccounts=subaccounts, refused=refused)

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
        check_sms(response, to)
        return Reply(request_id(response))

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
                body = read_capped(response, max_body)
            finally:
                response.close()
        except httpx.TransportError as exc:
            timeout = self._config.timeout.total_seconds()
            raise transport_error(method, request, exc, timeout) from exc
        response = httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )
        log.debug(
            "vonage_call",
            method=method,
            path=path,
            status=response.status_code,
            request_id=request_id(response),
            seconds=round(time.monotonic() - started, 4),
            rate_wait=round(waited, 4),
        )
        if response.status_code == 429:
            self._on_429(method, path, response)
        if response.is_success:
            return response
        raise error_for(method, path, response)

    def _on_429(self, method: str, path: str, response: httpx.Response) -> None:
        """A 429: every call of the process pauses (shared limiter) for its Retry-After, and a
        Retry-After beyond ``vonage.max_retry_after`` fails the call instead of being slept."""
        self.rate_limited += 1
        wait = retry_after(response)
        cap = self._config.max_retry_after.total_seconds()
        self._limiter.pause(min(wait if wait is not None else 1.0, cap))
        if wait is not None and wait > cap:
            raise VonageRateLimitError(
                f"{method} {path}: HTTP 429 asking to wait {wait:g}s, more than "
                f"vonage.max_retry_after ({cap:g}s); not waiting",
                retry_after=wait,
                status=429,
                request_id=request_id(response),
                hint="re-run later, or raise vonage.max_retry_after",
            )


__all__ = [
    "MAX_BODY",
    "MAX_SUBACCOUNTS_BODY",
    "SECRET_LIMIT_KINDS",
    "Reply",
    "SecretInfo",
    "Subaccount",
    "VonageClient",
]
