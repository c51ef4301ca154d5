"""Pauses, windows and the retry cap obeyed by two `rotator run` replicas on one PostgreSQL.

One session: A and B run with a 3 s schedule. A free key (the marker) shows time passing by its
rotations. Mid-session an operator pauses SUB1 (from a third process: the database); SUB2's
secret creation always fails (max_attempts 2); WIN may start only in a window hours away.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import hvac
import pytest

from rotator import db
from rotator.audit import AuditLog, RunStatus
from rotator.clock import utcnow
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.simulator import Fault
from rotator.holds import Holds
from tests.conftest import World
from tests.daemon.conftest import (
    DaemonProcess,
    WebhookReceiver,
    add_subaccounts,
    own_world,
    runs_of,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.postgres

SUB1, SUB2 = "sub00001", "sub00002"


@dataclass
class Session:
    world: World
    audit: AuditLog
    holds: Holds
    marker: str
    win: str
    window_start: datetime
    paused_at: datetime
    webhook: WebhookReceiver
    a: DaemonProcess
    b: DaemonProcess

    def marker_runs_after(self, moment: datetime) -> int:
        return len(
            [r for r in runs_of(self.audit, self.marker, "succeeded") if r.started_at > moment]
        )


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("holds")
    opens = (utcnow() + timedelta(hours=6)).replace(second=0, microsecond=0)
    window = {"start": f"{opens:%H:%M}", "end": f"{opens + timedelta(minutes=1):%H:%M}"}
    webhook = WebhookReceiver()
    with own_world(openbao, vault_admin, tmp) as world:
        marker, win = add_subaccounts(world.sim, 2)
        world.configure(
            rotation={"max_attempts": 2, "retry_delay": "1s"},
            accounts={
                "overrides": [{"api_key": win, "schedule": {"interval": "3s", "window": window}}]
            },
            notify={"webhook_url": webhook.url},
        )
        world.seed_primary()
        world.sim.inject(
            Fault(action="status", status=403, method="POST", path=f"*/{SUB2}/secrets", times=None)
        )
        engine = db.make_engine(world.database_url)
        db.upgrade(engine)
        audit = AuditLog(engine)
        holds = Holds(engine, audit)
        a, b = start_daemon(world, "a"), start_daemon(world, "b")
        try:
            a.wait_running()
            b.wait_running()
            wait_for(lambda: runs_of(audit, SUB1, "succeeded"), what="SUB1 rotated once")
            paused = holds.pause(SUB1, until=None, reason="change freeze", actor="carol")
            s = Session(world, audit, holds, marker, win, opens, paused.since, webhook, a, b)
            wait_for(
                lambda: [b for b in webhook.bodies if b["kind"] == "stuck"],
                timeout=60,
                what="the stuck alert",
            )
            stuck_seen = utcnow()
            wait_for(lambda: s.marker_runs_after(stuck_seen) >= 3, timeout=60, what="3 more runs")
            yield s
        finally:
            a.close()
            b.close()
            engine.dispose()
            webhook.close()


def test_paused_key_does_not_rotate_on_either_replica(session: Session) -> None:
    """No run of the paused key starts after the pause, while the marker kept rotating."""
    late = [r for r in runs_of(session.audit, SUB1) if r.started_at > session.paused_at]
    assert late == []


def test_paused_key_is_shown_on_status(session: Session) -> None:
    """/status of each replica names the pause and who set it."""
    for process in (session.a, session.b):
        keys = {k["api_key"]: k for k in process.status()["keys"]}
        assert "carol" in (keys[SUB1].get("paused") or "")


def test_stuck_key_stops_after_max_attempts(session: Session) -> None:
    """After max_attempts failed runs, neither replica tries the key again."""
    runs = runs_of(session.audit, SUB2)
    assert [str(r.status) in ("failed", "rolled_back") for r in runs] == [True, True]


def test_stuck_key_is_alerted_once(session: Session) -> None:
    """Two replicas, one stuck alert."""
    assert len([b for b in session.webhook.bodies if b["kind"] == "stuck"]) == 1


def test_stuck_alert_says_what_to_do(session: Session) -> None:
    """The stuck alert names the command that clears it."""
    (alert,) = [b for b in session.webhook.bodies if b["kind"] == "stuck"]
    assert f"rotator resume {SUB2}" in alert["message"]


def test_key_outside_its_window_waits(session: Session) -> None:
    """The windowed key never started, and both replicas say it is due at the window."""
    assert runs_of(session.audit, session.win) == []
    for process in (session.a, session.b):
        keys = {k["api_key"]: k for k in process.status()["keys"]}
        assert keys[session.win]["next_due"].startswith(f"{session.window_start:%Y-%m-%dT%H:%M}")


def test_resume_lets_both_keys_rotate_again(session: Session) -> None:
    """After `resume --all` (and the fault fixed) the paused and the stuck key rotate."""
    session.world.sim.clear_faults()
    session.holds.resume(None, actor="carol")
    wait_for(
        lambda: [
            r for r in runs_of(session.audit, SUB1, "succeeded") if r.started_at > session.paused_at
        ],
        what="SUB1 rotated after resume",
    )
    wait_for(lambda: runs_of(session.audit, SUB2, RunStatus.SUCCEEDED), what="SUB2 rotated")
