"""Crash safety: a real ``rotator rotate`` process is SIGKILLed at every step boundary, and the next
rotation of the key finishes or rolls back what it left, keeping every promise.

Each test kills two real ``python -m rotator rotate`` processes at once, one rotating the primary
and one a subaccount (which also shows that rotating the primary under a subaccount's run is safe).
They are forked from a warm interpreter (tests/forkserver.py): processes of their own, with their
own pid, lease and sockets, that skip only the imports.
The re-run is the real CLI for the PostgreSQL and rollback cases; for the full boundary matrix on
SQLite it is the same engine called in-process (``Rotator.rotate``), which keeps the matrix
affordable on two cores. Each re-run must first take over the dead process's unexpired lease.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator import db
from rotator.audit import AuditLog, Run, RunStatus
from rotator.lease import Leases
from tests import forkserver
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.forkserver import Forked
from tests.invariants import violations

SUB = "sub00001"
STEPS = ["inspect", "make_room", "generate", "stage", "create", "verify", "promote", "revoke"]
BOUNDARIES = [f"{when}:{step}" for step in STEPS for when in ("before", "after")]
# Until the POST to Vonage the killed run changed nothing there: the next run abandons it or
# drops its staged value (rolled_back). From then on its new secret exists: the next run verifies
# and promotes it, or finishes its revocation (succeeded).
NOTHING_CREATED = set(BOUNDARIES[: BOUNDARIES.index("before:create") + 1])
PAUSE_DEADLINE = 60.0
KEYS = [PRIMARY, SUB]  # each test kills a rotation of both, running at the same time
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def expected_status(boundary: str) -> RunStatus:
    return RunStatus.ROLLED_BACK if boundary in NOTHING_CREATED else RunStatus.SUCCEEDED


def rotator_argv(world: World, *args: str) -> list[str]:
    """The arguments of ``python -m rotator`` with the world's config."""
    return ["--config", str(world.config_file()), *args]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROTATOR_TEST_PAUSE")}


def start_paused(world: World, api_key: str, boundary: str) -> tuple[Forked, Path]:
    """Start ``rotator rotate api_key`` to pause at ``boundary``; returns it and its marker."""
    marker = world.tmp_path / f"paused-{time.monotonic_ns()}"
    env = {**clean_env(), "ROTATOR_TEST_PAUSE_AT": boundary, "ROTATOR_TEST_PAUSE_FILE": str(marker)}
    proc = forkserver.shared().popen(
        rotator_argv(world, "rotate", api_key),
        env=env,
        stdout=world.tmp_path / "paused.log",
        append=True,
    )
    return proc, marker


def wait_paused(proc: Forked, marker: Path, boundary: str) -> None:
    deadline = time.monotonic() + PAUSE_DEADLINE
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"rotator exited with {proc.returncode} before reaching {boundary}")
        if time.monotonic() > deadline:
            pytest.fail(f"rotator did not reach {boundary} within {PAUSE_DEADLINE:.0f}s")
        time.sleep(0.02)
    # The hook writes the file then blocks; an empty read means we caught it mid-write.
    while marker.read_text() != boundary:
        assert time.monotonic() < deadline, f"pause file does not name {boundary}"
        time.sleep(0.01)


def kill(proc: Forked) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def kill_at(world: World, keys: list[str], boundary: str) -> dict[str, int]:
    """Run ``rotator rotate`` for each key at once until ``boundary``, SIGKILL them all there;
    returns each key's dead pid. (Two processes at once also shows they do not disturb each
    other.)"""
    started = {key: start_paused(world, key, boundary) for key in keys}
    try:
        for proc, marker in started.values():
            wait_paused(proc, marker, boundary)
    finally:
        for proc, _ in started.values():
            kill(proc)
    for proc, _ in started.values():
        assert proc.returncode == -signal.SIGKILL
    return {key: proc.pid for key, (proc, _) in started.items()}


def rerun_cli(world: World, keys: list[str]) -> dict[str, tuple[int, dict[str, Any]]]:
    """``rotator rotate KEY --json`` for each key at once, no hooks: exit code and JSON per key."""
    outputs = {key: world.tmp_path / f"rerun-{key}-{time.monotonic_ns()}.out" for key in keys}
    procs = {
        key: forkserver.shared().popen(
            rotator_argv(world, "rotate", key, "--json"),
            env=clean_env(),
            stdout=outputs[key],
            stderr=outputs[key].with_suffix(".err"),
        )
        for key in keys
    }
    results = {}
    for key, proc in procs.items():
        proc.wait(timeout=120)
        out = forkserver.text(outputs[key])
        assert out.strip(), f"rotator printed no JSON for {key} (exit {proc.returncode})"
        results[key] = (proc.returncode, json.loads(out))
    return results


