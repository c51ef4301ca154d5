"""`rotator rollback`: back to the previous secret inside the grace period, refused after it."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.audit import RunStatus
from rotator.errors import NothingToRollBackError
from rotator.rollback import rollback
from tests.conftest import PRIMARY, SUBACCOUNTS, World

SUB = "sub00001"


def rotated(world: World, grace: str) -> Any:
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(rotation={"grace_period": grace})
    services = world.services()
    return services.rotator.rotate(SUB, actor="tester", reason="test"), services


def test_rollback_inside_the_grace_restores_the_previous_secret(world: World) -> None:
    """The previous secret is current in Vault again, the newer one revoked on Vonage."""
    outcome, services = rotated(world, "1h")
    run = rollback(services.rotator.deps, SUB, actor="ops", reason="new secret leaked")
    assert run.status == RunStatus.ROLLED_BACK
    record = world.vault_record(SUB)
    assert record is not None
    assert record["secret_id"] == outcome.run.old_secret_id
    assert world.seeded_authenticates(SUB)
    assert world.sim.secret_ids(SUB) == [outcome.run.old_secret_id]


def test_rollback_audits_each_step_as_the_operator(world: World) -> None:
    """verify, rollback and revoke are audit events of the undone run, by the given actor."""
    outcome, services = rotated(world, "1h")
    rollback(services.rotator.deps, SUB, actor="ops", reason="why")
    events = services.audit.events(run_id=outcome.run.id)
    tail = [(e.step, e.outcome, e.actor) for e in events][-4:]
    assert tail == [
        ("verify", "ok", "ops"),
        ("rollback", "ok", "ops"),
        ("revoke", "ok", "ops"),
        ("run.end", "rolled_back", "ops"),
    ]


def test_rollback_without_a_grace_period_is_refused(world: World) -> None:
    """With the previous secret already revoked there is nothing to go back to."""
    _, services = rotated(world, "0s")
    with pytest.raises(NothingToRollBackError):
        rollback(services.rotator.deps, SUB, actor="ops", reason="too late")


def test_rollback_refuses_a_previous_secret_revoked_behind_its_back(world: World) -> None:
    """An attacker (or a hand) revoked the previous secret on Vonage: refused, nothing changed."""
    outcome, services = rotated(world, "1h")
    admin = services.vault.credentials(PRIMARY)
    services.vonage.revoke_secret(admin, SUB, outcome.run.old_secret_id)
    with pytest.raises(NothingToRollBackError):
        rollback(services.rotator.deps, SUB, actor="ops", reason="x")
    record = world.vault_record(SUB)
    assert record is not None
    assert record["secret_id"] == outcome.run.new_secret_id


def test_cli_rollback_after_the_grace_exits_2(world: World, run_cli: Any) -> None:
    """`rotator rollback` once the previous secret is gone exits 2 with a clear message."""
    world.seed_primary()
    assert run_cli("rotate", SUB).returncode == 0
    done = run_cli("rollback", SUB, "--reason", "too late")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "no previous secret" in done.stderr


def test_cli_rollback_rejects_a_hostile_api_key(world: World, run_cli: Any) -> None:
    """A path-traversal API key is refused before anything is read."""
    done = run_cli("rollback", "../../sys", "--reason", "x")
    assert done.returncode == 2
