"""The outbox on SQLite and PostgreSQL: written in the audit transaction, claimed once, in order."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from rotator import clock as rclock
from rotator.audit import AuditLog, RunStatus
from rotator.events.deliverer import Deliverer
from rotator.events.outbox import Backoff, OutboxWriter, Route, enqueue
from rotator.events.types import EventType
from tests.events.conftest import Clock, outbox, payload, rows

WRITER = OutboxWriter([Route("hooks"), Route("ops", frozenset({EventType.ROTATION_FAILED}))])


def fail_a_run(audit: AuditLog) -> str:
    run = audit.start_run(api_key="k1", trigger="manual", actor="alice", owner="t")
    audit.finish_run(run.id, RunStatus.FAILED, error="VonageServerError: HTTP 503")
    return run.id


def test_a_failed_run_writes_one_row_per_interested_endpoint(engine: Engine) -> None:
    """run.end failed becomes a rotation.failed row for each endpoint whose types include it."""
    run_id = fail_a_run(AuditLog(engine, outbox=WRITER))
    found = rows(engine)
    assert [(r["endpoint"], r["event_type"], r["run_id"]) for r in found] == [
        ("hooks", "rotation.failed", run_id),
        ("ops", "rotation.failed", run_id),
    ]
    assert payload(found[0])["data"]["error"] == "VonageServerError: HTTP 503"


def test_an_audit_log_without_an_outbox_writes_no_rows(engine: Engine) -> None:
    """Callers that do not opt in see the audit log exactly as before."""
    fail_a_run(AuditLog(engine))
    assert rows(engine) == []


def test_types_filter_what_an_endpoint_receives(engine: Engine) -> None:
    """An endpoint subscribed to rotation.failed only gets no secret.rotated."""
    audit = AuditLog(engine, outbox=WRITER)
    run = audit.start_run(api_key="k1", trigger="manual", actor="alice", owner="t")
    audit.record(step="promote", outcome="ok", started_at=rclock.utcnow(), run_id=run.id,
                 api_key="k1", secret_id="new-1", vault_version=3)  # fmt: skip
    assert [(r["endpoint"], r["event_type"]) for r in rows(engine)] == [("hooks", "secret.rotated")]


def test_a_rolled_back_audit_transaction_leaves_no_outbox_row(engine: Engine) -> None:
    """Outbox rows commit or roll back with the audit event they report."""
    audit = AuditLog(engine, outbox=WRITER)
    seen: list[int] = []

    def append_then_fail() -> None:
        with engine.begin() as conn:
            audit._append(conn, run_id=None, api_key="k1", step="run.end", outcome="failed",
                          started_at=rclock.utcnow(), finished_at=rclock.utcnow())  # fmt: skip
            seen.append(len(conn.execute(sa.text("SELECT id FROM event_outbox")).all()))
            raise RuntimeError("the transaction fails after the append")

    with pytest.raises(RuntimeError):
        append_then_fail()
    assert seen == [2]
    assert (rows(engine), audit.events()) == ([], [])


def test_a_claimed_row_is_not_claimed_again_until_its_lease_expires(
    engine: Engine, clock: Clock
) -> None:
    """Two deliverers never hold one row at once; an expired claim is taken over."""
    with engine.begin() as conn:
        enqueue(conn, "hooks", EventType.SECRET_ROTATED, {"api_key": "k1"}, at=clock())
    a, b = outbox(engine, clock, "a"), outbox(engine, clock, "b")
    assert len(a.claim(["hooks"], timedelta(seconds=30))) == 1
    assert b.claim(["hooks"], timedelta(seconds=30)) == []
    clock.advance(timedelta(seconds=31))
    assert [d.endpoint for d in b.claim(["hooks"], timedelta(seconds=30))] == ["hooks"]


def test_a_settled_claim_from_an_expired_lease_is_refused(engine: Engine, clock: Clock) -> None:
    """A deliverer whose lease expired and was taken over cannot mark the row delivered."""
    with engine.begin() as conn:
        enqueue(conn, "hooks", EventType.SECRET_ROTATED, {"api_key": "k1"}, at=clock())
    a, b = outbox(engine, clock, "a"), outbox(engine, clock, "b")
    [late] = a.claim(["hooks"], timedelta(seconds=1))
    clock.advance(timedelta(seconds=2))
    [taken] = b.claim(["hooks"], timedelta(seconds=30))
    assert (a.delivered(late), b.delivered(taken)) == (False, True)


def test_only_an_endpoints_oldest_pending_row_is_claimable(engine: Engine, clock: Clock) -> None:
    """Per-endpoint order: a later event waits while an earlier one is pending; others flow."""
    with engine.begin() as conn:
        for endpoint in ("hooks", "hooks", "ops"):
            enqueue(conn, endpoint, EventType.ROTATION_FAILED, {"api_key": "k1"}, at=clock())
    box = outbox(engine, clock)
    first = box.claim(["hooks", "ops"], timedelta(seconds=30))
    assert [(d.id, d.endpoint) for d in first] == [(1, "hooks"), (3, "ops")]
    box.failed(first[0], "HTTP 500")
    assert box.claim(["hooks", "ops"], timedelta(seconds=30)) == []


def test_backoff_grows_exponentially_with_jitter_up_to_its_cap() -> None:
    """Attempt n waits between half and all of base * 2**(n-1), never more than the cap."""
    import random

    backoff, rng = Backoff(base=timedelta(seconds=4), cap=timedelta(seconds=60)), random.Random(1)
    delays = [backoff.delay(n, rng).total_seconds() for n in (1, 2, 3, 10)]
    bounds = [(2, 4), (4, 8), (8, 16), (30, 60)]
    assert [lo <= d <= hi for d, (lo, hi) in zip(delays, bounds, strict=True)] == [True] * 4


def delivered_and_pending(engine: Engine, clock: Clock) -> dict[str, int]:
    """Three rows of one endpoint: delivered 40 days ago, delivered 20 days ago, and one
    written 20 days ago whose attempts keep failing."""
    box = outbox(engine, clock)
    ids = {}
    for name in ("old", "recent", "pending"):
        with engine.begin() as conn:
            enqueue(conn, "hooks", EventType.SECRET_ROTATED, {"api_key": name}, at=clock())
        [row] = box.claim(["hooks"], timedelta(seconds=30))
        ids[name] = row.id
        if name == "pending":
            box.failed(row, "HTTP 500")
        else:
            box.delivered(row)
            clock.advance(timedelta(days=20))
    return ids


def test_delivered_rows_past_their_keep_are_purged_and_pending_ones_never(
    engine: Engine, clock: Clock
) -> None:
    """keep_delivered 30 days: the row delivered 40 days ago goes; the one delivered 20 days
    ago and the undelivered one (however old it grows) stay."""
    ids = delivered_and_pending(engine, clock)
    assert outbox(engine, clock).purge_delivered(timedelta(days=30)) == 1
    assert [r["id"] for r in rows(engine)] == [ids["recent"], ids["pending"]]
    clock.advance(timedelta(days=365))
    assert outbox(engine, clock).purge_delivered(timedelta(days=30)) == 1
    assert [r["id"] for r in rows(engine)] == [ids["pending"]]


def test_a_purge_goes_in_batches(engine: Engine, clock: Clock) -> None:
    """Many old rows are deleted a batch per transaction, all of them in the end."""
    box = outbox(engine, clock)
    for n in range(7):
        with engine.begin() as conn:
            enqueue(conn, "hooks", EventType.SECRET_ROTATED, {"api_key": f"k{n}"}, at=clock())
        box.delivered(box.claim(["hooks"], timedelta(seconds=30))[0])
    clock.advance(timedelta(days=2))
    assert box.purge_delivered(timedelta(days=1), batch=3) == 7
    assert rows(engine) == []


def test_the_deliverer_purges_on_its_first_pass_and_then_hourly(
    engine: Engine, clock: Clock
) -> None:
    """With keep_delivered set, a deliverer's pass purges (the first at once, then at most once
    an hour of its own time); without it, nothing is ever deleted."""
    ids = delivered_and_pending(engine, clock)
    clock.advance(timedelta(days=15))  # "recent" is 35 days old now, "old" 55
    keeping_all = Deliverer(outbox(engine, clock), [])
    keeping = Deliverer(outbox(engine, clock), [], keep_delivered=timedelta(days=50))
    try:
        keeping_all.run_once()
        assert len(rows(engine)) == 3
        keeping.run_once()
        assert [r["id"] for r in rows(engine)] == [ids["recent"], ids["pending"]]
        clock.advance(timedelta(days=30))
        keeping.run_once()  # within the hour: no second purge yet
        assert [r["id"] for r in rows(engine)] == [ids["recent"], ids["pending"]]
    finally:
        keeping_all.close()
        keeping.close()
