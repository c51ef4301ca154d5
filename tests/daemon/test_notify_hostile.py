"""Alerts played by an attacker (issue 11 items 4, 5, 12): Slack markup and control characters in
what an alert says, a secret value in its message, credentials and a token in the webhook URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from rotator.devtools.devserver import free_port
from rotator.notify import Notifier
from rotator.secret import MASK, Secret
from rotator.services import Services
from tests.conftest import World
from tests.daemon.conftest import WebhookReceiver

SUB = "sub00001"
PHONE = "447700900002"
URL_SECRETS = ("alice", "Hunter2Pass", "SECRETPATH", "QueryToken1")


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: these tests are about what an alert says."""
    return sqlite_url


def notifier_for(world: World, webhook_url: str, **sms: object) -> tuple[Notifier, Services]:
    world.seed_primary()
    world.configure(notify={"webhook_url": webhook_url, "sms": sms, "dedup_window": "1h"})
    services = world.services()
    notifier = Notifier(
        world.config, audit=services.audit, vault=services.vault, vonage=services.vonage
    )
    return notifier, services


def with_credentials(url: str, port: int | None = None) -> str:
    """``url`` with userinfo and a token in the query string, as an operator might paste it."""
    parts = urlsplit(url)
    netloc = f"alice:Hunter2Pass@{parts.hostname}:{port or parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "token=QueryToken1", ""))


@pytest.mark.parametrize("failure", ["http-500", "unreachable"])
def test_a_failing_webhook_stores_no_url_credentials_path_or_query(
    world: World, webhook: WebhookReceiver, failure: str
) -> None:
    """The error recorded for a failed webhook names scheme and host only."""
    webhook.status = 500
    port = free_port() if failure == "unreachable" else None
    notifier, services = notifier_for(world, with_credentials(webhook.url, port))
    try:
        assert not notifier.alert("failed", SUB, "boom")
    finally:
        notifier.close()
    (event,) = [e for e in services.audit.events(api_key=SUB) if e.step == "alert"]
    stored = f"{event.error} {event.detail}"
    assert "127.0.0.1" in stored
    assert [s for s in URL_SECRETS if s in stored] == []


def test_slack_text_cannot_mention_link_or_format(world: World, webhook: WebhookReceiver) -> None:
    """An alert whose message carries <!channel>, a link and *bold* reaches Slack escaped."""
    notifier, _ = notifier_for(world, webhook.url)
    try:
        assert notifier.alert("failed", SUB, "<!channel> <http://evil.example|login> *now* & ~x~")
    finally:
        notifier.close()
    (body,) = webhook.bodies
    text = body["text"]
    assert "<" not in text
    assert ">" not in text
    assert "&lt;!channel&gt;" in text
    assert "&amp;" in text
    assert "*now*" not in text


def test_sms_text_has_no_control_characters(world: World, webhook: WebhookReceiver) -> None:
    """An ANSI escape in an alert's message reaches the SMS as visible text."""
    notifier, _ = notifier_for(world, webhook.url, to=[PHONE])
    try:
        notifier.alert("failed", SUB, "\x1b[2J\x1b[31mred\r\nfake line")
    finally:
        notifier.close()
    (sms,) = world.sim.sms_outbox
    assert not [c for c in sms.text if ord(c) < 32 or ord(c) == 127]
    assert "\\x1b[2J" in sms.text


def test_a_secret_value_in_an_alert_message_is_masked_everywhere(
    world: World, webhook: WebhookReceiver
) -> None:
    """A known secret value in the message is masked in the webhook body and the audit event."""
    leaked = Secret("Alert1LeakedValue").reveal()
    notifier, services = notifier_for(world, webhook.url)
    try:
        notifier.alert("failed", SUB, f"Vonage said {leaked}")
    finally:
        notifier.close()
    (body,) = webhook.bodies
    (event,) = [e for e in services.audit.events(api_key=SUB) if e.step == "alert"]
    assert leaked not in f"{body} {event.detail} {event.error}"
    assert MASK in body["message"]
