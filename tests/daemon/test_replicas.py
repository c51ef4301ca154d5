"""Replicas: `rotator run` processes sharing one PostgreSQL over 13 due keys.

Two daemons (A, B) run side by side; a third (C) freezes in the middle of a rotation (test hook
after:create) and is SIGKILLed there. The survivors must rotate every key, never overlap on a key,
and finish what C left behind. One session (module fixture); each test asserts one thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest

from rotator.audit import AuditLog, Run, RunStatus
from rotator.devserver import OpenBaoDevServer
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
    c: DaemonProcess
    exit_codes: tuple[int, int]

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
        b = start_daemon(world, "b")
        c = start_daemon(
            world,
            "c",
            env={"ROTATOR_TEST_PAUSE_AT": "after:create", "ROTATOR_TEST_PAUSE_FILE": str(pause)},
        )
        try:
            wait_for(Path.exists.__get__(pause), what="C to freeze after creating a secret")
            c.kill()

            def done() -> bool:
                runs = audit.runs()
                return (
                    all(
                        sum(r.api_key == k and r.status == RunStatus.SUCCEEDED for r in runs) >= 2
                        for k in keys
                    )
                    and not any(r.status == RunStatus.RUNNING for r in runs)
                    and {r.owner.split(":")[1] for r in runs} >= {str(a.pid), str(b.pid)}
                )

            wait_for(done, timeout=40, what="every key rotated twice and C's runs finished")
            b.proc.send_signal(15)
            codes = (a.terminate(), b.wait())
            yield Session(world, audit, keys, a, b, c, codes)
        finally:
            for process in (a, b, c):
                process.close()
            audit.engine.dispose()


def test_every_key_is_rotated(session: Session) -> None:
    """All 13 keys (primary and 12 subaccounts) were rotated successfully, twice or more."""
    for key in session.keys:
        assert len(session.audit.runs(api_key=key, statuses=[RunStatus.SUCCEEDED])) >= 2, key


def test_both_replicas_share_the_work(session: Session) -> None:
    """A and B each completed rotations: the keys are shared, not owned by one process."""
    for process in (session.a, session.b):
        assert any(r.status == RunStatus.SUCCEEDED for r in session.owned_by(process))


def test_runs_of_one_key_never_overlap(session: Session) -> None:
    """Per key, the [started_at, finished_at] intervals of all runs, by any process, are disjoint."""
    for key in session.keys:
        runs = sorted(session.audit.runs(api_key=key), key=lambda r: r.started_at)
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert earlier.finished_at is not None
            assert earlier.finished_at <= later.started_at, (key, earlier.id, later.id)


def test_the_killed_replicas_runs_are_taken_over(session: Session) -> None:
    """C died after creating a secret; a survivor resumed each of its runs to an end."""
    killed = session.owned_by(session.c)
    assert killed, "C started at least one run before it froze"
    for run in killed:
        assert run.status in {RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK}
        steps = [e.step for e in session.audit.events(run_id=run.id)]
        assert "resume" in steps


def test_survivors_exit_0_on_sigterm(session: Session) -> None:
    """Both surviving replicas stop cleanly."""
    assert session.exit_codes == (0, 0)


def test_every_key_keeps_its_promises(session: Session) -> None:
    """One working secret per key, current in Vault, every secret's value held; no open run."""
    for key in session.keys:
        assert violations(session.world, key, session.audit) == []


def test_contention_is_not_an_error(session: Session) -> None:
    """Replicas racing for the same keys log no errors and no run fails because of it."""
    for process in (session.a, session.b):
        assert [e for e in process.events() if e.get("level") == "error"] == []
    failed = session.audit.runs(statuses=[RunStatus.FAILED])
    assert failed == []
