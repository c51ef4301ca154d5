"""/status tells which keys are postponed by a grace period, and until when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.daemon.registry import Facts, KeyRegistry
from rotator.discovery import Account
from rotator.httpserver import render_html, status_json
from rotator.snapshot import Phase, StatusSnapshot
from rotator.statuspage.text import countdown, esc

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def snapshot(until: datetime) -> StatusSnapshot:
    keys = KeyRegistry()
    keys.replace([Account(api_key="sub00001", primary=False)], NOW)
    keys.apply("sub00001", Facts(due=until, last_success=None, last_run=None, secret_since=None))
    keys.note_grace("sub00001", until)
    return StatusSnapshot(
        version="t", phase=Phase.RUNNING, owner=None, generated_at=NOW,
        keys=keys.statuses(NOW, {}),
    )  # fmt: skip


def test_status_json_names_the_end_of_the_grace() -> None:
    """The key's JSON carries grace_until while the grace runs."""
    until = NOW + timedelta(minutes=10)
    assert status_json(snapshot(until))["keys"][0]["grace_until"] == "2026-01-01T00:10:00+00:00"


def test_status_page_says_the_key_is_postponed() -> None:
    """The HTML row shows the countdown to the end of the grace period."""
    until = NOW + timedelta(minutes=10)
    assert esc(countdown(until, NOW)) in render_html(snapshot(until))


def test_an_ended_grace_is_not_shown() -> None:
    """A grace period already over postpones nothing."""
    assert status_json(snapshot(NOW - timedelta(minutes=1)))["keys"][0]["grace_until"] is None
