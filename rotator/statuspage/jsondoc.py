"""/status as JSON: the fields it always had, each key's state, the summary counts and the
pagination of the filtered list (the same ``?q=&state=&page=`` as the HTML page)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rotator.audit import Run
from rotator.snapshot import KeyStatus, LeaseSummary, StatusSnapshot
from rotator.statuspage.filters import Page, Query
from rotator.statuspage.states import State, counts
from rotator.statuspage.text import shown


def _run_json(run: Run | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.id,
        "status": str(run.status),
        "trigger": run.trigger,
        "started_at": shown(run.started_at),
        "finished_at": shown(run.finished_at),
        "error": run.error,
    }


def _lease_json(lease: LeaseSummary | None) -> dict[str, Any] | None:
    if lease is None:
        return None
    return {"owner": lease.owner, "expires_at": shown(lease.expires_at), "active": lease.active}


def key_json(key: KeyStatus, state: State) -> dict[str, Any]:
    return {
        "api_key": key.api_key,
        "name": key.name,
        "primary": key.primary,
        "state": state.name,
        "secret_age_seconds": key.secret_age.total_seconds() if key.secret_age else None,
        "interval_seconds": key.interval.total_seconds() if key.interval else None,
        "last_success": shown(key.last_success),
        "next_due": shown(key.next_due),
        "grace_until": shown(key.grace_until),
        "rotating_here": key.rotating_here,
        "last_run": _run_json(key.last_run),
        "lease": _lease_json(key.lease),
        "failing": key.failing,
        "error": key.error,
        "paused": key.paused,
        "stuck": key.stuck,
    }


def status_json(
    status: StatusSnapshot, rows: Sequence[tuple[KeyStatus, State]], page: Page, query: Query
) -> dict[str, Any]:
    """Every field /status had (``keys`` is now the requested page), plus summary and paging."""
    return {
        "version": status.version,
        "phase": str(status.phase),
        "owner": status.owner,
        "generated_at": shown(status.generated_at),
        "summary": counts(s for _k, s in rows),
        "filters": {"q": query.q, "state": query.state},
        "pagination": page.to_json(),
        "keys": [key_json(k, s) for k, s in page.rows],
        "quarantined": [{"key": key, "why": why} for key, why in status.quarantined],
    }


__all__ = ["key_json", "status_json"]
