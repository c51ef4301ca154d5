"""The pure schedule maths: due times, jitter, cron, selection and start order (no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rotator.config import Schedule, parse_config
from rotator.cron import cron_trigger
from rotator.scheduling import (
    jitter_offset,
    max_secret_age,
    may_start,
    next_due,
    run_order,
    selected,
)

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
PRIMARY = "abcd1234"


def every(interval: timedelta, jitter: timedelta = timedelta(0)) -> Schedule:
    return Schedule(interval=interval, jitter=jitter)


def test_interval_counts_from_the_last_success() -> None:
    """With an interval, the next rotation is the last success plus the interval."""
    due = next_due(every(30 * DAY), api_key="k1", last_success=T0, first_seen=T0 + DAY)
    assert due == T0 + 30 * DAY


def test_never_rotated_key_is_due_when_first_seen_without_jitter() -> None:
    """A key with no success in the audit log is due the moment the daemon first saw it."""
    due = next_due(every(30 * DAY), api_key="k1", last_success=None, first_seen=T0)
    assert due == T0


def test_never_rotated_keys_are_spread_by_jitter() -> None:
    """New keys seen together get different due times, each within the jitter window."""
    keys = [f"sub{n:05d}" for n in range(50)]
    dues = [next_due(every(DAY, HOUR), api_key=k, last_success=None, first_seen=T0) for k in keys]
    assert all(T0 <= d < T0 + HOUR for d in dues)
    assert len(set(dues)) == len(keys)


def test_spread_new_false_makes_a_new_key_due_at_once() -> None:
    """``--once`` does not wait out a new key's jitter offset."""
    due = next_due(
        every(DAY, HOUR), api_key="k1", last_success=None, first_seen=T0, spread_new=False
    )
    assert due == T0


def test_jitter_is_stable_per_key() -> None:
    """The offset is a function of the key alone, so every restart and replica agrees on it."""
    assert jitter_offset("sub00001", HOUR) == jitter_offset("sub00001", HOUR)
    assert jitter_offset("sub00001", HOUR) != jitter_offset("sub00002", HOUR)
    assert timedelta(0) <= jitter_offset("sub00001", HOUR) < HOUR


def test_jitter_offset_is_added_to_the_interval() -> None:
    """A key's due time is last success + interval + its own offset."""
    offset = jitter_offset("k1", HOUR)
    due = next_due(every(DAY, HOUR), api_key="k1", last_success=T0, first_seen=T0)
    assert due == T0 + DAY + offset


def test_zero_jitter_means_no_offset() -> None:
    """Without jitter every key is due exactly on its interval."""
    assert jitter_offset("anything", timedelta(0)) == timedelta(0)


def test_restart_does_not_move_the_due_time() -> None:
    """The due time depends on the audit log, not on when the daemon (re)started."""
    a = next_due(every(DAY), api_key="k1", last_success=T0, first_seen=T0 + HOUR)
    b = next_due(every(DAY), api_key="k1", last_success=T0, first_seen=T0 + 5 * HOUR)
    assert a == b == T0 + DAY


def test_failed_key_is_retried_after_the_retry_delay() -> None:
    """A key whose newest run failed is retried ``retry_delay`` after that failure."""
    failed_at = T0 + 40 * DAY
    due = next_due(
        every(30 * DAY),
        api_key="k1",
        last_success=T0,
        first_seen=T0,
        last_failure=failed_at,
        retry_delay=15 * timedelta(minutes=1),
    )
    assert due == failed_at + timedelta(minutes=15)


def test_failure_never_brings_a_rotation_forward() -> None:
    """A failure retry is never earlier than the key's scheduled time."""
    due = next_due(
        every(DAY),
        api_key="k1",
        last_success=T0,
        first_seen=T0,
        last_failure=T0 - DAY,
        retry_delay=HOUR,
    )
    assert due == T0 + DAY


def test_cron_next_fire_after_the_last_success() -> None:
    """With a cron line, the key is due at the first fire time after its last success."""
    schedule = Schedule(cron="0 3 * * *")
    due = next_due(schedule, api_key="k1", last_success=T0, first_seen=T0)
    assert due == datetime(2024, 1, 2, 3, 0, tzinfo=UTC)


def test_cron_rotation_exactly_on_time_is_not_repeated() -> None:
    """A success that started exactly at a fire time makes the *next* fire time due."""
    fire = datetime(2024, 1, 2, 3, 0, tzinfo=UTC)
    due = next_due(Schedule(cron="0 3 * * *"), api_key="k1", last_success=fire, first_seen=T0)
    assert due == fire + DAY


def test_cron_with_jitter_keeps_the_cadence() -> None:
    """A jittered cron key run at fire + offset is next due at the next fire + offset."""
    schedule = Schedule(cron="0 3 * * *", jitter=HOUR)
    offset = jitter_offset("k1", HOUR)
    ran = datetime(2024, 1, 2, 3, 0, tzinfo=UTC) + offset + timedelta(seconds=2)
    due = next_due(schedule, api_key="k1", last_success=ran, first_seen=T0)
    assert due == datetime(2024, 1, 3, 3, 0, tzinfo=UTC) + offset


