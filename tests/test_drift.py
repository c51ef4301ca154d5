"""Drift comparison and its consumer event: pure, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rotator.drift import Known, compare, first_watch, watch_tick
from rotator.events.mapping import AuditFacts, consumer_events
from rotator.events.types import EventType

CUR = "11111111-1111-4111-8111-111111111111"
PREV = "22222222-2222-4222-8222-222222222222"
EVIL = "33333333-3333-4333-8333-333333333333"
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_unknown_secret_is_drift() -> None:
    """A secret on Vonage that rotator never recorded is reported as unknown."""
    drift = compare("sub1", [CUR, EVIL], Known(current_id=CUR))
    assert drift.found
    assert drift.unknown == (EVIL,)
    assert drift.vanished is None


def test_previous_secret_is_not_drift() -> None:
    """The old secret of a rotation in its grace period is known, not drift."""
    assert not compare("sub1", [PREV, CUR], Known(current_id=CUR, previous_id=PREV)).found


def test_vanished_current_is_drift() -> None:
    """The current secret gone from Vonage (someone revoked it) is reported."""
    drift = compare("sub1", [EVIL], Known(current_id=CUR))
    assert drift.vanished == CUR
    assert drift.unknown == (EVIL,)


def test_no_baseline_is_not_judged() -> None:
    """A key whose current secret id rotator never learnt cannot be judged (no false alarm)."""
    drift = compare("sub1", [CUR, EVIL], Known(current_id=None))
    assert not drift.judged
    assert not drift.found


def test_pending_without_id_is_not_judged() -> None:
    """A staged secret whose Vonage id is not yet recorded means a run is mid-way."""
    drift = compare("sub1", [CUR, EVIL], Known(current_id=CUR, pending_unidentified=True))
    assert not drift.judged


def test_adopted_secret_is_a_baseline() -> None:
    """An adopted key (no value in Vault) is judged against the adopted id."""
    drift = compare("sub1", [PREV, EVIL], Known(current_id=None, adopted_id=PREV))
    assert drift.unknown == (EVIL,)


def test_first_watch_falls_within_one_interval() -> None:
    """Keys are spread over the interval: every first watch is within it."""
    interval = timedelta(minutes=15)
    for n in range(50):
        when = first_watch(f"key{n}", AT, interval)
        assert AT <= when < AT + interval


def test_watch_tick_is_bounded() -> None:
    """The watch job ticks between 0.5 s and 30 s whatever the interval."""
    assert watch_tick(timedelta(seconds=1)) == timedelta(seconds=0.5)
    assert watch_tick(timedelta(hours=24)) == timedelta(seconds=30)


def test_drift_audit_event_becomes_secret_drift() -> None:
    """A ``drift`` audit event is announced to consumers as ``secret.drift`` with the ids."""
    facts = AuditFacts(
        seq=7,
        step="drift",
        outcome="found",
        run_id=None,
        api_key="sub1",
        secret_id=EVIL,
        vault_version=None,
        finished_at=AT,
        detail={"unknown": [EVIL], "vanished": None, "action": "alert"},
    )
    ((kind, data),) = consumer_events(facts, None)
    assert kind == EventType.SECRET_DRIFT
    assert data["unknown_secret_ids"] == [EVIL]
    assert data["api_key"] == "sub1"
