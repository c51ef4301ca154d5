"""Notifier: webhook and SMS alerts, deduplicated through the audit log (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from rotator.audit import AuditLog
from rotator.clock import utcnow
from rotator.notify import Notifier
from rotator.secret import Secret
from rotator.services import Services
from tests.conftest import PRIMARY, World
from tests.daemon.conftest import WebhookReceiver

SUB = "sub00001"
PHONE = "447700900002"
only_sqlite = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def services(world: World, webhook: WebhookReceiver) -> Services:
    world.seed_primary()
    world.configure(
        notify={"webhook_url": webhook.url, "sms": {"to": [PHONE]}, "dedup_window": "1h"}
    )
    return world.services()


@pytest.fixture
def notifier(world: World, services: Services) -> Iterator[Notifier]:
    n = Notifier(world.config, audit=services.audit, vault=services.vault, vonage=services.vonage)
    yield n
    n.close()


def new_notifier(world: World, services: Services, **kwargs: object) -> Notifier:
    return Notifier(
        world.config,
        audit=AuditLog(services.engine),
        vault=services.vault,
        vonage=services.vonage,
        **kwargs,  # type: ignore[arg-type]
    )


@only_sqlite
def test_alert_posts_slack_compatible_json(notifier: Notifier, webhook: WebhookReceiver) -> None:
    """The webhook gets a JSON body with a Slack-style ``text`` plus structured fields."""
    assert notifier.alert("rolled_back", SUB, "verification timed out", run_id="r-1")
    (body,) = webhook.bodies
    assert body["text"] == f"rotator: rolled back for {SUB}: verification timed out"
    assert (body["kind"], body["api_key"], body["run_id"]) == ("rolled_back", SUB, "r-1")


@only_sqlite
def test_alert_sends_sms_with_the_primary_credentials(world: World, notifier: Notifier) -> None:
    """Each configured number gets one SMS, sent as the primary account."""
    notifier.alert("failed", SUB, "boom")
    (sms,) = world.sim.sms_outbox
    assert (sms.to, sms.api_key, sms.sender) == (PHONE, PRIMARY, "Rotator")
    assert SUB in sms.text


@only_sqlite
def test_same_alert_within_the_window_is_sent_once(
    notifier: Notifier, webhook: WebhookReceiver
) -> None:
    """A second alert of the same kind for the same key within dedup_window is dropped."""
    assert notifier.alert("failed", SUB, "first")
    assert not notifier.alert("failed", SUB, "second")
    assert len(webhook.bodies) == 1


def test_dedup_survives_a_restart(
    world: World, services: Services, notifier: Notifier, webhook: WebhookReceiver
) -> None:
    """A new Notifier (a restarted daemon) reads the last alert from the audit log."""
    notifier.alert("failed", SUB, "before the restart")
    again = new_notifier(world, services)
    assert not again.alert("failed", SUB, "after the restart")
    assert len(webhook.bodies) == 1


@only_sqlite
def test_other_kinds_and_keys_are_not_deduplicated(
    notifier: Notifier, webhook: WebhookReceiver
) -> None:
    """Dedup is per (kind, key): a rollback after a failure, or another key, still alerts."""
    assert notifier.alert("failed", SUB, "a")
    assert notifier.alert("rolled_back", SUB, "b")
    assert notifier.alert("failed", "sub00002", "c")
    assert len(webhook.bodies) == 3


@only_sqlite
def test_alert_after_the_window_is_sent_again(
    world: World, services: Services, notifier: Notifier, webhook: WebhookReceiver
) -> None:
    """Once dedup_window has passed (clock injected), the same alert goes out again."""
    notifier.alert("failed", SUB, "first")
    later = new_notifier(world, services, clock=lambda: utcnow() + timedelta(hours=2))
    assert later.alert("failed", SUB, "still failing")
    assert len(webhook.bodies) == 2


@only_sqlite
def test_webhook_down_does_not_raise(
    world: World, services: Services, webhook: WebhookReceiver
) -> None:
    """A webhook answering 500 is logged and recorded, never raised; SMS still goes out."""
    webhook.status = 500
    notifier = new_notifier(world, services)
    assert notifier.alert("failed", SUB, "boom")  # the SMS got through
    (event,) = [e for e in services.audit.events(api_key=SUB) if e.step == "alert"]
    assert event.error is not None
    assert "HTTP 500" in event.error
    assert "SECRETPATH" not in event.error


@only_sqlite
def test_undelivered_alert_is_retried_next_time(
    world: World, services: Services, webhook: WebhookReceiver
) -> None:
    """An alert no channel took does not count for dedup: the next one is attempted."""
    world.configure(notify={"sms": {"to": []}, "webhook_url": "http://127.0.0.1:9/nowhere"})
    down = new_notifier(world, services)
    assert not down.alert("failed", SUB, "nobody hears this")
    world.configure(notify={"webhook_url": webhook.url})
    assert new_notifier(world, services).alert("failed", SUB, "now someone does")


@only_sqlite
def test_alert_masks_secret_values(notifier: Notifier, webhook: WebhookReceiver) -> None:
    """A secret value that reached a message is masked before it leaves the process."""
    leaked = Secret("Leaked1SecretValue")
    notifier.alert("emergency", SUB, f"oops {leaked.reveal()} in a message")
    assert "Leaked1SecretValue" not in str(webhook.bodies)


@only_sqlite
def test_unknown_kind_is_a_programming_error(notifier: Notifier) -> None:
    """Only failed, rolled_back and emergency exist."""
    with pytest.raises(ValueError, match="unknown alert kind"):
        notifier.alert("meh", SUB, "x")


@only_sqlite
def test_nothing_configured_sends_nothing(world: World, services: Services) -> None:
    """Without a webhook or numbers, alert() is a no-op that returns False."""
    world.configure(notify={"webhook_url": None, "sms": {"to": []}})
    assert not new_notifier(world, services).alert("failed", SUB, "x")
    assert [e for e in services.audit.events() if e.step == "alert"] == []
