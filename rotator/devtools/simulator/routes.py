"""What each simulated Vonage endpoint answers: a parsed request in, a response out.

No sockets here: the server parses bytes into a ``Request``, calls ``dispatch`` and writes the
``Response``. Refusals are raised as ``Refusal`` from wherever they are detected (auth, lookup,
permission, validation) and rendered by ``dispatch``, so each handler reads as its happy path.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from rotator.devtools.simulator import problems
from rotator.devtools.simulator.problems import Body
from rotator.devtools.simulator.records import HostName
from rotator.devtools.simulator.state import (
    SMS_PRICE,
    ForbiddenError,
    InsufficientBalanceError,
    InvalidSecretError,
    LastSecretError,
    SimSecret,
    SimState,
    TooManySecretsError,
    UnknownAccountError,
    UnknownSecretError,
)

SMS_NETWORK: Final = "12345"
_TO = re.compile(r"\d{7,15}")


@dataclass(frozen=True, kw_only=True)
class Request:
    """An HTTP request as the routes need it; header names are lower-case."""

    method: str
    host: HostName
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    request_id: str


@dataclass(frozen=True, kw_only=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a handler may use besides the request: the world and the knobs that shape answers."""

    state: SimState
    excess_secret_status: int


class Refusal(Exception):
    """Stop handling and send ``response`` instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    return Response(status=status, body=data, content_type="application/json", headers=headers)


# -- credentials ---------------------------------------------------------------------------------


def basic_credentials(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """``(api_key, secret)`` from Basic auth; None if absent, ValueError if garbled."""
    header = headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ValueError("not Basic auth")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("undecodable Basic credentials") from exc
    api_key, colon, secret = decoded.partition(":")
    if not colon or not api_key:
        raise ValueError("Basic credentials without a colon")
    return api_key, secret


def presented_key(request: Request) -> str | None:
    """The API key the caller claims to be, for the call log (never the secret)."""
    try:
        creds = basic_credentials(request.headers)
    except ValueError:
        creds = None
    if creds is not None:
        return creds[0]
    if "api_key" in request.query:
        return request.query["api_key"]
    if request.host == "rest" and request.method == "POST":
        return _sms_params(request).get("api_key")
    return None


# -- dispatch ------------------------------------------------------------------------------------

Handler = Callable[[Context, Request, dict[str, str]], Response]


@dataclass(frozen=True)
class _Route:
    host: HostName
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def dispatch(ctx: Context, request: Request) -> Response:
    """Route by host, path and method: 404 for unknown paths or the wrong host, else 405."""
    allowed: list[str] = []
    for route in _ROUTES:
        match = route.pattern.fullmatch(request.path)
        if match is None or route.host != request.host:
            continue
        if route.method != request.method:
            allowed.append(route.method)
            continue
        params = {name: unquote(value) for name, value in match.groupdict().items()}
        try:
            return route.handler(ctx, request, params)
        except Refusal as refusal:
            return refusal.response
    rid = request.request_id
    if allowed:
        detail = f"{request.method} is not allowed on {request.path}"
        return json_response(
            405, problems.http_problem(rid, 405, detail), (("Allow", ", ".join(allowed)),)
        )
    detail = f"No {request.host} endpoint at {request.path}"
    return json_response(404, problems.http_problem(rid, 404, detail))


# -- the api host: secrets and subaccounts -------------------------------------------------------


def _api_caller(ctx: Context, request: Request) -> str:
    """The authenticated API key, or a 401 with the spec's BadCredentialsError body."""
    rid = request.request_id
    challenge = (("WWW-Authenticate", 'Basic realm="Vonage API"'),)
    try:
        creds = basic_credentials(request.headers)
    except ValueError:
        creds = None
        malformed = True
    else:
        malformed = creds is None
    if creds is None:
        body = problems.bad_credentials(rid, malformed=malformed)
        raise Refusal(json_response(401, body, challenge))
    api_key, secret = creds
    if not ctx.state.authenticates(api_key, secret):
        raise Refusal(json_response(401, problems.bad_credentials(rid, malformed=False), challenge))
    return api_key


def _may_manage_secrets(ctx: Context, request: Request, caller: str, target: str) -> None:
    try:
        ctx.state.authorize_secrets(caller, target)
    except UnknownAccountError:
        raise Refusal(
            json_response(404, problems.api_key_not_found(request.request_id, target))
        ) from None
    except ForbiddenError:
        raise Refusal(
            json_response(403, problems.forbidden(request.request_id, caller, target))
        ) from None


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_info(api_key: str, secret: SimSecret) -> Body:
    """secretInfo: links, id and creation time. Vonage never returns a secret's value."""
    return {
        "_links": {"self": {"href": f"/accounts/{api_key}/secrets/{secret.id}"}},
        "id": secret.id,
        "created_at": _timestamp(secret.created_at),
    }


