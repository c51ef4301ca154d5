"""Authentication and authorisation on the api host."""

from __future__ import annotations

import base64

import pytest

PROBLEM_FIELDS = {"type", "title", "detail", "instance"}


def test_missing_credentials_is_401_problem(api, acct):
    """No Authorization header: 401 with an RFC 7807 body and a Basic challenge."""
    response = api.get(f"/accounts/{acct.primary}/secrets", auth=None)
    assert response.status_code == 401
    body = response.json()
    assert set(body) == PROBLEM_FIELDS
    assert body["title"] == "Unauthorized"
    assert "Invalid credentials format" in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_wrong_secret_is_401(api, acct):
    """A real key with a wrong secret is refused."""
    response = api.get(f"/accounts/{acct.primary}/secrets", auth=(acct.primary, "Wrong1Secret"))
    assert response.status_code == 401
    assert set(response.json()) == PROBLEM_FIELDS


def test_unknown_key_in_credentials_is_401(api, acct):
    """Credentials for an account that does not exist are refused like a wrong secret."""
    response = api.get(f"/accounts/{acct.primary}/secrets", auth=("nobody00", "Some1Secret"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()],
    ids=["bearer", "bad-base64", "no-colon"],
)
def test_malformed_authorization_is_401(api, acct, header):
    """Authorization headers that are not valid Basic credentials are a 401."""
    response = api.get(
        f"/accounts/{acct.primary}/secrets", auth=None, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert "Invalid credentials format" in response.json()["detail"]


def test_instance_is_the_request_id(api, acct):
    """Problem bodies carry the request id as ``instance``, matching X-Request-Id."""
    response = api.get(f"/accounts/{acct.primary}/secrets", auth=None)
    assert response.json()["instance"] == response.headers["X-Request-Id"]


def test_suspended_subaccount_does_not_authenticate(sim, api, acct):
    """A suspended subaccount gets 401 even with its correct secret."""
    sim.set_suspended(acct.sub, True)
    response = api.get(f"/accounts/{acct.sub}/secrets", auth=acct.sub_auth)
    assert response.status_code == 401
    assert not sim.authenticates(*acct.sub_auth)


def test_unsuspending_restores_authentication(sim, api, acct):
    """Lifting the suspension makes the same secret work again."""
    sim.set_suspended(acct.sub, True)
    sim.set_suspended(acct.sub, False)
    assert api.get(f"/accounts/{acct.sub}/secrets", auth=acct.sub_auth).status_code == 200


def test_primary_may_manage_a_subaccount(sim, api, acct):
    """The primary's credentials work on its subaccounts' secrets."""
    response = api.post(f"/accounts/{acct.sub}/secrets", json={"secret": "SubNew1Secret"})
    assert response.status_code == 201
    assert len(sim.secrets(acct.sub)) == 2


def test_primary_may_manage_a_suspended_subaccount(sim, api, acct):
    """Suspension stops the subaccount logging in, not its primary managing it."""
    sim.set_suspended(acct.sub, True)
    assert api.get(f"/accounts/{acct.sub}/secrets").status_code == 200


def test_subaccount_may_manage_itself(api, acct):
    """A subaccount's own credentials work on its own secrets."""
    response = api.post(
        f"/accounts/{acct.sub}/secrets", json={"secret": "SubNew1Secret"}, auth=acct.sub_auth
    )
    assert response.status_code == 201


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_subaccount_touching_its_primary_is_403(sim, api, acct, method):
    """A subaccount cannot list or create its primary's secrets."""
    response = api.request(
        method,
        f"/accounts/{acct.primary}/secrets",
        json={"secret": "Hijack1Secret"},
        auth=acct.sub_auth,
    )
    assert response.status_code == 403
    assert set(response.json()) == PROBLEM_FIELDS
    assert len(sim.secrets(acct.primary)) == 1


def test_subaccount_deleting_a_sibling_secret_is_403(sim, api, acct):
    """A subaccount cannot revoke a sibling's secret."""
    sim.add_secret(acct.sibling, "Sibling2Secret")
    target = sim.secret_ids(acct.sibling)[0]
    response = api.delete(f"/accounts/{acct.sibling}/secrets/{target}", auth=acct.sub_auth)
    assert response.status_code == 403
    assert set(response.json()) == PROBLEM_FIELDS
    assert target in sim.secret_ids(acct.sibling)


def test_subaccount_reading_a_sibling_secret_is_403(sim, api, acct):
    """A subaccount cannot even read a sibling's secret metadata."""
    target = sim.secret_ids(acct.sibling)[0]
    response = api.get(f"/accounts/{acct.sibling}/secrets/{target}", auth=acct.sub_auth)
    assert response.status_code == 403


@pytest.mark.parametrize("suffix", ["", "/some-id"])
def test_unknown_api_key_in_path_is_404(api, suffix):
    """An API key that does not exist is a 404 with the ErrorAPIKeyNotFound body."""
    response = api.get(f"/accounts/nosuchkey/secrets{suffix}")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == PROBLEM_FIELDS
    assert body["type"].endswith("#invalid-api-key")
    assert body["title"] == "Invalid API Key"
    assert "nosuchkey" in body["detail"]


def test_authentication_is_checked_before_lookup(api):
    """Without credentials even an unknown key is a 401, so keys cannot be probed."""
    assert api.get("/accounts/nosuchkey/secrets", auth=None).status_code == 401
