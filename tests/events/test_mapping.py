"""Which audit events become consumer events, and what their payloads say (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rotator.events.mapping import AuditFacts, RunFacts, consumer_events
from rotator.events.types import EventType

AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RUN = RunFacts(trigger="scheduled", emergency=False, old_secret_id="old-1", new_secret_id="new-1")


def facts(step: str, outcome: str, **fields: Any) -> AuditFacts:
    base: dict[str, Any] = {
        "seq": 7, "run_id": "r-1", "api_key": "k1", "secret_id": None, "vault_version": None,
        "finished_at": AT,
    }  # fmt: skip
    return AuditFacts(step=step, outcome=outcome, **{**base, **fields})


def test_promote_ok_is_secret_rotated_with_its_vault_version_and_revoke_after() -> None:
    """A promoted secret is announced with where it lives and when the old one goes."""
    event = facts("promote", "ok", secret_id="new-1", vault_version=4)
    [(kind, data)] = consumer_events(
        event, RUN, vault_path="secret/vonage/k1", grace=timedelta(hours=1)
    )
    assert kind is EventType.SECRET_ROTATED
    assert data == {
        "api_key": "k1", "run_id": "r-1", "audit_seq": 7, "trigger": "scheduled",
        "emergency": False, "secret_id": "new-1", "previous_secret_id": "old-1",
        "vault_path": "secret/vonage/k1", "vault_version": 4,
        "revoke_after": "2026-11-30T13:00:00.000000+00:00",
        "rotated_at": "2026-11-30T12:00:00.000000+00:00",
    }  # fmt: skip


def test_an_emergency_rotation_announces_immediate_revocation() -> None:
    """An emergency run cuts the grace period short, so revoke_after is the promote time."""
    run = RunFacts(trigger="emergency", emergency=True, old_secret_id="o", new_secret_id="n")
    [(_, data)] = consumer_events(facts("promote", "ok"), run, grace=timedelta(hours=1))
    assert (data["emergency"], data["revoke_after"]) == (True, "2026-11-30T12:00:00.000000+00:00")


def test_a_revoke_after_recorded_by_the_promote_step_wins() -> None:
    """When the engine records revoke_after in the promote detail, that moment is announced."""
    event = facts("promote", "ok", detail={"revoke_after": "2026-12-01T00:00:00Z"})
    [(_, data)] = consumer_events(event, RUN, grace=timedelta(hours=1))
    assert data["revoke_after"] == "2026-12-01T00:00:00.000000+00:00"


def test_each_revoked_secret_is_one_secret_revoked_event() -> None:
    """A revoke (or make-room) step that revoked two secrets reports two events."""
    event = facts("make_room", "ok", detail={"revoked": ["s1", "s2"], "reason": "x"})
    found = consumer_events(event, RUN)
    assert [(k, d["secret_id"], d["superseded"]) for k, d in found] == [
        (EventType.SECRET_REVOKED, "s1", False),
        (EventType.SECRET_REVOKED, "s2", False),
    ]


def test_a_superseded_run_reports_its_old_secret_revoked() -> None:
    """A run closed as superseded tells consumers its old secret is gone."""
    [(kind, data)] = consumer_events(facts("revoke", "superseded", secret_id="old-1"), RUN)
    assert (kind, data["secret_id"], data["superseded"]) == (
        EventType.SECRET_REVOKED, "old-1", True,
    )  # fmt: skip


def test_failed_and_rolled_back_runs_are_reported_with_their_error() -> None:
    """run.end failed / rolled_back become rotation.failed / rotation.rolled_back."""
    failed = consumer_events(facts("run.end", "failed", error="VonageServerError: 503"), RUN)
    rolled = consumer_events(facts("run.end", "rolled_back", error="verify"), RUN)
    assert [(k, d["error"]) for k, d in failed + rolled] == [
        (EventType.ROTATION_FAILED, "VonageServerError: 503"),
        (EventType.ROTATION_ROLLED_BACK, "verify"),
    ]


def test_ordinary_steps_report_nothing() -> None:
    """Inspect, generate, a failed step, a deferred revoke and a successful end are silent."""
    silent = [
        facts("inspect", "ok"), facts("generate", "ok"), facts("promote", "failed"),
        facts("revoke", "deferred"), facts("run.end", "succeeded"), facts("revoke", "ok"),
    ]  # fmt: skip
    assert [consumer_events(e, RUN) for e in silent] == [[]] * len(silent)