def rerun_in_process(world: World, keys: list[str]) -> dict[str, tuple[int, dict[str, Any]]]:
    """The same rotations through the engine in this process; shaped like ``rerun_cli``."""
    rotator = world.services().rotator
    results = {}
    for key in keys:
        outcome = rotator.rotate(key, actor="crash-test", reason="re-run")
        out = {**outcome.run.to_json(), "resumed": [r.to_json() for r in outcome.resumed]}
        results[key] = (0 if outcome.ok else 1, out)
    return results


@pytest.fixture
def audit(world: World) -> Iterator[AuditLog]:
    engine = db.make_engine(world.database_url)
    try:
        yield AuditLog(engine)
    finally:
        engine.dispose()


def seed(world: World) -> None:
    """The primary as an operator first writes it (no id); the subaccount with its id."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])


def lease_owner(audit: AuditLog, api_key: str) -> str | None:
    """Who holds the key's lease now, if it has not expired."""
    info = Leases(audit.engine, ttl=timedelta(seconds=1)).holder(api_key)
    return info.owner if info is not None and info.active else None


def first_run(audit: AuditLog, api_key: str) -> Run:
    runs = audit.runs(api_key=api_key, newest_first=False)
    assert runs, "the killed process started no run"
    return runs[0]


def assert_recovered(
    world: World,
    audit: AuditLog,
    dead: dict[str, int],
    *,
    expected: RunStatus,
    in_process: bool = False,
) -> None:
    """Re-run each key: it takes the dead holder's lease, resumes the killed run to ``expected``,
    rotates, and leaves every promise kept."""
    for key, pid in dead.items():
        owner = lease_owner(audit, key)
        assert owner is not None, f"the killed process's lease on {key} should be unexpired"
        assert owner.split(":")[1] == str(pid)
    results = (rerun_in_process if in_process else rerun_cli)(world, list(dead))
    for key, (code, out) in results.items():
        assert (key, code, out["status"]) == (key, 0, RunStatus.SUCCEEDED), out.get("error")
        killed = first_run(audit, key)
        assert [r["run_id"] for r in out["resumed"]] == [killed.id]
        assert (key, killed.status) == (key, expected), killed.error
        assert violations(world, key, audit) == []
    assert audit.verify_chain().ok


@SQLITE
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kill_at_each_boundary_is_recovered(world: World, audit: AuditLog, boundary: str) -> None:
    """Rotations killed at any step boundary are finished or rolled back by the next run."""
    seed(world)
    dead = kill_at(world, KEYS, boundary)
    assert_recovered(world, audit, dead, expected=expected_status(boundary), in_process=True)


@POSTGRES
@pytest.mark.parametrize("boundary", ["after:stage", "after:create", "after:promote"])
def test_kill_on_postgres_is_recovered_by_the_cli(
    world: World, audit: AuditLog, boundary: str
) -> None:
    """On PostgreSQL killed rotations are resumed by the next `rotator rotate` processes."""
    seed(world)
    dead = kill_at(world, KEYS, boundary)
    assert_recovered(world, audit, dead, expected=expected_status(boundary))


@SQLITE
@pytest.mark.parametrize("boundary", ["before:rollback", "after:rollback"])
def test_kill_while_rolling_back_is_recovered_by_the_cli(
    world: World, audit: AuditLog, boundary: str
) -> None:
    """Rotations killed while rolling back a failed verification end rolled back on re-run."""
    seed(world)
    world.configure(rotation={"verify_timeout": "1s"})
    world.sim.propagation_delay = 3600  # the killed runs' new secrets never authenticate
    dead = kill_at(world, KEYS, boundary)
    world.sim.propagation_delay = 0  # the re-runs' own new secrets work at once
    assert_recovered(world, audit, dead, expected=RunStatus.ROLLED_BACK)


@SQLITE
def test_kill_while_resuming_is_recovered_by_the_next_run(world: World, audit: AuditLog) -> None:
    """A process killed while resuming a killed run leaves it for the next run to finish."""
    seed(world)
    kill_at(world, [SUB], "after:create")
    second = kill_at(world, [SUB], "after:resume")
    assert len(audit.runs(api_key=SUB)) == 1, "the resuming process started no run of its own"
    assert_recovered(world, audit, second, expected=RunStatus.SUCCEEDED, in_process=True)


