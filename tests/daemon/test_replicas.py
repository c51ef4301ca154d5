"""Replicas: two `rotator run` processes sharing one PostgreSQL over 13 due keys.

A runs freely. B runs with the test hook ``after:create``: it freezes after creating each new
secret, and the test lets it go on (by deleting the hook's file) until B has done its share; then
the test leaves B frozen mid-run and SIGKILLs it there. A must rotate every key, never overlap B on
a key, and finish what B left behind. One session (module fixture); each test asserts one thing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import pytest

from rotator.audit import AuditLog, Run, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import (
    DaemonProcess,
    add_subaccounts,
    open_audit,
    own_world,
    start_daemon,
    wait_for,
)
from tests.invariants import violations

pytestmark = pytest.mark.postgres


@dataclass
class Session:
    world: World
    audit: AuditLog
    keys: list[str]
    a: DaemonProcess
    b: DaemonProcess
    exit_code: int

    def owned_by(self, process: DaemonProcess) -> list[Run]:
        return [r for r in self.audit.runs() if r.owner.split(":")[1] == str(process.pid)]


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("replicas")
    with own_world(
        openbao,
        vault_admin,
        tmp,
        rotation={"schedule": {"interval": "2s", "jitter": "0s"}, "lease_ttl": "3s"},
    ) as world:
        keys = [PRIMARY, *SUBACCOUNTS, *add_subaccounts(world.sim, 10)]
        world.seed_primary()
        audit = open_audit(world)
        pause = tmp / "paused"
        a = start_daemon(world, "a")
        b = start_daemon(
            world,
            "b",
            env={"ROTATOR_TEST_PAUSE_AT": "after:create", "ROTATOR_TEST_PAUSE_FILE": str(pause)},
        )
        s = Session(world, audit, keys, a, b, exit_code=-1)
        try:

            def b_has_done_its_share() -> bool:
                pause.unlink(missing_ok=True)  # let every frozen thread of B go on
                return len([r for r in s.owned_by(b) if r.status == RunStatus.SUCCEEDED]) >= 2

            wait_for(b_has_done_its_share, what="B to complete two rotations")
            wait_for(pause.exists, what="B to freeze after creating a secret")
            b.kill()

            def all_done() -> bool:
                runs = audit.runs()
                rotated = {r.api_key for r in runs if r.status == RunStatus.SUCCEEDED}
                left = [r for r in s.owned_by(b) if r.status == RunStatus.RUNNING]
                return rotated >= set(keys) and not left

            wait_for(all_done, what="every key rotated and B's runs finished")
            s.exit_code = a.terminate()
            yield s
        finally:
            for process in (a, b):
                process.close()
            audit.engine.dispose()


def test_every_key_is_rotated(session: Session) -> None:
    """All 13 keys (the primary and 12 subaccounts) were rotated successfully."""
    for key in session.keys:
        assert session.audit.runs(api_key=key, statuses=[RunStatus.SUCCEEDED]), key


def test_both_replicas_share_the_work(session: Session) -> None:
    """A and B each completed rotations: the keys were shared, not owned by one process."""
    for process in (session.a, session.b):
        assert any(r.status == RunStatus.SUCCEEDED for r in session.owned_by(process))


def test_runs_of_one_key_never_overlap(session: Session) -> None:
    """Per key, the [started_at, finished_at] of all runs, by any process, are disjoint."""
    for key in session.keys:
        runs = sorted(session.audit.runs(api_key=key), key=lambda r: r.started_at)
        for earlier, later in itertools.pairwise(runs):
            assert earlier.finished_at is not None
            assert earlier.finished_at <= later.started_at, (key, earlier.id, later.id)


def test_the_killed_replicas_runs_are_taken_over(session: Session) -> None:
    """B died after creating a secret; A resumed each run B left open to an end."""
    interrupted = [
        run
        for run in session.owned_by(session.b)
        if "resume" in [e.step for e in session.audit.events(run_id=run.id)]
    ]
    assert interrupted, "B was killed with a run open"
    for run in interrupted:
        assert run.status in {RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK}
    assert any(r.status == RunStatus.SUCCEEDED and r.new_secret_id for r in interrupted), (
        "the run frozen after create was completed, not thrown away"
    )


def test_the_survivor_exits_0_on_sigterm(session: Session) -> None:
    """A stops cleanly after taking over."""
    assert session.exit_code == 0


def test_every_key_keeps_its_promises(session: Session) -> None:
    """One working secret per key, current in Vault, every secret's value held; no open run."""
    for key in session.keys:
        assert violations(session.world, key, session.audit) == []


def test_contention_is_not_an_error(session: Session) -> None:
    """Replicas racing for the same keys log no errors and no run fails because of it."""
    for process in (session.a,):
        assert [e for e in process.events() if e.get("level") == "error"] == []
    failed = session.audit.runs(statuses=[RunStatus.FAILED])
    assert failed == []
