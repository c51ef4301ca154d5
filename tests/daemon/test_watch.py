"""Drift watch against the real OpenBao and the simulator: an attacker's secret appears on a
key that rotator rotated; the daemon finds it within one watch interval, records and alerts it,
and with ``watch.on_drift: emergency`` revokes it while applications keep a working secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rotator.audit import AuditLog, RunStatus
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import DaemonProcess, WebhookReceiver, runs_of, wait_for

pytestmark = pytest.mark.postgres

SUB = next(iter(SUBACCOUNTS))
ATTACKER = "Attacker0Secret9"
SETTLED = {"schedule": {"interval": "1h", "jitter": "0s"}}  # rotate once at start, then wait


def _rotated_once(audit: AuditLog) -> bool:
    keys = [PRIMARY, *SUBACCOUNTS]
    return all(runs_of(audit, k, RunStatus.SUCCEEDED) for k in keys)


def _drift_events(audit: AuditLog) -> list[object]:
    return [e for e in audit.events(api_key=SUB) if e.step == "drift"]


def _start(
    pg_world: World, daemons: Callable[..., DaemonProcess], webhook: WebhookReceiver, action: str
) -> None:
    pg_world.seed_primary()
    pg_world.configure(
        rotation=SETTLED,
        watch={"interval": "2s", "on_drift": action},
        notify={"webhook_url": webhook.url},
    )
    daemons(pg_world).wait_running()


def test_attackers_secret_is_found_and_alerted(
    pg_world: World,
    daemons: Callable[..., DaemonProcess],
    webhook: WebhookReceiver,
    audit_log: AuditLog,
) -> None:
    """A secret added behind rotator's back is recorded as drift and alerted."""
    _start(pg_world, daemons, webhook, "alert")
    wait_for(lambda: _rotated_once(audit_log), what="every key rotated once")
    evil = pg_world.sim.add_secret(SUB, ATTACKER)
    (event,) = wait_for(lambda: _drift_events(audit_log), what="a drift event")
    assert event.detail == {"unknown": [evil], "vanished": None, "action": "alert"}
    alert = wait_for(
        lambda: [b for b in webhook.bodies if b["kind"] == "drift"], what="a drift alert"
    )
    assert alert[0]["api_key"] == SUB
    assert evil in alert[0]["message"]


def test_alert_mode_leaves_the_secret(
    pg_world: World,
    daemons: Callable[..., DaemonProcess],
    webhook: WebhookReceiver,
    audit_log: AuditLog,
) -> None:
    """With on_drift: alert, no rotation follows the drift (a person decides)."""
    _start(pg_world, daemons, webhook, "alert")
    wait_for(lambda: _rotated_once(audit_log), what="every key rotated once")
    pg_world.sim.add_secret(SUB, ATTACKER)
    wait_for(lambda: _drift_events(audit_log), what="a drift event")
    assert pg_world.sim.authenticates(SUB, ATTACKER)
    assert not [r for r in runs_of(audit_log, SUB) if r.emergency]


def test_emergency_mode_revokes_the_attackers_secret(
    pg_world: World,
    daemons: Callable[..., DaemonProcess],
    webhook: WebhookReceiver,
    audit_log: AuditLog,
) -> None:
    """With on_drift: emergency, the key is rotated at once and the attacker's secret dies,
    while the secret applications read from Vault keeps working."""
    _start(pg_world, daemons, webhook, "emergency")
    wait_for(lambda: _rotated_once(audit_log), what="every key rotated once")
    pg_world.sim.add_secret(SUB, ATTACKER)
    wait_for(lambda: not pg_world.sim.authenticates(SUB, ATTACKER), what="the secret revoked")
    emergency = [r for r in runs_of(audit_log, SUB) if r.emergency]
    assert emergency
    assert emergency[0].reason
    assert "drift" in emergency[0].reason
    assert pg_world.current_authenticates(SUB)