def _list_secrets(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    caller, target = _api_caller(ctx, request), params["api_key"]
    _may_manage_secrets(ctx, request, caller, target)
    secrets = ctx.state.secrets(target)
    return json_response(
        200,
        {
            "_links": {"self": {"href": f"/accounts/{target}/secrets"}},
            "_embedded": {"secrets": [_secret_info(target, s) for s in secrets]},
        },
    )


def _requested_secret(request: Request) -> str:
    """The ``secret`` field of the JSON body, or a 400 validation problem."""
    rid = request.request_id
    try:
        payload: Any = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        payload = None
        reason = "is required: the request body is not valid JSON"
    else:
        reason = "is required"
    if not isinstance(payload, dict) or "secret" not in payload:
        detail = "The request failed due to validation errors"
        raise Refusal(json_response(400, problems.validation(rid, detail, [reason])))
    value = payload["secret"]
    if not isinstance(value, str):
        detail = "The request failed due to validation errors"
        raise Refusal(json_response(400, problems.validation(rid, detail, ["must be a string"])))
    return value


def _create_secret(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    caller, target = _api_caller(ctx, request), params["api_key"]
    _may_manage_secrets(ctx, request, caller, target)
    value = _requested_secret(request)
    rid = request.request_id
    try:
        secret = ctx.state.create_secret(target, value)
    except InvalidSecretError as exc:
        return json_response(400, problems.validation(rid, str(exc), exc.reasons))
    except TooManySecretsError as exc:
        return json_response(ctx.excess_secret_status, problems.excess_secret(rid, str(exc)))
    location = (("Location", f"/accounts/{target}/secrets/{secret.id}"),)
    return json_response(201, _secret_info(target, secret), location)


def _get_secret(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    caller, target = _api_caller(ctx, request), params["api_key"]
    _may_manage_secrets(ctx, request, caller, target)
    try:
        secret = ctx.state.secret(target, params["secret_id"])
    except UnknownSecretError as exc:
        return json_response(404, problems.secret_id_not_found(request.request_id, exc.secret_id))
    return json_response(200, _secret_info(target, secret))


def _delete_secret(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    caller, target = _api_caller(ctx, request), params["api_key"]
    _may_manage_secrets(ctx, request, caller, target)
    rid = request.request_id
    try:
        ctx.state.delete_secret(target, params["secret_id"])
    except UnknownSecretError as exc:
        return json_response(404, problems.secret_id_not_found(rid, exc.secret_id))
    except LastSecretError as exc:
        return json_response(403, problems.last_secret(rid, str(exc)))
    return Response(status=204)


def _may_list_subaccounts(ctx: Context, request: Request, caller: str, target: str) -> None:
    rid = request.request_id
    try:
        ctx.state.authorize_subaccounts(caller, target)
    except UnknownAccountError:
        raise Refusal(_subaccount_not_found(rid, target)) from None
    except ForbiddenError:
        raise Refusal(json_response(403, problems.unprovisioned(rid, caller))) from None


def _subaccount_not_found(rid: str, api_key: str) -> Response:
    body = problems.api_key_not_found(rid, api_key)
    body["detail"] = f"API key '{api_key}' does not exist, or you do not have access"
    return json_response(404, body)


def _account_body(ctx: Context, api_key: str) -> Body:
    info = ctx.state.info(api_key)
    body: Body = {
        "api_key": info.api_key,
        "name": info.name,
        "created_at": _timestamp(info.created_at),
        "suspended": info.suspended,
        "balance": info.balance,
        "credit_limit": 0.0,
    }
    if info.primary_api_key is not None:
        body["primary_account_api_key"] = info.primary_api_key
        body["use_primary_account_balance"] = False
    return body


def _list_subaccounts(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    caller, target = _api_caller(ctx, request), params["api_key"]
    _may_list_subaccounts(ctx, request, caller, target)
    subaccounts = [_account_body(ctx, info.api_key) for info in ctx.state.subaccounts()]
    primary = _account_body(ctx, target)
    return json_response(
        200,
        {
            "_links": {"self": {"href": f"/accounts/{target}/subaccounts"}},
            "total_balance": round(primary["balance"] + sum(s["balance"] for s in subaccounts), 8),
            "total_credit_limit": 0.0,
            "_embedded": {"primary_account": primary, "subaccounts": subaccounts},
        },
    )


def _get_subaccount(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    caller, target, sub_key = _api_caller(ctx, request), params["api_key"], params["subaccount_key"]
    _may_list_subaccounts(ctx, request, caller, target)
    try:
        info = ctx.state.info(sub_key)
    except UnknownAccountError:
        info = None
    if info is None or info.primary_api_key != target:
        return _subaccount_not_found(request.request_id, sub_key)
    return json_response(200, _account_body(ctx, sub_key))


# -- the rest host: balance and SMS --------------------------------------------------------------


def _get_balance(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    """Query ``api_key``/``api_secret`` (the documented way) or Basic auth."""
    creds: tuple[str, str] | None
    if "api_key" in request.query and "api_secret" in request.query:
        creds = request.query["api_key"], request.query["api_secret"]
    else:
        try:
            creds = basic_credentials(request.headers)
        except ValueError:
            creds = None
    if creds is None or not ctx.state.authenticates(*creds):
        return json_response(401, problems.balance_auth_failed())
    return json_response(200, {"value": ctx.state.balance(creds[0]), "autoReload": False})


def _sms_params(request: Request) -> dict[str, str]:
    """Query parameters overlaid with the form or JSON body; garbled bodies count as empty."""
    params = dict(request.query)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            payload: Any = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            for name, value in payload.items():
                if isinstance(value, bool):
                    params[str(name)] = str(value).lower()
                elif isinstance(value, str | int | float):
                    params[str(name)] = str(value)
    else:
        try:
            form = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}
        params.update({name: values[0] for name, values in form.items()})
    return params


def _sms_error(status: str, text: str) -> Response:
    """The SMS API reports every failure in a 200 body, with a status code per message."""
    return json_response(
        200, {"message-count": "1", "messages": [{"status": status, "error-text": text}]}
    )


def _send_sms(ctx: Context, request: Request, params: dict[str, str]) -> Response:
    sms = _sms_params(request)
    creds: tuple[str, str] | None = None
    if "api_key" in sms and "api_secret" in sms:
        creds = sms["api_key"], sms["api_secret"]
    else:
        try:
            creds = basic_credentials(request.headers)
        except ValueError:
            return _sms_error("4", "Bad Credentials")
    if creds is None:
        missing = "api_secret" if "api_key" in sms else "api_key"
        return _sms_error("2", f"Missing {missing}")
    if not ctx.state.authenticates(*creds):
        return _sms_error("4", "Bad Credentials")
    for name in ("from", "to", "text"):
        if not sms.get(name):
            return _sms_error("2", f"Missing {name} param")
    if not _TO.fullmatch(sms["to"]):
        return _sms_error("3", "Invalid to param")
    try:
        remaining = ctx.state.send_sms(creds[0], sender=sms["from"], to=sms["to"], text=sms["text"])
    except InsufficientBalanceError as exc:
        return _sms_error("9", str(exc))
    message: Body = {
        "to": sms["to"],
        "message-id": uuid.uuid4().hex[:16].upper(),
        "status": "0",
        "remaining-balance": f"{remaining:.8f}",
        "message-price": f"{SMS_PRICE:.8f}",
        "network": SMS_NETWORK,
    }
    if "client-ref" in sms:
        message["client-ref"] = sms["client-ref"]
    return json_response(200, {"message-count": "1", "messages": [message]})


_KEY = r"(?P<api_key>[^/]+)"
_ROUTES: Final[tuple[_Route, ...]] = (
    _Route("api", "GET", re.compile(rf"/accounts/{_KEY}/secrets"), _list_secrets),
    _Route("api", "POST", re.compile(rf"/accounts/{_KEY}/secrets"), _create_secret),
    _Route(
        "api", "GET", re.compile(rf"/accounts/{_KEY}/secrets/(?P<secret_id>[^/]+)"), _get_secret
    ),
    _Route(
        "api",
        "DELETE",
        re.compile(rf"/accounts/{_KEY}/secrets/(?P<secret_id>[^/]+)"),
        _delete_secret,
    ),
    _Route("api", "GET", re.compile(rf"/accounts/{_KEY}/subaccounts"), _list_subaccounts),
    _Route(
        "api",
        "GET",
        re.compile(rf"/accounts/{_KEY}/subaccounts/(?P<subaccount_key>[^/]+)"),
        _get_subaccount,
    ),
    _Route("rest", "GET", re.compile(r"/account/get-balance"), _get_balance),
    _Route("rest", "POST", re.compile(r"/sms/json"), _send_sms),
)
