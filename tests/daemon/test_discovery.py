"""Discovery of the keys to manage through the (simulated) Subaccounts API, recorded in the audit
log so only changes are announced."""

from __future__ import annotations

import pytest

from rotator.discovery import Discovery
from rotator.errors import NoWorkingSecretError
from rotator.services import Services
from tests.conftest import PRIMARY, SUBACCOUNTS, World

only_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def discovery(world: World, **accounts: object) -> tuple[Discovery, Services]:
    if accounts:
        world.configure(accounts=accounts)
    services = world.services()
    found = Discovery(
        world.config, audit=services.audit, vault=services.vault, vonage=services.vonage
    )
    return found, services


def events(services: Services) -> list[tuple[str | None, str]]:
    return [(e.api_key, e.outcome) for e in services.audit.events() if e.step == "discovery"]


def test_first_discovery_records_every_key_as_added(world: World) -> None:
    """The primary and each subaccount are recorded as added, once."""
    world.seed_primary()
    found, services = discovery(world)
    result = found.discover()
    assert result.api_keys() == {PRIMARY, *SUBACCOUNTS}
    assert sorted(events(services)) == sorted((k, "added") for k in [PRIMARY, *SUBACCOUNTS])


def test_unchanged_account_records_nothing_new(world: World) -> None:
    """A second discovery (or a restarted daemon's first) with no change adds no event."""
    world.seed_primary()
    found, services = discovery(world)
    found.discover()
    again, _ = discovery(world)
    result = again.discover()
    assert (result.added, result.removed) == ([], [])
    assert len(events(services)) == 1 + len(SUBACCOUNTS)


@only_sqlite
def test_suspended_subaccount_is_removed(world: World) -> None:
    """A subaccount suspended since the last discovery is dropped and recorded as removed."""
    world.seed_primary()
    found, services = discovery(world)
    found.discover()
    world.sim.set_suspended("sub00002", True)
    result = found.discover()
    assert result.removed == ["sub00002"]
    assert "sub00002" not in result.api_keys()
    assert events(services)[-1] == ("sub00002", "removed")


@only_sqlite
def test_new_subaccount_is_added(world: World) -> None:
    """A subaccount created since the last discovery is recorded as added."""
    world.seed_primary()
    found, _ = discovery(world)
    found.discover()
    world.sim.add_subaccount("sub00003", "Sub3Secret03", name="Dept 3")
    assert found.discover().added == ["sub00003"]


@only_sqlite
def test_exclude_matches_the_subaccount_name(world: World) -> None:
    """An exclude glob on a subaccount's name keeps it out."""
    world.seed_primary()
    found, _ = discovery(world, exclude=["Dept 2"])
    assert found.discover().api_keys() == {PRIMARY, "sub00001"}


@only_sqlite
def test_include_can_leave_out_the_primary(world: World) -> None:
    """include: ["sub*"] manages subaccounts only."""
    world.seed_primary()
    found, _ = discovery(world, include=["sub*"])
    assert found.discover().api_keys() == set(SUBACCOUNTS)


@only_sqlite
def test_without_discovery_the_primary_and_overrides_are_managed(world: World) -> None:
    """With discover_subaccounts off, keys named in overrides are managed beside the primary."""
    world.seed_primary()
    found, _ = discovery(
        world, discover_subaccounts=False, overrides=[{"api_key": "sub00002", "grace_period": 0}]
    )
    assert found.discover().api_keys() == {PRIMARY, "sub00002"}


@only_sqlite
def test_no_primary_secret_is_a_clear_error(world: World) -> None:
    """Subaccounts cannot be listed without the primary's secret in Vault."""
    found, _ = discovery(world)
    with pytest.raises(NoWorkingSecretError, match=f"no secret for {PRIMARY}"):
        found.discover()
