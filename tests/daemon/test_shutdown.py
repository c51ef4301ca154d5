"""Graceful shutdown: SIGTERM while a rotation is in flight (frozen by the test hook just after
Vonage created the new secret). The daemon must start nothing new, let the run finish, exit 0."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import pytest

from rotator.audit import AuditLog, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import DaemonProcess, open_audit, own_world, start_daemon, wait_for
from tests.invariants import violations

pytestmark = pytest.mark.postgres


@dataclass
class Session:
    world: World
    audit: AuditLog
    daemon: DaemonProcess
    alive_while_draining: bool
    exit_code: int


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("shutdown")
    with own_world(
        openbao, vault_admin, tmp, rotation={"schedule": {"interval": "1h", "jitter": "0s"}}
    ) as world:
        world.seed_primary()
        audit = open_audit(world)
        pause = tmp / "paused"
        daemon = start_daemon(
            world,
            env={"ROTATOR_TEST_PAUSE_AT": "after:create", "ROTATOR_TEST_PAUSE_FILE": str(pause)},
        )
        try:
            wait_for(pause.exists, what="a rotation to freeze after create")
            daemon.proc.send_signal(15)
            wait_for(lambda: daemon.event("stop_requested"), what="the daemon to see SIGTERM")
            alive = daemon.proc.poll() is None

            def released_and_exited() -> bool:
                pause.unlink(missing_ok=True)  # let every frozen rotation go on
                return daemon.proc.poll() is not None

            wait_for(released_and_exited, what="the daemon to exit")
            yield Session(world, audit, daemon, alive, daemon.wait())
        finally:
            daemon.close()
            audit.engine.dispose()


def test_daemon_waits_for_the_rotation_in_flight(session: Session) -> None:
    """After SIGTERM the process stays up while a rotation is still running."""
    assert session.alive_while_draining


def test_run_in_flight_completes(session: Session) -> None:
    """The frozen runs, released after SIGTERM, finish successfully: nothing is left half-done."""
    runs = session.audit.runs()
    assert runs
    assert {r.status for r in runs} == {RunStatus.SUCCEEDED}
    for key in SUBACCOUNTS:
        assert violations(session.world, key, session.audit) == []


def test_no_rotation_starts_after_sigterm(session: Session) -> None:
    """The primary (waiting for the subaccounts) is not started once the daemon is stopping."""
    assert session.audit.runs(api_key=PRIMARY) == []


def test_exit_code_is_0(session: Session) -> None:
    """A graceful stop exits 0."""
    assert session.exit_code == 0
