"""The primary's credentials, shared by the runs of one process (issue 12): read from Vault
once, read again when Vonage refuses them, when this process rotates the primary, and after
``max_age``; a rotation of the primary by another process costs the next run one refused call."""

from __future__ import annotations

from rotator.audit import RunStatus
from rotator.primary import MAX_AGE, PrimarySecret
from rotator.secret import Credentials
from tests.conftest import PRIMARY, PRIMARY_SECRET, World
from tests.invariants import violations

SUB, SUB2 = "sub00001", "sub00002"


def refused(world: World) -> int:
    """Calls Vonage refused with 401 so far."""
    return sum(1 for call in world.sim.calls if call.status == 401)


def test_a_primary_rotated_by_another_process_is_picked_up_after_one_refusal(
    world: World,
) -> None:
    world.seed_primary()
    ours = world.services()
    assert ours.rotator.rotate(SUB, actor="tester").ok  # our copy of the primary's secret
    other = world.services()  # another process rotates the primary: our copy is revoked
    assert other.rotator.rotate(PRIMARY, actor="tester").ok
    before = refused(world)

    outcome = ours.rotator.rotate(SUB2, actor="tester")

    assert outcome.run.status == RunStatus.SUCCEEDED, outcome.run.error
    assert refused(world) == before + 1  # the stale copy, once; then Vault's record
    assert violations(world, SUB2, ours.audit) == []
    assert ours.rotator.rotate(SUB, actor="tester").ok  # the fresh copy is shared
    assert refused(world) == before + 1


def test_our_own_rotation_of_the_primary_refreshes_the_copy(world: World) -> None:
    world.seed_primary()
    services = world.services()
    assert services.rotator.rotate(PRIMARY, actor="tester").ok
    before = refused(world)
    assert services.rotator.rotate(SUB, actor="tester").ok
    assert refused(world) == before  # the run used the primary's new secret at once


def test_the_copy_is_read_again_after_max_age_and_on_demand(world: World) -> None:
    world.seed_primary()
    vault = world.services().vault
    now = [0.0]
    primary = PrimarySecret(vault, PRIMARY, clock=lambda: now[0])
    first = primary.get()
    assert first == Credentials(PRIMARY, first.secret)
    world.seed_vault(PRIMARY, "Changed7ByHand")  # an operator edits the record
    now[0] = MAX_AGE / 2
    assert primary.get() == first  # still the copy
    now[0] = MAX_AGE + 1
    changed = primary.get()
    assert changed != first
    world.seed_vault(PRIMARY, PRIMARY_SECRET)
    assert primary.read() != changed  # read() always asks Vault
    assert primary.get() == first
