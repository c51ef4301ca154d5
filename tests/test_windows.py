"""Maintenance windows, the retry cap's count and the control API's listen rule: pure maths and
config validation, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.config import Schedule, Window, parse_config
from rotator.errors import ConfigError
from rotator.scheduling import consecutive_failures, is_stuck, next_due, next_window_start

MON_10 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday
WEEKNIGHTS = Window(days=["mon", "tue", "wed", "thu"], start="22:00", end="04:00")


def test_inside_window_starts_at_once() -> None:
    """A due time inside the window is kept."""
    window = Window(days=["mon"], start="09:00", end="17:00")
    assert next_window_start(window, MON_10) == MON_10


def test_before_window_waits_for_its_start() -> None:
    """A key due before the window opens waits for the opening."""
    window = Window(days=["mon"], start="12:30", end="17:00")
    assert next_window_start(window, MON_10) == MON_10.replace(hour=12, minute=30)


def test_wrong_day_waits_for_next_listed_day() -> None:
    """A key due on a day not listed waits for the next listed day's start."""
    window = Window(days=["wed"], start="01:00", end="02:00")
    assert next_window_start(window, MON_10) == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def test_night_window_runs_past_midnight() -> None:
    """Monday's 22:00-04:00 window is still open at 03:00 on Tuesday."""
    tuesday_3am = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert next_window_start(WEEKNIGHTS, tuesday_3am) == tuesday_3am


def test_night_window_closed_after_its_end() -> None:
    """Friday 05:00 is after Thursday night's window: the next one opens Monday 22:00."""
    friday_5am = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    assert next_window_start(WEEKNIGHTS, friday_5am) == datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


def test_saturday_waits_for_monday_night() -> None:
    """Saturday noon waits for Monday 22:00."""
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert next_window_start(WEEKNIGHTS, saturday) == datetime(2026, 12, 7, 22, 0, tzinfo=UTC)


def test_next_due_honours_the_window() -> None:
    """A key due on Monday 10:00 with a Wednesday window is due on Wednesday."""
    schedule = Schedule(
        interval=timedelta(days=1), window=Window(days=["wed"], start="06:00", end="07:00")
    )
    due = next_due(
        schedule, api_key="k", last_success=MON_10 - timedelta(days=1), first_seen=MON_10
    )
    assert due == datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["25:00", "9:5", "12:60", "noon", "24:01"])
def test_window_rejects_bad_times(bad: str) -> None:
    """A hostile or mistyped window time is refused at load time."""
    data = {
        "vonage": {"primary_api_key": "abc123"},
        "rotation": {"schedule": {"interval": "1d", "window": {"start": bad, "end": "23:00"}}},
    }
    with pytest.raises(ConfigError):
        parse_config(data)


def test_consecutive_failures_stop_at_a_success() -> None:
    """Only the failures since the newest success count."""
    assert consecutive_failures(["failed", "rolled_back", "succeeded", "failed"]) == 2


def test_stuck_after_max_attempts() -> None:
    """max_attempts failures in a row make a key stuck; one fewer does not."""
    assert is_stuck(["failed"] * 3, 3)
    assert not is_stuck(["failed"] * 2, 3)


def test_control_on_public_address_needs_tls() -> None:
    """The control API may not listen beyond loopback without TLS."""
    data = {
        "vonage": {"primary_api_key": "abc123"},
        "http": {"listen": "0.0.0.0:9464", "control": {"enabled": True}},
    }
    with pytest.raises(ConfigError, match="TLS"):
        parse_config(data)


def test_control_on_loopback_without_tls_is_allowed() -> None:
    """On loopback the control API may run without TLS."""
    data = {
        "vonage": {"primary_api_key": "abc123"},
        "http": {"listen": "127.0.0.1:9464", "control": {"enabled": True}},
    }
    assert parse_config(data).http.control.enabled