def test_cron_weekdays_use_crontab_numbering() -> None:
    """``0 3 * * 1`` is Monday 03:00 as in crontab (APScheduler 3 alone would say Tuesday)."""
    fire = cron_trigger("0 3 * * 1").get_next_fire_time(None, datetime(2024, 1, 2, tzinfo=UTC))
    assert fire == datetime(2024, 1, 8, 3, 0, tzinfo=UTC)
    assert fire.weekday() == 0


@pytest.mark.parametrize(
    ("field", "weekdays"),
    [("0", {6}), ("7", {6}), ("1-5", {0, 1, 2, 3, 4}), ("5-7", {4, 5, 6}), ("*/2", {6, 1, 3, 5})],
)
def test_cron_weekday_fields(field: str, weekdays: set[int]) -> None:
    """Crontab weekday numbers, ranges and steps fire on the days crontab would."""
    trigger = cron_trigger(f"0 3 * * {field}")
    seen, moment = set(), datetime(2024, 1, 1, tzinfo=UTC)
    for _ in range(14):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        seen.add(moment.weekday())
    assert seen == weekdays


def test_max_secret_age_is_interval_plus_jitter_plus_grace() -> None:
    """'Too old' is the interval plus the whole jitter window plus the grace period."""
    age = max_secret_age(every(30 * DAY, HOUR), grace=2 * HOUR, now=T0)
    assert age == 30 * DAY + 3 * HOUR


def test_max_secret_age_of_a_cron_schedule_is_its_widest_gap() -> None:
    """For weekdays-only cron, the widest gap is Friday to Monday: three days."""
    age = max_secret_age(Schedule(cron="0 3 * * 1-5"), grace=timedelta(0), now=T0)
    assert age == 3 * DAY


def test_override_schedule_replaces_the_default() -> None:
    """A key listed in accounts.overrides with a schedule uses that schedule."""
    config = parse_config(
        {
            "vonage": {"primary_api_key": PRIMARY},
            "rotation": {"schedule": {"interval": "30d"}},
            "accounts": {"overrides": [{"api_key": PRIMARY, "schedule": {"interval": "7d"}}]},
        }
    )
    assert config.schedule_for(PRIMARY).interval == 7 * DAY
    assert config.schedule_for("sub00001").interval == 30 * DAY


def test_selection_matches_key_or_name() -> None:
    """Include and exclude globs match the API key or the subaccount's name."""
    assert selected("sub00001", "Marketing", include=["*"], exclude=[])
    assert not selected("sub00001", "test-eu", include=["*"], exclude=["test-*"])
    assert not selected("sub00001", None, include=["sub9*"], exclude=[])
    assert selected("sub00001", "Sales", include=["Sal*"], exclude=[])


def test_primary_waits_for_subaccounts_due_together() -> None:
    """When everything is due at once, the primary does not start before the subaccounts."""
    dues = {PRIMARY: T0, "sub1": T0, "sub2": T0}
    assert not may_start(PRIMARY, primary=PRIMARY, now=T0, dues=dues, running=set())
    assert may_start("sub1", primary=PRIMARY, now=T0, dues=dues, running=set())


def test_primary_waits_while_a_subaccount_rotates() -> None:
    """The primary never rotates while a subaccount rotation (using its credentials) runs."""
    dues = {PRIMARY: T0, "sub1": T0 + DAY}
    assert not may_start(PRIMARY, primary=PRIMARY, now=T0, dues=dues, running={"sub1"})
    assert may_start(PRIMARY, primary=PRIMARY, now=T0, dues=dues, running=set())


def test_subaccount_waits_while_the_primary_rotates() -> None:
    """No subaccount starts while the primary's credentials are changing."""
    dues = {PRIMARY: T0, "sub1": T0}
    assert not may_start("sub1", primary=PRIMARY, now=T0, dues=dues, running={PRIMARY})


def test_subaccount_due_later_lets_an_overdue_primary_go_first() -> None:
    """A primary waiting since before a subaccount became due is not starved by it."""
    dues = {PRIMARY: T0, "sub1": T0 + timedelta(seconds=5)}
    now = T0 + timedelta(seconds=6)
    assert not may_start("sub1", primary=PRIMARY, now=now, dues=dues, running=set())
    assert may_start(PRIMARY, primary=PRIMARY, now=now, dues=dues, running=set())


def test_run_order_puts_the_primary_last() -> None:
    """Due keys run by due time, subaccounts first, the primary last."""
    dues = {PRIMARY: T0 - DAY, "sub2": T0, "sub1": T0 - HOUR}
    assert run_order(dues, primary=PRIMARY, dues=dues) == ["sub1", "sub2", PRIMARY]
