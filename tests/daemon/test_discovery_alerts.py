"""Discovery and alerts in a running daemon: sub00001 keeps failing (Vonage refuses to list its
secrets), a subaccount appears, another is suspended. One session; each test asserts one thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import pytest

from rotator.audit import AuditLog, Event, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.simulator import Fault
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World
from tests.daemon.conftest import (
    DaemonProcess,
    WebhookReceiver,
    open_audit,
    own_world,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.postgres
FAILING, SUSPENDED, NEW = "sub00001", "sub00002", "sub00003"
NEW_SECRET = "Sub3Secret03"
PHONE = "447700900001"


@dataclass
class Session:
    world: World
    audit: AuditLog
    daemon: DaemonProcess
    webhook: WebhookReceiver
    exit_code: int

    def events(self, step: str, api_key: str | None = None) -> list[Event]:
        return [
            e
            for e in self.audit.events(api_key=api_key)
            if e.step == step and (api_key is None or e.api_key == api_key)
        ]


@pytest.fixture(scope="module")
def session(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Session]:
    webhook = WebhookReceiver()
    with own_world(
        openbao,
        vault_admin,
        tmp_path_factory.mktemp("discovery"),
        rotation={"schedule": {"interval": "2s", "jitter": "0s"}},
        notify={
            "webhook_url": webhook.url,
            "sms": {"from": "Rotator", "to": [PHONE]},
            "dedup_window": "1h",
        },
    ) as world:
        world.seed_primary()
        world.sim.inject(
            Fault(
                action="status",
                status=403,
                method="GET",
                path=f"/accounts/{FAILING}/secrets",
                times=None,
            )
        )
        audit = open_audit(world)
        daemon = start_daemon(world)
        try:
            wait_for(
                lambda: len(audit.runs(api_key=FAILING, statuses=[RunStatus.FAILED])) >= 2,
                what="two failed runs of the failing key",
            )
            world.sim.add_subaccount(NEW, NEW_SECRET, name="Dept 3")
            wait_for(
                lambda: audit.runs(api_key=NEW, statuses=[RunStatus.SUCCEEDED]),
                what="the new subaccount to be rotated",
            )
            world.sim.set_suspended(SUSPENDED, True)
            wait_for(
                lambda: SUSPENDED not in {k["api_key"] for k in daemon.status()["keys"]},
                what="the suspended subaccount to be dropped",
            )
            yield Session(world, audit, daemon, webhook, daemon.terminate())
        finally:
            daemon.close()
            webhook.close()
            audit.engine.dispose()


def test_failing_key_alerts_the_webhook_once(session: Session) -> None:
    """Repeated failures of one key within the dedup window make a single webhook call."""
    bodies = [b for b in session.webhook.bodies if b["api_key"] == FAILING]
    assert len(bodies) == 1
    assert bodies[0]["kind"] == "failed"
    assert FAILING in bodies[0]["text"]
    assert bodies[0]["run_id"]


def test_failing_key_alerts_by_sms_once(session: Session) -> None:
    """The same failures send one SMS, from the configured sender, with the primary's key."""
    sms = [m for m in session.world.sim.sms_outbox if FAILING in m.text]
    assert len(sms) == 1
    assert (sms[0].to, sms[0].sender, sms[0].api_key) == (PHONE, "Rotator", PRIMARY)


def test_alerts_are_recorded_in_the_audit_log(session: Session) -> None:
    """The alert sent is an audit event naming its channels (what dedup reads after a restart)."""
    alerts = session.events("alert", FAILING)
    assert [a.outcome for a in alerts] == ["failed"]
    assert alerts[0].detail is not None
    assert sorted(alerts[0].detail["channels"]) == ["sms:1", "webhook"]


def test_alerts_hold_no_secret(session: Session) -> None:
    """No secret value is in a webhook body or SMS, and the webhook URL's path is not logged."""
    secrets = [PRIMARY_SECRET, *SUBACCOUNTS.values(), NEW_SECRET]
    for key in (PRIMARY, NEW):
        record = session.world.vault_record(key)
        assert record is not None
        secrets.append(record["api_secret"])
    sent = str(session.webhook.bodies) + str([m.text for m in session.world.sim.sms_outbox])
    assert not [s for s in secrets if s in sent]
    assert "SECRETPATH" not in session.daemon.output()


def test_new_subaccount_is_discovered_and_rotated(session: Session) -> None:
    """A subaccount created while the daemon runs is recorded as added and gets rotated."""
    assert [e.outcome for e in session.events("discovery", NEW)] == ["added"]
    assert session.audit.runs(api_key=NEW, statuses=[RunStatus.SUCCEEDED])


def test_suspended_subaccount_is_dropped(session: Session) -> None:
    """A suspended subaccount is recorded as removed and no run of it starts afterwards."""
    events = session.events("discovery", SUSPENDED)
    assert [e.outcome for e in events] == ["added", "removed"]
    removed_at = events[-1].finished_at
    later = [r for r in session.audit.runs(api_key=SUSPENDED) if r.started_at > removed_at]
    assert later == []


def test_start_records_the_initial_keys_once(session: Session) -> None:
    """The first discovery records each key found as added, exactly once."""
    for key in (PRIMARY, FAILING):
        assert [e.outcome for e in session.events("discovery", key)] == ["added"]


def test_daemon_exits_0(session: Session) -> None:
    """Failures of a key do not stop the daemon; SIGTERM does, cleanly."""
    assert session.exit_code == 0
