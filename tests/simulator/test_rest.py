"""The rest host (balance, SMS) and routing between the two hosts."""

from __future__ import annotations

import uuid

import pytest

from rotator.devtools.simulator import SmsMessage

AUTH_FAILED = {"error-code": "401", "error-code-label": "authentication failed"}


def _sms(acct, **overrides):
    form = {
        "api_key": acct.primary,
        "api_secret": acct.primary_secret,
        "from": "AcmeInc",
        "to": "447700900000",
        "text": "Rotation done",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_balance_with_query_credentials(rest, acct):
    """The documented way: api_key and api_secret as query parameters."""
    response = rest.get(
        "/account/get-balance", params={"api_key": acct.primary, "api_secret": acct.primary_secret}
    )
    assert response.status_code == 200
    assert response.json() == {"value": 10.0, "autoReload": False}


def test_balance_with_basic_auth(rest, acct):
    """Basic auth is accepted too, which makes it a cheap credential probe."""
    response = rest.get("/account/get-balance", auth=acct.sub_auth)
    assert response.status_code == 200
    assert response.json()["value"] == 10.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"params": {"api_key": "abcd1234", "api_secret": "Wrong1Secret"}},
        {"params": {"api_key": "abcd1234"}},
        {"auth": ("abcd1234", "Wrong1Secret")},
    ],
    ids=["none", "wrong-query", "key-only", "wrong-basic"],
)
def test_balance_bad_credentials_is_401_error_code(rest, kwargs):
    """Bad or missing credentials: 401 with the ErrorAuthenticationFailedAccountBalance body."""
    response = rest.get("/account/get-balance", **kwargs)
    assert response.status_code == 401
    assert response.json() == AUTH_FAILED


def test_balance_refuses_suspended_subaccount(sim, rest, acct):
    """A suspended subaccount cannot read its balance."""
    sim.set_suspended(acct.sub, True)
    assert rest.get("/account/get-balance", auth=acct.sub_auth).status_code == 401


def test_balance_refuses_unpropagated_secret(sim, rest, acct):
    """The balance probe applies the same propagation rule as everything else."""
    sim.propagation_delay = 5
    sim.add_secret(acct.primary, "Fresh5Secret")
    assert rest.get("/account/get-balance", auth=(acct.primary, "Fresh5Secret")).status_code == 401


def test_sms_form_is_accepted_and_lands_in_outbox(sim, rest, acct):
    """A form-encoded SMS is accepted with status 0 and appears in the outbox."""
    response = rest.post("/sms/json", data=_sms(acct, **{"client-ref": "rot-1"}))
    assert response.status_code == 200
    body = response.json()
    assert body["message-count"] == "1"
    [message] = body["messages"]
    assert message["status"] == "0"
    assert message["to"] == "447700900000"
    assert message["client-ref"] == "rot-1"
    assert message["message-id"]
    assert sim.sms_outbox == [
        SmsMessage(api_key=acct.primary, sender="AcmeInc", to="447700900000", text="Rotation done")
    ]


def test_sms_json_body_is_accepted(sim, rest, acct):
    """A JSON body works as well as a form."""
    response = rest.post("/sms/json", json=_sms(acct))
    assert response.json()["messages"][0]["status"] == "0"
    assert len(sim.sms_outbox) == 1


def test_sms_basic_auth_is_accepted(sim, rest, acct):
    """Credentials may come from Basic auth instead of the body."""
    response = rest.post(
        "/sms/json", data=_sms(acct, api_key=None, api_secret=None), auth=acct.sub_auth
    )
    assert response.json()["messages"][0]["status"] == "0"
    assert sim.sms_outbox[0].api_key == acct.sub


def test_sms_charges_the_account(rest, acct):
    """Each message lowers the remaining balance reported and the balance endpoint."""
    message = rest.post("/sms/json", data=_sms(acct)).json()["messages"][0]
    assert message["remaining-balance"] == "9.96670000"
    balance = rest.get("/account/get-balance", auth=acct.primary_auth).json()["value"]
    assert balance == pytest.approx(9.9667)


def test_sms_bad_credentials_is_status_4_in_a_200(sim, rest, acct):
    """The SMS API reports auth failures in the body (status 4), never in the HTTP status."""
    response = rest.post("/sms/json", data=_sms(acct, api_secret="Wrong1Secret"))
    assert response.status_code == 200
    assert response.json()["messages"][0]["status"] == "4"
    assert sim.sms_outbox == []


def test_sms_suspended_account_is_refused(sim, rest, acct):
    """A suspended subaccount cannot send."""
    sim.set_suspended(acct.sub, True)
    form = _sms(acct, api_key=acct.sub, api_secret=acct.sub_secret)
    assert rest.post("/sms/json", data=form).json()["messages"][0]["status"] == "4"


@pytest.mark.parametrize("field", ["from", "to", "text", "api_key", "api_secret"])
def test_sms_missing_parameter_is_status_2(sim, rest, acct, field):
    """A missing required parameter is status 2 and nothing is sent."""
    response = rest.post("/sms/json", data=_sms(acct, **{field: None}))
    message = response.json()["messages"][0]
    assert message["status"] == "2"
    assert "Missing" in message["error-text"]
    assert sim.sms_outbox == []


def test_sms_invalid_recipient_is_status_3(sim, rest, acct):
    """A recipient that is not 7-15 digits is status 3."""
    response = rest.post("/sms/json", data=_sms(acct, to="not-a-number"))
    assert response.json()["messages"][0]["status"] == "3"


def test_api_route_on_rest_host_is_404(rest, acct):
    """Secrets live on the api host only."""
    assert rest.get(f"/accounts/{acct.primary}/secrets", auth=acct.primary_auth).status_code == 404


def test_rest_route_on_api_host_is_404(api, acct):
    """The balance lives on the rest host only."""
    response = api.get(
        "/account/get-balance", params={"api_key": acct.primary, "api_secret": acct.primary_secret}
    )
    assert response.status_code == 404


def test_unknown_path_is_404(api):
    """Paths that Vonage does not have are 404."""
    assert api.get("/no/such/path").status_code == 404


def test_wrong_method_is_405_with_allow(api, acct):
    """A known path with an unsupported method is 405 and says what is allowed."""
    response = api.put(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}


def test_every_response_has_a_fresh_request_id(sim, api, rest, acct):
    """Successes, errors, 404s and 405s all carry a distinct uuid4-hex X-Request-Id."""
    responses = [
        api.get(f"/accounts/{acct.primary}/secrets"),
        api.get(f"/accounts/{acct.primary}/secrets", auth=None),
        api.get("/nowhere"),
        api.patch(f"/accounts/{acct.primary}/secrets"),
        api.delete(f"/accounts/{acct.primary}/secrets/{sim.secret_ids(acct.primary)[0]}"),
        rest.get("/account/get-balance"),
        rest.post("/sms/json", data=_sms(acct)),
    ]
    ids = [r.headers["X-Request-Id"] for r in responses]
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        assert uuid.UUID(hex=request_id).version == 4
        assert request_id == uuid.UUID(hex=request_id).hex


def test_stdlib_error_pages_have_a_request_id(api):
    """Even a request the HTTP parser rejects (unknown method) gets an X-Request-Id."""
    response = api.request("BREW", "/accounts")
    assert response.status_code == 501
    assert len(response.headers["X-Request-Id"]) == 32


def test_keep_alive_connection_serves_many_requests(sim, api, acct):
    """One client connection can carry several requests (HTTP/1.1 keep-alive)."""
    for _ in range(3):
        assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    assert len(sim.calls) == 3
