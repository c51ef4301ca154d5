"""The subaccounts endpoints: what rotator uses to discover the keys it manages."""

from __future__ import annotations

PROBLEM_FIELDS = {"type", "title", "detail", "instance"}


def test_primary_lists_primary_and_subaccounts(api, acct):
    """The list holds the primary account and every subaccount, in creation order."""
    response = api.get(f"/accounts/{acct.primary}/subaccounts")
    assert response.status_code == 200
    embedded = response.json()["_embedded"]
    assert embedded["primary_account"]["api_key"] == acct.primary
    assert [s["api_key"] for s in embedded["subaccounts"]] == [acct.sub, acct.sibling]


def test_subaccount_entries_carry_spec_fields(api, acct):
    """Each subaccount shows its name, primary, suspension, balance and creation time."""
    entry = api.get(f"/accounts/{acct.primary}/subaccounts").json()["_embedded"]["subaccounts"][0]
    assert entry["name"] == "Dept A"
    assert entry["primary_account_api_key"] == acct.primary
    assert entry["suspended"] is False
    assert entry["use_primary_account_balance"] is False
    assert isinstance(entry["balance"], float)
    assert entry["created_at"].endswith("Z")


def test_list_shows_suspension(sim, api, acct):
    """A suspended subaccount is listed with ``suspended: true``."""
    sim.set_suspended(acct.sibling, True)
    subs = api.get(f"/accounts/{acct.primary}/subaccounts").json()["_embedded"]["subaccounts"]
    assert {s["api_key"]: s["suspended"] for s in subs} == {acct.sub: False, acct.sibling: True}


def test_list_includes_subaccounts_added_later(sim, api, acct):
    """Subaccounts added at runtime appear, with a default name."""
    sim.add_subaccount("sub00009", "Late9Secret")
    subs = api.get(f"/accounts/{acct.primary}/subaccounts").json()["_embedded"]["subaccounts"]
    assert subs[-1]["api_key"] == "sub00009"
    assert subs[-1]["name"]


def test_list_never_contains_secrets(api, acct):
    """Neither the primary's nor any subaccount's secret is in the list."""
    text = api.get(f"/accounts/{acct.primary}/subaccounts").text
    for secret in (acct.primary_secret, acct.sub_secret, acct.sibling_secret):
        assert secret not in text


def test_subaccount_listing_is_403(api, acct):
    """A subaccount may not list subaccounts, its own path or its primary's."""
    for path_key in (acct.sub, acct.primary):
        response = api.get(f"/accounts/{path_key}/subaccounts", auth=acct.sub_auth)
        assert response.status_code == 403
        body = response.json()
        assert set(body) == PROBLEM_FIELDS
        assert body["type"].endswith("#unprovisioned")


def test_primary_listing_under_a_subaccount_key_is_403(api, acct):
    """A subaccount has no subaccounts of its own to list."""
    assert api.get(f"/accounts/{acct.sub}/subaccounts").status_code == 403


def test_listing_unknown_key_is_404(api):
    """An unknown primary key is a 404 invalid-api-key."""
    response = api.get("/accounts/nosuchkey/subaccounts")
    assert response.status_code == 404
    assert response.json()["type"].endswith("#invalid-api-key")


def test_listing_without_credentials_is_401(api, acct):
    """The subaccounts API needs Basic auth too."""
    response = api.get(f"/accounts/{acct.primary}/subaccounts", auth=None)
    assert response.status_code == 401
    assert set(response.json()) == PROBLEM_FIELDS


def test_get_one_subaccount(api, acct):
    """A single subaccount can be fetched by key."""
    response = api.get(f"/accounts/{acct.primary}/subaccounts/{acct.sibling}")
    assert response.status_code == 200
    assert response.json()["api_key"] == acct.sibling
    assert response.json()["name"] == "Dept B"


def test_get_unknown_subaccount_is_404(api, acct):
    """A key that is not one of the primary's subaccounts is a 404."""
    for key in ("nosuchkey", acct.primary):
        response = api.get(f"/accounts/{acct.primary}/subaccounts/{key}")
        assert response.status_code == 404
        assert set(response.json()) == PROBLEM_FIELDS


def test_subaccount_getting_itself_is_403(api, acct):
    """Reading subaccount details is the primary's privilege."""
    response = api.get(f"/accounts/{acct.primary}/subaccounts/{acct.sub}", auth=acct.sub_auth)
    assert response.status_code == 403
