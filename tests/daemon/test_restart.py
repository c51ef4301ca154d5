"""Restarts: the schedule and the deferred revocations live in the database, so a restart neither
re-rotates keys rotated recently, nor forgets a key that is overdue, nor a pending revocation.

Session: a daemon with a 1-hour interval (and a 6-second grace period for sub00002) rotates every
key once and is stopped before that grace period ends; the operator gives sub00001 a 1-second
interval (its last success is now older than its interval) and starts the daemon again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import hvac
import pytest

from rotator.audit import AuditLog, Run, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import DaemonProcess, open_audit, own_world, start_daemon, wait_for

pytestmark = pytest.mark.postgres
OVERDUE, GRACE = "sub00001", "sub00002"
KEYS = [PRIMARY, *SUBACCOUNTS]
DONE = [RunStatus.SUCCEEDED, RunStatus.AWAITING_REVOKE]


@dataclass
class Session:
    world: World
    audit: AuditLog
    first: DaemonProcess
    second: DaemonProcess
    runs_before: dict[str, int]
    runs_after: dict[str, int]
    grace_run_at_first_exit: Run
    old_secret_id: str
    status: dict[str, Any]
    exit_codes: tuple[int, int]


def count(audit: AuditLog, key: str) -> int:
    return len(audit.runs(api_key=key))


def rotated(audit: AuditLog, key: str) -> int:
    return len(audit.runs(api_key=key, statuses=DONE))


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    with own_world(
        openbao,
        vault_admin,
        tmp_path_factory.mktemp("restart"),
        rotation={"schedule": {"interval": "1h", "jitter": "0s"}},
        accounts={"overrides": [{"api_key": GRACE, "grace_period": "6s"}]},
    ) as world:
        world.seed_primary()
        old_secret_id = world.sim.secret_ids(GRACE)[0]
        audit = open_audit(world)
        first = start_daemon(world, "first")
        second: DaemonProcess | None = None
        try:
            wait_for(lambda: all(rotated(audit, k) for k in KEYS), what="a rotation each")
            first_code = first.terminate()
            (grace_run,) = audit.runs(api_key=GRACE)
            before = {k: count(audit, k) for k in KEYS}
            world.configure(
                accounts={
                    "overrides": [
                        {"api_key": GRACE, "grace_period": "6s"},
                        {"api_key": OVERDUE, "schedule": {"interval": "1s"}},
                    ]
                }
            )
            second = start_daemon(world, "second")
            # Twice: the second daemon is then well past its start, when every due key fires.
            wait_for(lambda: rotated(audit, OVERDUE) >= before[OVERDUE] + 2, what="the overdue key")
            wait_for(
                lambda: audit.runs(api_key=GRACE, statuses=[RunStatus.SUCCEEDED]),
                what="the deferred revocation",
            )
            status = second.wait_running()
            codes = (first_code, second.terminate())
            after = {k: count(audit, k) for k in KEYS}
            yield Session(
                world, audit, first, second, before, after, grace_run, old_secret_id, status, codes
            )
        finally:
            for process in (first, second):
                if process is not None:
                    process.close()
            audit.engine.dispose()


def test_restart_does_not_rotate_recent_keys_again(session: Session) -> None:
    """Keys rotated moments before by the first daemon get no new run from the second."""
    for key in (PRIMARY, GRACE):
        assert session.runs_after[key] == session.runs_before[key], key


def test_overdue_key_is_rotated_at_once_after_restart(session: Session) -> None:
    """A key whose last success is older than its interval is rotated by the restarted daemon."""
    runs = session.audit.runs(api_key=OVERDUE, statuses=[RunStatus.SUCCEEDED])
    newest = max(runs, key=lambda r: r.started_at)
    assert newest.owner.split(":")[1] == str(session.second.pid)
    assert newest.trigger == "scheduled"


def test_next_due_counts_from_the_last_success(session: Session) -> None:
    """The restarted daemon schedules the primary one interval after its last success."""
    row = next(k for k in session.status["keys"] if k["api_key"] == PRIMARY)
    last = session.audit.last_success(PRIMARY)
    assert last is not None
    due = datetime.fromisoformat(row["next_due"])
    assert abs(due - (last + timedelta(hours=1))) < timedelta(seconds=1)


def test_grace_period_revocation_survives_the_restart(session: Session) -> None:
    """The first daemon left the old secret for the grace period; the second revoked it, late
    enough, from what the database recorded."""
    run = session.grace_run_at_first_exit
    assert run.status == RunStatus.AWAITING_REVOKE
    assert run.revoke_after is not None
    revokes = [e for e in session.audit.events(run_id=run.id) if e.step == "revoke"]
    assert [e.outcome for e in revokes] == ["deferred", "ok"]
    assert revokes[-1].started_at >= run.revoke_after
    assert session.audit.get_run(run.id).status == RunStatus.SUCCEEDED
    assert session.old_secret_id not in session.world.sim.secret_ids(GRACE)


def test_both_daemons_exit_0(session: Session) -> None:
    """Each daemon stops cleanly on SIGTERM."""
    assert session.exit_codes == (0, 0)
