"""Contract: the simulator's real responses validate against Vonage's published OpenAPI specs.

Each case makes a real HTTP call, then openapi-core finds the operation (server, path, method),
the documented status and content type, and validates the body against its schema. The specs
are vendored in ``specs/`` (copies of Vonage's account, subaccounts and SMS specs).

One workaround: the specs use ``oneOf`` between schemas that do not exclude each other
(ErrorAPIKeyNotFound vs ErrorSecretIDNotFound, SMS vs Error), so *every* body matches both
alternatives and strict ``oneOf`` rejects every response. We validate with ``anyOf`` instead;
``test_spec_one_of_is_ambiguous`` pins the defect so the workaround can go if the spec is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.response.exceptions import InvalidData
from werkzeug.datastructures import Headers, ImmutableMultiDict

from rotator.devtools.simulator import VonageSimulator

SPECS = Path(__file__).parent / "specs"
SHARED_SPECS = Path(os.environ.get("VONAGE_SPECS_DIR", "/work/shared/specs/vonage"))
API_HOST = "https://api.nexmo.com"
REST_HOST = "https://rest.nexmo.com"


def _one_of_to_any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _one_of_to_any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_one_of_to_any_of(v) for v in node]
    return node


def _load(name: str, *, strict_one_of: bool = False) -> OpenAPI:
    path = SPECS / f"{name}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not strict_one_of:
        data = _one_of_to_any_of(data)
    return OpenAPI.from_dict(data, base_uri=path.as_uri())


@pytest.fixture(scope="module")
def specs() -> dict[str, OpenAPI]:
    return {name: _load(name) for name in ("account", "subaccounts", "sms")}


class SpecRequest:
    """An httpx request as openapi-core sees it, moved onto Vonage's real host."""

    def __init__(self, request: httpx.Request, host_url: str) -> None:
        self.host_url = host_url
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )


class SpecResponse:
    """An httpx response as openapi-core sees it."""

    def __init__(self, response: httpx.Response) -> None:
        self.data = response.content
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(dict(response.headers))


@dataclass
class World:
    sim: VonageSimulator
    api: httpx.Client
    rest: httpx.Client
    acct: Any


def _spec_name(path: str) -> str:
    if path.startswith("/sms/"):
        return "sms"
    if "/subaccounts" in path:
        return "subaccounts"
    return "account"


def _validate(app: OpenAPI, world: World, response: httpx.Response) -> None:
    url = str(response.request.url)
    host = API_HOST if url.startswith(world.sim.api_url) else REST_HOST
    app.validate_response(SpecRequest(response.request, host), SpecResponse(response))


@pytest.fixture
def world(sim, api, rest, acct) -> World:
    return World(sim, api, rest, acct)


def _sms_form(w: World, **overrides: str) -> dict[str, str]:
    form = {
        "api_key": w.acct.primary,
        "api_secret": w.acct.primary_secret,
        "from": "AcmeInc",
        "to": "447700900000",
        "text": "hello",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v}


def _secrets(w: World) -> str:
    return f"/accounts/{w.acct.primary}/secrets"


def _one_secret(w: World) -> str:
    return f"/accounts/{w.acct.primary}/secrets/{w.sim.secret_ids(w.acct.primary)[0]}"


def _excess_400(w: World) -> httpx.Response:
    w.sim.excess_secret_status = 400
    w.sim.add_secret(w.acct.primary, "Second2Secret")
    return w.api.post(_secrets(w), json={"secret": "Third3Secret"})


def _delete_ok(w: World) -> httpx.Response:
    new_id = w.sim.add_secret(w.acct.primary, "Second2Secret")
    return w.api.delete(f"{_secrets(w)}/{new_id}")


def _delete_forbidden(w: World) -> httpx.Response:
    w.sim.add_secret(w.acct.primary, "Second2Secret")
    return w.api.delete(_one_secret(w), auth=w.acct.sub_auth)