@SQLITE
def test_live_paused_rotation_keeps_its_lease(world: World, audit: AuditLog) -> None:
    """While a rotation's process is alive its lease holds: a second `rotate` exits 75."""
    seed(world)
    proc, marker = start_paused(world, SUB, "after:create")
    try:
        wait_paused(proc, marker, "after:create")
        done = forkserver.shared().run(
            rotator_argv(world, "rotate", SUB), env=clean_env(), timeout=120
        )
        assert done.returncode == 75
        assert "being rotated" in done.stderr
    finally:
        kill(proc)
    assert_recovered(world, audit, {SUB: proc.pid}, expected=RunStatus.SUCCEEDED, in_process=True)


@SQLITE
def test_the_subaccount_of_the_matrix_is_rotated_create_first(
    world: World, audit: AuditLog
) -> None:
    """The matrix's subaccount is a key Vault knows: its killed runs relied on Vault (no
    listing), so the matrix above covers every boundary of the create-first path."""
    seed(world)
    dead = kill_at(world, [SUB], "after:inspect")
    [inspect] = [e for e in audit.events(run_id=first_run(audit, SUB).id) if e.step == "inspect"]
    assert inspect.detail is not None
    assert inspect.detail["listed"] is False
    assert_recovered(world, audit, dead, expected=RunStatus.ROLLED_BACK, in_process=True)


@SQLITE
def test_kill_after_vonage_refused_a_create_first_post_is_recovered(
    world: World, audit: AuditLog
) -> None:
    """A create-first run killed right after Vonage refused its POST (someone filled the key)
    had dropped its staged value: the next run abandons it, lists, revokes the intruder to
    make room and rotates."""
    seed(world)
    intruder = world.sim.add_secret(SUB, "Intruder1Secret", propagated=True)
    dead = kill_at(world, [SUB], "after:create")
    state = world.vault_record(SUB, "rotator-state") or {}
    assert state.get("pending") is None
    assert_recovered(world, audit, dead, expected=RunStatus.ROLLED_BACK, in_process=True)
    assert intruder not in world.sim.secret_ids(SUB)


@pytest.mark.parametrize(
    ("database_url", "boundary"),
    [
        ("sqlite", "posted:create"),
        ("sqlite", "stored:create"),
        pytest.param("postgresql", "stored:create", marks=pytest.mark.postgres),
    ],
    indirect=["database_url"],
)
def test_kill_inside_create_before_its_event_is_recovered(
    world: World, audit: AuditLog, database_url: str, boundary: str
) -> None:
    """The create step writes the new secret's id to the run row with its own audit event, in
    one transaction (issue 12). Killed after Vonage's 201 but before that event, the run row
    names no new secret yet, with Vault's pending record naming it (``stored``) or not yet
    (``posted``): the next run still finds it (from Vault, else by listing), verifies it and
    promotes it, and the run row and its chained events agree throughout."""
    seed(world)
    dead = kill_at(world, KEYS, boundary)
    for key in KEYS:
        killed = first_run(audit, key)
        assert killed.new_secret_id is None, key
        steps = [e.step for e in audit.events(run_id=killed.id)]
        assert "create" not in steps, (key, steps)
        assert "run.update" in steps, (key, steps)  # make room's old id, with its event
        pending = (world.vault_record(key, "rotator-state") or {}).get("pending") or {}
        created = set(world.sim.secret_ids(key)) - {killed.old_secret_id}
        assert len(created) == 1, key
        assert pending.get("secret_id") == (created.pop() if boundary == "stored:create" else None)
    assert audit.verify_chain().ok
    sqlite = database_url.startswith("sqlite")
    assert_recovered(world, audit, dead, expected=RunStatus.SUCCEEDED, in_process=sqlite)


@SQLITE
def test_kill_between_promote_and_revoke_leaves_the_pending_copy_for_resume(
    world: World, audit: AuditLog
) -> None:
    """A run that revokes at once drops the pending copy with the revoke step's Vault write,
    not at promote (issue 12: one write less). Killed in between, Vault's pending copy is the
    current secret itself; the next run resumes a finished promotion, drops it, and revokes."""
    seed(world)
    dead = kill_at(world, [SUB], "after:promote")
    current = world.vault_record(SUB) or {}
    state = world.vault_record(SUB, "rotator-state") or {}
    assert state["pending"]["secret_id"] == current["secret_id"]
    assert state["previous"]["secret_id"] == first_run(audit, SUB).old_secret_id
    assert_recovered(world, audit, dead, expected=RunStatus.SUCCEEDED, in_process=True)
    state = world.vault_record(SUB, "rotator-state") or {}
    assert state.get("pending") is None
    assert state.get("previous") is None
