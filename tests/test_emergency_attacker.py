"""Emergencies against a live attacker: the simulator adds and deletes secrets between the
rotation's steps (through the injected step boundary), and the emergency must still win."""

from __future__ import annotations

from collections.abc import Callable

from rotator.adoption import adopt
from rotator.audit import RunStatus
from rotator.secret import Secret
from rotator.steps import EMERGENCY_ROUND_STEP
from tests.conftest import PRIMARY, World
from tests.invariants import violations

SUB = "sub00001"
ATTACKER = "Attacker1Secret"


def attacker_at(name: str, act: Callable[[], None]) -> Callable[[str], None]:
    """A step boundary that lets the attacker act once, at ``name``."""
    done: list[str] = []

    def boundary(point: str) -> None:
        if point == name and not done:
            done.append(point)
            act()

    return boundary


def rotated_once(world: World, api_key: str = SUB) -> str:
    """Rotate ``api_key`` once so Vault holds rotator's own secret; its id."""
    world.seed_primary()
    world.services().rotator.rotate(api_key, actor="tester", reason="setup")
    record = world.vault_record(api_key)
    assert record is not None
    return str(record["secret_id"])


def test_emergency_revokes_a_secret_re_added_before_create_and_wins(world: World) -> None:
    """A secret added between make room and create is revoked and the emergency succeeds."""
    rotated_once(world)
    added: list[str] = []
    boundary = attacker_at(
        "after:make_room",
        lambda: added.append(world.sim.add_secret(SUB, ATTACKER, propagated=True)),
    )
    services = world.services(boundary=boundary)
    outcome = services.rotator.rotate(SUB, actor="tester", reason="leak", emergency=True)
    assert outcome.run.status == RunStatus.SUCCEEDED
    record = world.vault_record(SUB)
    assert record is not None
    assert world.sim.secret_ids(SUB) == [record["secret_id"]] == [outcome.run.new_secret_id]
    assert added[0] not in world.sim.secret_ids(SUB)
    assert violations(world, SUB, services.audit) == []


def test_each_emergency_round_is_an_audit_event_naming_what_it_revoked(world: World) -> None:
    """The round that revoked the attacker's secret is one audit event with its id."""
    rotated_once(world)
    added: list[str] = []
    boundary = attacker_at(
        "after:make_room",
        lambda: added.append(world.sim.add_secret(SUB, ATTACKER, propagated=True)),
    )
    services = world.services(boundary=boundary)
    outcome = services.rotator.rotate(SUB, actor="tester", reason="leak", emergency=True)
    rounds = [e for e in services.audit.events(run_id=outcome.run.id)
              if e.step == EMERGENCY_ROUND_STEP]  # fmt: skip
    assert [(e.detail or {}).get("revoked") for e in rounds] == [added]


def test_a_refused_create_never_records_the_attackers_secret_as_rotators(world: World) -> None:
    """A routine run refused for want of room rolls back without calling the attacker's
    secret its own (nothing names it, nothing revokes it as 'ours'). The attacker fills the
    key after every make room: the create-first run's refusal sends it to list and make room
    (the secret found then is an orphan, revoked as the full path would), the next one wins."""
    rotated_once(world)
    added: list[str] = []

    def boundary(point: str) -> None:
        if point == "after:make_room":
            added.append(world.sim.add_secret(SUB, ATTACKER, propagated=True))

    services = world.services(boundary=boundary)
    outcome = services.rotator.rotate(SUB, actor="tester", reason="routine")
    assert outcome.run.status in {RunStatus.FAILED, RunStatus.ROLLED_BACK}
    assert outcome.run.new_secret_id is None
    events = services.audit.events(run_id=outcome.run.id)
    assert not set(added) & {e.secret_id for e in events if e.step == "rollback"}
    assert added[-1] in world.sim.secret_ids(SUB)  # left for an operator (or an emergency)


def test_emergency_wins_when_the_attacker_deleted_rotators_secret_and_holds_both_slots(
    world: World,
) -> None:
    """Rotator's secret gone and two unknown secrets: the emergency revokes them both."""
    mine = rotated_once(world)
    first = world.sim.add_secret(SUB, ATTACKER, propagated=True)
    world.sim.delete_secret(SUB, mine)
    second = world.sim.add_secret(SUB, "Attacker2Secret", propagated=True)
    services = world.services()
    outcome = services.rotator.rotate(SUB, actor="tester", reason="leak", emergency=True)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert world.sim.secret_ids(SUB) == [outcome.run.new_secret_id]
    assert not {first, second} & set(world.sim.secret_ids(SUB))
    state = world.vault_record(SUB, kind="rotator-state") or {}
    assert not state.get("previous")  # no attacker id was paired with a value as "previous"
    assert violations(world, SUB, services.audit) == []


def test_a_primary_whose_vault_secret_is_dead_fails_with_the_operators_steps(
    world: World,
) -> None:
    """The primary's own secret revoked by the attacker: the run fails and says what to do."""
    mine = rotated_once(world, PRIMARY)
    world.sim.add_secret(PRIMARY, ATTACKER, propagated=True)
    world.sim.delete_secret(PRIMARY, mine)
    outcome = world.services().rotator.rotate(
        PRIMARY, actor="tester", reason="leak", emergency=True
    )
    assert outcome.run.status == RunStatus.FAILED
    error = outcome.run.error or ""
    assert f"rotator adopt {PRIMARY} --secret-id ID --secret-env VAR" in error
    assert f"rotator rotate --emergency {PRIMARY}" in error


def test_following_the_dead_primarys_hint_lets_the_emergency_win(world: World) -> None:
    """Dashboard secret, `adopt --secret-env`, then `rotate --emergency`: attacker's gone."""
    mine = rotated_once(world, PRIMARY)
    attacker = world.sim.add_secret(PRIMARY, ATTACKER, propagated=True)
    world.sim.delete_secret(PRIMARY, mine)
    fresh = "Operator1Fresh"
    fresh_id = world.sim.add_secret(PRIMARY, fresh, propagated=True)  # the dashboard step
    services = world.services()
    adopt(services, PRIMARY, fresh_id, actor="tester", reason="leak", value=Secret(fresh))
    outcome = services.rotator.rotate(PRIMARY, actor="tester", reason="leak", emergency=True)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert attacker not in world.sim.secret_ids(PRIMARY)
    assert world.sim.secret_ids(PRIMARY) == [outcome.run.new_secret_id]
    assert violations(world, PRIMARY, services.audit) == []


def test_an_application_reading_vault_always_gets_a_working_secret(world: World) -> None:
    """At every step of an emergency fought with an attacker, Vault's current secret works."""
    rotated_once(world)
    readings: list[tuple[str, bool]] = []
    attack = attacker_at(
        "after:make_room", lambda: world.sim.add_secret(SUB, ATTACKER, propagated=True)
    )

    def boundary(point: str) -> None:
        attack(point)
        readings.append((point, world.current_authenticates(SUB)))

    services = world.services(boundary=boundary)
    outcome = services.rotator.rotate(SUB, actor="tester", reason="leak", emergency=True)
    assert outcome.run.status == RunStatus.SUCCEEDED
    assert [point for point, works in readings if not works] == []