Case = Callable[[World], httpx.Response]
CASES: dict[str, tuple[int, Case]] = {
    # account.yml: secret management
    "list-secrets-200": (200, lambda w: w.api.get(_secrets(w))),
    "list-secrets-401": (401, lambda w: w.api.get(_secrets(w), auth=None)),
    "list-secrets-404": (404, lambda w: w.api.get("/accounts/nosuchkey/secrets")),
    "create-secret-201": (201, lambda w: w.api.post(_secrets(w), json={"secret": "Fresh5Secret"})),
    "create-secret-400-validation": (400, lambda w: w.api.post(_secrets(w), json={"secret": "x"})),
    "create-secret-400-excess": (400, _excess_400),
    "create-secret-401": (
        401,
        lambda w: w.api.post(_secrets(w), json={"secret": "Fresh5Secret"}, auth=None),
    ),
    "create-secret-404": (
        404,
        lambda w: w.api.post("/accounts/nosuchkey/secrets", json={"secret": "Fresh5Secret"}),
    ),
    "get-secret-200": (200, lambda w: w.api.get(_one_secret(w))),
    "get-secret-401": (401, lambda w: w.api.get(_one_secret(w), auth=None)),
    "get-secret-404-id": (404, lambda w: w.api.get(f"{_secrets(w)}/no-such-id")),
    "get-secret-404-key": (404, lambda w: w.api.get("/accounts/nosuchkey/secrets/x")),
    "delete-secret-204": (204, _delete_ok),
    "delete-secret-401": (401, lambda w: w.api.delete(_one_secret(w), auth=None)),
    "delete-secret-403-last": (403, lambda w: w.api.delete(_one_secret(w))),
    "delete-secret-403-forbidden": (403, _delete_forbidden),
    "delete-secret-404-id": (404, lambda w: w.api.delete(f"{_secrets(w)}/no-such-id")),
    "delete-secret-404-key": (404, lambda w: w.api.delete("/accounts/nosuchkey/secrets/x")),
    # account.yml: balance
    "balance-200-query": (
        200,
        lambda w: w.rest.get(
            "/account/get-balance",
            params={"api_key": w.acct.primary, "api_secret": w.acct.primary_secret},
        ),
    ),
    "balance-200-basic": (200, lambda w: w.rest.get("/account/get-balance", auth=w.acct.sub_auth)),
    "balance-401": (
        401,
        lambda w: w.rest.get(
            "/account/get-balance", params={"api_key": w.acct.primary, "api_secret": "Wrong1x"}
        ),
    ),
    # subaccounts.yml
    "list-subaccounts-200": (200, lambda w: w.api.get(f"/accounts/{w.acct.primary}/subaccounts")),
    "list-subaccounts-401": (
        401,
        lambda w: w.api.get(f"/accounts/{w.acct.primary}/subaccounts", auth=None),
    ),
    "list-subaccounts-403": (
        403,
        lambda w: w.api.get(f"/accounts/{w.acct.primary}/subaccounts", auth=w.acct.sub_auth),
    ),
    "list-subaccounts-404": (404, lambda w: w.api.get("/accounts/nosuchkey/subaccounts")),
    "get-subaccount-200": (
        200,
        lambda w: w.api.get(f"/accounts/{w.acct.primary}/subaccounts/{w.acct.sub}"),
    ),
    "get-subaccount-401": (
        401,
        lambda w: w.api.get(f"/accounts/{w.acct.primary}/subaccounts/{w.acct.sub}", auth=None),
    ),
    "get-subaccount-403": (
        403,
        lambda w: w.api.get(
            f"/accounts/{w.acct.primary}/subaccounts/{w.acct.sub}", auth=w.acct.sub_auth
        ),
    ),
    "get-subaccount-404": (
        404,
        lambda w: w.api.get(f"/accounts/{w.acct.primary}/subaccounts/nosuchkey"),
    ),
    # sms.yml
    "sms-accepted-form": (200, lambda w: w.rest.post("/sms/json", data=_sms_form(w))),
    "sms-accepted-json": (200, lambda w: w.rest.post("/sms/json", json=_sms_form(w))),
    "sms-bad-credentials": (
        200,
        lambda w: w.rest.post("/sms/json", data=_sms_form(w, api_secret="Wrong1Secret")),
    ),
    "sms-missing-param": (200, lambda w: w.rest.post("/sms/json", data=_sms_form(w, to=""))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_response_matches_spec(specs, world, case):
    """The simulator's response for this operation and status validates against the spec."""
    expected, call = CASES[case]
    response = call(world)
    assert response.status_code == expected
    _validate(specs[_spec_name(response.request.url.path)], world, response)


DEVIATIONS: dict[str, tuple[int, Case]] = {
    # The SDK fixtures record Vonage answering 403 #add-excess-secret; the spec only knows 400.
    "create-secret-403-excess": (
        403,
        lambda w: (
            w.sim.add_secret(w.acct.primary, "Second2Secret"),
            w.api.post(_secrets(w), json={"secret": "Third3Secret"}),
        )[1],
    ),
    # The spec documents no 403 for reading or creating secrets, but permissions still apply.
    "list-secrets-403": (403, lambda w: w.api.get(_secrets(w), auth=w.acct.sub_auth)),
    # Rate limiting is undocumented in these specs.
    "rate-limited-429": (
        429,
        lambda w: (
            setattr(w.sim, "rate_limit", 1),
            w.api.get(_secrets(w)),
            w.api.get(_secrets(w)),
        )[2],
    ),
}


@pytest.mark.parametrize("case", list(DEVIATIONS))
def test_known_deviation_is_outside_the_spec(specs, world, case):
    """Real behaviours the spec omits are flagged as undocumented: clients must expect them."""
    expected, call = DEVIATIONS[case]
    response = call(world)
    assert response.status_code == expected
    with pytest.raises(ResponseNotFound):
        _validate(specs[_spec_name(response.request.url.path)], world, response)


def test_tampered_body_is_caught(specs, world):
    """The harness is not vacuous: a body with a wrong type fails validation."""
    real = world.rest.get("/account/get-balance", auth=world.acct.primary_auth)
    tampered = httpx.Response(
        200, json={"value": "ten euros", "autoReload": False}, request=real.request
    )
    with pytest.raises(InvalidData):
        _validate(specs["account"], world, tampered)


def test_wrong_host_mapping_is_caught(specs, world):
    """The validator checks servers: a secrets call presented as rest.nexmo.com fails."""
    response = world.api.get(_secrets(world))
    with pytest.raises(PathError):
        specs["account"].validate_response(
            SpecRequest(response.request, REST_HOST), SpecResponse(response)
        )


def test_spec_one_of_is_ambiguous(world):
    """The unpatched spec rejects even a correct 404 (both oneOf branches match): why we patch."""
    response = world.api.get(f"{_secrets(world)}/no-such-id")
    with pytest.raises(InvalidData, match="valid under each of"):
        _validate(_load("account", strict_one_of=True), world, response)


@pytest.mark.parametrize("name", ["account", "subaccounts", "sms"])
def test_vendored_spec_matches_the_shared_copy(name):
    """The vendored spec is the one the team reviewed (skipped where the shared copy is absent)."""
    shared = SHARED_SPECS / f"{name}.yml"
    if not shared.exists():
        pytest.skip(f"no shared spec at {shared}")
    assert (SPECS / f"{name}.yml").read_bytes() == shared.read_bytes()
