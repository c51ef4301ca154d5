"""The secret-management endpoints on the api host: happy paths and Vonage's rules."""

from __future__ import annotations

import re
import uuid

import pytest

SECRET_ERRORS = "https://developer.nexmo.com/api-errors/account/secret-management"
PROBLEM_FIELDS = {"type", "title", "detail", "instance"}


def test_list_returns_links_and_embedded_secrets(sim, api, acct):
    """Listing returns the account's link and one secretInfo per secret."""
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 200
    body = response.json()
    assert body["_links"] == {"self": {"href": f"/accounts/{acct.primary}/secrets"}}
    [info] = body["_embedded"]["secrets"]
    assert info["id"] == sim.secret_ids(acct.primary)[0]
    assert info["_links"]["self"]["href"] == f"/accounts/{acct.primary}/secrets/{info['id']}"


def test_list_is_oldest_first(sim, api, acct):
    """Secrets are listed in creation order, oldest first."""
    new_id = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Second2Secret"}).json()[
        "id"
    ]
    listed = [
        s["id"] for s in api.get(f"/accounts/{acct.primary}/secrets").json()["_embedded"]["secrets"]
    ]
    assert listed == sim.secret_ids(acct.primary)
    assert listed[-1] == new_id


def test_create_returns_201_with_secret_info(sim, api, acct):
    """A valid new secret is created and described by id, link and creation time."""
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Brand9NewOne"})
    assert response.status_code == 201
    body = response.json()
    assert uuid.UUID(body["id"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["created_at"])
    assert body["_links"]["self"]["href"] == f"/accounts/{acct.primary}/secrets/{body['id']}"
    assert [s.value for s in sim.secrets(acct.primary)][-1] == "Brand9NewOne"


def test_new_secret_authenticates_alongside_the_old_one(sim, api, acct):
    """Both current secrets authenticate, which is what makes rotation possible."""
    api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Brand9NewOne"})
    for secret in (acct.primary_secret, "Brand9NewOne"):
        response = api.get(f"/accounts/{acct.primary}/secrets", auth=(acct.primary, secret))
        assert response.status_code == 200


def test_no_response_contains_a_secret_value(sim, api, acct):
    """Vonage never returns secret values: not on create, list or get."""
    created = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Brand9NewOne"})
    listed = api.get(f"/accounts/{acct.primary}/secrets")
    single = api.get(f"/accounts/{acct.primary}/secrets/{created.json()['id']}")
    for response in (created, listed, single):
        assert "Brand9NewOne" not in response.text
        assert acct.primary_secret not in response.text


def test_get_one_returns_secret_info(sim, api, acct):
    """One secret can be fetched by id."""
    secret_id = sim.secret_ids(acct.primary)[0]
    response = api.get(f"/accounts/{acct.primary}/secrets/{secret_id}")
    assert response.status_code == 200
    assert response.json()["id"] == secret_id


def test_get_unknown_secret_is_404_invalid_id(api, acct):
    """An unknown secret id is a 404 with the ErrorSecretIDNotFound body."""
    response = api.get(f"/accounts/{acct.primary}/secrets/no-such-id")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == PROBLEM_FIELDS
    assert body["type"].endswith("#invalid-id")
    assert body["title"] == "Invalid ID"
    assert "no-such-id" in body["detail"]


def test_delete_returns_204_without_body(sim, api, acct):
    """Revoking one of two secrets answers 204 with an empty body and removes it."""
    new_id = sim.add_secret(acct.primary, "Second2Secret")
    response = api.delete(f"/accounts/{acct.primary}/secrets/{new_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert new_id not in sim.secret_ids(acct.primary)


def test_deleted_secret_no_longer_authenticates(sim, api, acct):
    """After revocation the old secret is refused with 401."""
    new_id = sim.add_secret(acct.primary, "Second2Secret")
    old_id = sim.secret_ids(acct.primary)[0]
    api.delete(f"/accounts/{acct.primary}/secrets/{old_id}")
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 401
    assert (
        api.get(
            f"/accounts/{acct.primary}/secrets/{new_id}", auth=(acct.primary, "Second2Secret")
        ).status_code
        == 200
    )


def test_delete_last_secret_is_403(sim, api, acct):
    """The only secret cannot be revoked: 403 delete-last-secret."""
    [only] = sim.secret_ids(acct.primary)
    response = api.delete(f"/accounts/{acct.primary}/secrets/{only}")
    assert response.status_code == 403
    body = response.json()
    assert set(body) == PROBLEM_FIELDS
    assert body["type"] == f"{SECRET_ERRORS}#delete-last-secret"
    assert sim.secret_ids(acct.primary) == [only]


def test_delete_unknown_secret_is_404(api, acct):
    """Revoking an id that does not exist is a 404 invalid-id."""
    response = api.delete(f"/accounts/{acct.primary}/secrets/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["type"].endswith("#invalid-id")


@pytest.mark.parametrize("status", [400, 403])
def test_third_secret_is_refused_with_configured_status(make_sim, client_for, acct, status):
    """A third secret is refused with 400 (spec) or 403 (SDK fixtures), add-excess-secret."""
    sim = make_sim(excess_secret_status=status)
    api = client_for(sim.api_url, acct.primary_auth)
    sim.add_secret(acct.primary, "Second2Secret")
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Third3Secret"})
    assert response.status_code == status
    body = response.json()
    assert set(body) == PROBLEM_FIELDS
    assert body["type"] == f"{SECRET_ERRORS}#add-excess-secret"
    assert body["title"] == "Maxmimum number of secrets already met"
    assert body["detail"] == "This account has reached maximum number of '2' allowed secrets"
    assert len(sim.secrets(acct.primary)) == 2


def test_excess_secret_status_can_change_at_runtime(sim, api, acct):
    """Switching the knob on a running simulator changes the next refusal."""
    sim.add_secret(acct.primary, "Second2Secret")
    sim.excess_secret_status = 400
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Third3Secret"})
    assert response.status_code == 400


def test_excess_secret_status_rejects_other_values(sim):
    """Only 400 and 403 are real Vonage behaviours."""
    with pytest.raises(ValueError, match="400"):
        sim.excess_secret_status = 409


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("Short1a", "between 8 and 25"),
        ("A1" + "a" * 24, "between 8 and 25"),
        ("ALLUPPER123", "lower case"),
        ("alllower123", "upper case"),
        ("NoDigitsHere", "digit"),
    ],
)
def test_invalid_secret_is_400_validation(sim, api, acct, secret, reason):
    """Secrets must be 8-25 chars with a lower, an upper and a digit, else 400 validation."""
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": secret})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == f"{SECRET_ERRORS}#validation"
    assert body["title"] == "Bad Request"
    assert body["detail"]
    assert body["instance"]
    assert body["invalid_parameters"][0]["name"] == "secret"
    assert any(reason in p["reason"] for p in body["invalid_parameters"])
    assert len(sim.secrets(acct.primary)) == 1


@pytest.mark.parametrize("secret", ["Abcdefg1", "A1" + "b" * 23])
def test_boundary_lengths_are_accepted(api, acct, secret):
    """8 and 25 characters are both within the rule."""
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": secret})
    assert response.status_code == 201


def test_validation_comes_before_the_secret_limit(sim, api, acct):
    """An invalid secret on a full account is a validation error, not add-excess-secret."""
    sim.add_secret(acct.primary, "Second2Secret")
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "weak"})
    assert response.json()["type"].endswith("#validation")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b'{"other": "Field1Value"}', b'["Secret1Value"]', b'{"secret": 12345678}'],
    ids=["malformed", "empty", "missing-field", "not-an-object", "not-a-string"],
)
def test_unusable_body_is_400_validation(api, acct, content):
    """Malformed JSON or a missing/non-string field is a 400 validation problem."""
    response = api.post(
        f"/accounts/{acct.primary}/secrets",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"].endswith("#validation")
    assert body["invalid_parameters"][0]["name"] == "secret"
