"""Which consumer events an audit event means: pure, so the mapping is tested without I/O.

The audit log is the one record of what happened; consumer events are derived from it (and
written in the same transaction by ``outbox.OutboxWriter``), never reported separately, so an
event can neither be lost nor invented. No payload holds a secret value: ids, versions, times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rotator import clock
from rotator.events.types import EventType


@dataclass(frozen=True, kw_only=True)
class AuditFacts:
    """The fields of one audit event that the mapping reads."""

    seq: int
    step: str
    outcome: str
    run_id: str | None
    api_key: str | None
    secret_id: str | None
    vault_version: int | None
    finished_at: datetime
    error: str | None = None
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """The fields of the event's run (read in the same transaction) that payloads carry."""

    trigger: str
    emergency: bool
    old_secret_id: str | None
    new_secret_id: str | None
    started_at: datetime | None = None


ConsumerEvent = tuple[EventType, dict[str, Any]]


def consumer_events(
    event: AuditFacts,
    run: RunFacts | None,
    *,
    vault_path: str | None = None,
    grace: timedelta | None = None,
) -> list[ConsumerEvent]:
    """The consumer events ``event`` reports (usually none).

    ``vault_path`` is where applications read the key; ``grace`` the key's grace period, used
    for ``revoke_after`` when the promote step does not record one in its detail.
    """
    step, outcome, detail = event.step, event.outcome, dict(event.detail or {})
    if step == "promote" and outcome == "ok":
        return [(EventType.SECRET_ROTATED, _rotated(event, run, detail, vault_path, grace))]
    if step in ("make_room", "revoke") and outcome == "ok":
        revoked = [str(i) for i in detail.get("revoked") or []]
        return [(EventType.SECRET_REVOKED, _revoked(event, run, i, False)) for i in revoked]
    if step == "revoke" and outcome == "superseded" and event.secret_id:
        return [(EventType.SECRET_REVOKED, _revoked(event, run, event.secret_id, True))]
    if step == "drift" and outcome == "found":
        return [(EventType.SECRET_DRIFT, _drift(event, run, detail))]
    if step == "run.end" and outcome in ("failed", "rolled_back"):
        kind = EventType.ROTATION_FAILED if outcome == "failed" else EventType.ROTATION_ROLLED_BACK
        return [(kind, _ended(event, run))]
    return []


def _base(event: AuditFacts, run: RunFacts | None) -> dict[str, Any]:
    return {
        "api_key": event.api_key,
        "run_id": event.run_id,
        "audit_seq": event.seq,
        "trigger": run.trigger if run else None,
        "emergency": run.emergency if run else False,
    }


def _rotated(
    event: AuditFacts,
    run: RunFacts | None,
    detail: dict[str, Any],
    vault_path: str | None,
    grace: timedelta | None,
) -> dict[str, Any]:
    revoke_after: str | None = None
    if isinstance(detail.get("revoke_after"), str):
        revoke_after = clock.iso(clock.parse(detail["revoke_after"]))
    elif grace is not None:
        # An emergency run revokes every other secret at once.
        wait = timedelta(0) if run is not None and run.emergency else grace
        revoke_after = clock.iso(event.finished_at + wait)
    return {
        **_base(event, run),
        "secret_id": event.secret_id,
        "previous_secret_id": run.old_secret_id if run else None,
        "vault_path": vault_path,
        "vault_version": event.vault_version,
        "revoke_after": revoke_after,
        "rotated_at": clock.iso(event.finished_at),
    }


def _revoked(
    event: AuditFacts, run: RunFacts | None, secret_id: str, superseded: bool
) -> dict[str, Any]:
    return {
        **_base(event, run),
        "secret_id": secret_id,
        "superseded": superseded,
        "revoked_at": clock.iso(event.finished_at),
    }


def _drift(event: AuditFacts, run: RunFacts | None, detail: dict[str, Any]) -> dict[str, Any]:
    return {
        **_base(event, run),
        "unknown_secret_ids": [str(i) for i in detail.get("unknown") or []],
        "vanished_secret_id": detail.get("vanished"),
        "action": detail.get("action"),
        "detected_at": clock.iso(event.finished_at),
    }


def _ended(event: AuditFacts, run: RunFacts | None) -> dict[str, Any]:
    return {
        **_base(event, run),
        "old_secret_id": run.old_secret_id if run else None,
        "new_secret_id": run.new_secret_id if run else None,
        "error": event.error,
        "started_at": clock.iso_or_none(run.started_at if run else None),
        "finished_at": clock.iso(event.finished_at),
    }


__all__ = ["AuditFacts", "ConsumerEvent", "RunFacts", "consumer_events"]
