"""The error bodies Vonage sends, in one place, worded as the specs and SDK fixtures word them.

Most are RFC 7807 problem documents (``type``, ``title``, ``detail``, ``instance``); ``instance``
is the request id, the same value as the ``X-Request-Id`` header, so a log line can be matched to
a call. The balance endpoint is older and uses Vonage's ``error-code`` shape instead.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

ERRORS: Final = "https://developer.nexmo.com/api-errors"
SECRET_ERRORS: Final = f"{ERRORS}/account/secret-management"

Body = dict[str, Any]


def problem(type_: str, title: str, detail: str, instance: str, **extra: Any) -> Body:
    return {"type": type_, "title": title, "detail": detail, "instance": instance, **extra}


def bad_credentials(instance: str, *, malformed: bool) -> Body:
    detail = (
        'Invalid credentials format. Expected: "Authorization: (Base64(UTF-8(apiKey:secret)))"'
        if malformed
        else "You did not provide correct credentials."
    )
    return problem(f"{ERRORS}#unauthorized", "Unauthorized", detail, instance)


def api_key_not_found(instance: str, api_key: str) -> Body:
    return problem(
        f"{ERRORS}#invalid-api-key", "Invalid API Key", f"API key '{api_key}' not found", instance
    )


def secret_id_not_found(instance: str, secret_id: str) -> Body:
    return problem(
        f"{ERRORS}#invalid-id", "Invalid ID", f"ID '{secret_id}' could not be found", instance
    )


def forbidden(instance: str, caller: str, target: str) -> Body:
    return problem(
        f"{ERRORS}#forbidden",
        "Forbidden",
        f"Account '{caller}' is not allowed to manage account '{target}'",
        instance,
    )


def unprovisioned(instance: str, caller: str) -> Body:
    """The subaccounts API's 403 (UnprovisionedErrorResponse)."""
    return problem(
        f"{ERRORS}#unprovisioned",
        "Authorisation error",
        f"Account {caller} is not provisioned to access Subaccount Provisioning API",
        instance,
    )


def validation(instance: str, detail: str, reasons: list[str]) -> Body:
    return problem(
        f"{SECRET_ERRORS}#validation",
        "Bad Request",
        detail,
        instance,
        invalid_parameters=[{"name": "secret", "reason": reason} for reason in reasons],
    )


def excess_secret(instance: str, detail: str) -> Body:
    # "Maxmimum" (sic) is what Vonage sends, as recorded in the SDK test fixtures.
    return problem(
        f"{SECRET_ERRORS}#add-excess-secret",
        "Maxmimum number of secrets already met",
        detail,
        instance,
    )


def last_secret(instance: str, detail: str) -> Body:
    return problem(
        f"{SECRET_ERRORS}#delete-last-secret", "Secret Deletion Forbidden", detail, instance
    )


def throttled(instance: str) -> Body:
    return problem(
        f"{ERRORS}#throttled",
        "Too Many Requests",
        "The request was rate limited; retry after the number of seconds in Retry-After",
        instance,
    )


def http_problem(instance: str, status: int, detail: str) -> Body:
    """A generic problem for statuses Vonage documents no body for (404 route, 405, 5xx...)."""
    return problem("about:blank", HTTPStatus(status).phrase, detail, instance)


def balance_auth_failed() -> Body:
    return {"error-code": "401", "error-code-label": "authentication failed"}
