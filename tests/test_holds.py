"""`rotator pause` / `rotator resume` as operators use them: stored, audited, obeyed by manual
rotations, overridden (and said so) by emergencies; hostile arguments refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotator import db
from rotator.audit import AuditLog
from tests.conftest import SUBACCOUNTS, World

SUB = "sub00001"
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def seeded(world: World) -> World:
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    return world


def audit_of(world: World) -> AuditLog:
    return AuditLog(db.make_engine(world.database_url))


def test_pause_is_audited_with_actor_and_reason(world: World, run_cli: Any) -> None:
    """A pause is an audit event naming who paused, why and until when."""
    done = run_cli("pause", SUB, "--until", "2h", "--reason", "freeze", "--actor", "alice")
    assert done.returncode == 0, done.stderr
    (event,) = [e for e in audit_of(world).events(api_key=SUB) if e.step == "pause"]
    assert event.actor == "alice"
    assert event.detail is not None
    assert event.detail["reason"] == "freeze"
    assert event.detail["until"]


def test_paused_key_refuses_a_manual_rotation(world: World, run_cli: Any) -> None:
    """A plain rotation of a paused key exits 1 and says how to lift the pause."""
    seeded(world)
    run_cli("pause", SUB, "--reason", "freeze")
    done = run_cli("rotate", SUB)
    assert done.returncode == 1
    assert "paused" in done.stderr
    assert "rotator resume" in done.stderr
    assert audit_of(world).runs(api_key=SUB) == []


def test_emergency_runs_on_a_paused_key_and_says_so(world: World, run_cli: Any) -> None:
    """An emergency still rotates a paused key, noting the pause on stderr and in the run."""
    seeded(world)
    run_cli("pause", "--all", "--reason", "freeze")
    done = run_cli("rotate", SUB, "--emergency", "--reason", "leaked")
    assert done.returncode == 0, done.stderr
    assert "paused" in done.stderr
    (run,) = audit_of(world).runs(api_key=SUB)
    assert run.emergency
    assert run.reason is not None
    assert "paused" in run.reason
    assert world.current_authenticates(SUB)


def test_resume_lifts_the_pause(world: World, run_cli: Any) -> None:
    """After resume, a manual rotation runs again."""
    seeded(world)
    run_cli("pause", SUB, "--reason", "freeze")
    assert run_cli("resume", SUB).returncode == 0
    done = run_cli("rotate", SUB)
    assert done.returncode == 0, done.stderr


def test_pause_in_the_past_is_refused(world: World, run_cli: Any) -> None:
    """--until in the past is a usage error (exit 2), nothing stored."""
    done = run_cli("pause", SUB, "--until", "2001-01-01T00:00Z", "--reason", "x")
    assert done.returncode == 2
    assert "in the past" in done.stderr


def test_pause_of_a_hostile_key_is_refused(world: World, run_cli: Any) -> None:
    """A path-like API key is refused before it reaches the database."""
    done = run_cli("pause", "../../etc", "--reason", "x")
    assert done.returncode == 2


def test_pause_needs_a_reason(world: World, run_cli: Any) -> None:
    """A pause without --reason is refused: the audit log must say why."""
    assert run_cli("pause", SUB).returncode == 2


def test_status_shows_the_pause(world: World, run_cli: Any) -> None:
    """`rotator status --json` says which keys are held and by whom."""
    seeded(world)
    run_cli("pause", SUB, "--reason", "freeze", "--actor", "bob")
    done = run_cli("status", "--json")
    assert done.returncode == 0, done.stderr
    holds = {row["api_key"]: row["hold"] for row in json.loads(done.stdout)}
    assert holds[SUB] is not None
    assert "bob" in holds[SUB]
