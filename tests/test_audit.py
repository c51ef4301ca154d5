"""The audit repository on SQLite and PostgreSQL: runs, events, the hash chain, last success, and
the migrated schema matching the models."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from rotator import db
from rotator.audit import AuditLog, RunStatus, Trigger
from rotator.clock import utcnow
from rotator.errors import RunNotFoundError
from rotator.models import Base
from tests.conftest import ensure_migrated


@pytest.fixture
def audit(database_url: str, migrated_schema: None) -> Iterator[AuditLog]:
    engine = db.make_engine(database_url)
    ensure_migrated(engine)
    try:
        yield AuditLog(engine)
    finally:
        engine.dispose()


def start(audit: AuditLog, api_key: str = "k1", **kwargs: object) -> str:
    options: dict[str, object] = {"trigger": Trigger.MANUAL, "actor": "alice", "owner": "o"}
    options.update(kwargs)
    return audit.start_run(api_key=api_key, **options).id  # type: ignore[arg-type]


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    """Alembic's migrations and rotator/models.py describe the same tables, columns and indexes."""
    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


def test_started_run_is_running_with_its_details(audit: AuditLog) -> None:
    """A new run is `running`, remembers who, why and how, and opens with a run.start event."""
    run = audit.get_run(start(audit, reason="quarterly", emergency=True))
    assert run.status == RunStatus.RUNNING
    assert (run.api_key, run.trigger, run.actor, run.reason, run.emergency) == (
        "k1", "manual", "alice", "quarterly", True,
    )  # fmt: skip
    assert run.finished_at is None
    assert run.started_at.tzinfo is not None
    events = audit.events(run_id=run.id)
    assert [(e.step, e.outcome) for e in events] == [("run.start", "ok")]
    assert events[0].detail == {"trigger": "manual", "reason": "quarterly", "emergency": True}


def test_update_run_leaves_fields_not_given_alone(audit: AuditLog) -> None:
    """Updating one field of a run keeps the others; None clears a field explicitly."""
    run_id = start(audit)
    audit.update_run(run_id, old_secret_id="old", error="first")
    audit.update_run(run_id, new_secret_id="new", error=None)
    run = audit.get_run(run_id)
    assert (run.old_secret_id, run.new_secret_id, run.error) == ("old", "new", None)


def test_update_run_with_what_the_run_holds_writes_no_event(audit: AuditLog) -> None:
    """Telling a run what it already holds (promote repeats create's new id) adds nothing."""
    run_id = start(audit)
    audit.update_run(run_id, new_secret_id="new")
    audit.update_run(run_id, new_secret_id="new")
    assert [e.step for e in audit.events(run_id=run_id)] == ["run.start", "run.update"]


def test_update_run_writes_over_a_change_made_elsewhere(audit: AuditLog) -> None:
    """A run another process changed since this one wrote it is read afresh, not assumed."""
    run_id = start(audit)
    audit.update_run(run_id, old_secret_id="a")
    AuditLog(audit.engine).update_run(run_id, old_secret_id="b")  # another process's write
    audit.update_run(run_id, old_secret_id="c")
    assert audit.get_run(run_id).old_secret_id == "c"
    assert audit.verify_chain().ok


def test_start_and_finish_return_the_run_as_stored(audit: AuditLog) -> None:
    """The runs start_run and finish_run return (not read back) equal what the database holds."""
    started = audit.start_run(api_key="k1", trigger="manual", actor="alice", owner="o")
    assert started == audit.get_run(started.id)
    later = datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    waiting = audit.finish_run(started.id, RunStatus.AWAITING_REVOKE, revoke_after=later)
    assert waiting == audit.get_run(started.id)
    ended = audit.finish_run(started.id, RunStatus.FAILED, error="x")
    assert ended == audit.get_run(started.id)


def test_finished_run_records_status_error_and_end_event(audit: AuditLog) -> None:
    """Finishing a run sets its terminal status, error and end time, with a run.end event."""
    run_id = start(audit)
    audit.update_run(run_id, old_secret_id="old", new_secret_id="new")
    run = audit.finish_run(run_id, RunStatus.ROLLED_BACK, error="VerificationFailedError: x")
    assert run.status == RunStatus.ROLLED_BACK
    assert run.error == "VerificationFailedError: x"
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    end = audit.events(run_id=run_id)[-1]
    assert (end.step, end.outcome, end.secret_id) == ("run.end", "rolled_back", "new")
    assert end.detail == {"old_secret_id": "old", "new_secret_id": "new", "revoke_after": None}


def test_run_awaiting_revoke_is_not_finished(audit: AuditLog) -> None:
    """A run waiting out its grace period keeps no end time and is listed as awaiting."""
    run_id = start(audit)
    later = utcnow() + timedelta(hours=1)
    run = audit.finish_run(run_id, RunStatus.AWAITING_REVOKE, revoke_after=later)
    assert run.finished_at is None
    assert run.revoke_after is not None
    assert abs(run.revoke_after - later) < timedelta(seconds=1)
    assert [r.id for r in audit.awaiting_revoke("k1")] == [run_id]
    assert audit.events(run_id=run_id)[-1].step == "run.status"
    assert audit.unfinished_runs("k1") == []


def test_unfinished_runs_are_the_running_ones_oldest_first(audit: AuditLog) -> None:
    """Only runs still `running` need resuming, per key, in the order they started."""
    first, second = start(audit), start(audit)
    audit.finish_run(start(audit), RunStatus.SUCCEEDED)
    start(audit, api_key="other")
    assert [r.id for r in audit.unfinished_runs("k1")] == [first, second]
    assert len(audit.unfinished_runs()) == 3


def test_recorded_event_round_trips(audit: AuditLog) -> None:
    """Every field of a step event is stored and read back, times in UTC."""
    run_id = start(audit)
    began = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    event = audit.record(
        run_id=run_id,
        api_key="k1",
        step="create",
        outcome="ok",
        started_at=began,
        actor="alice",
        secret_id="sid",
        request_id="rid",
        vault_version=7,
        detail={"reconciled": True, "attempts": [1, 2]},
    )
    stored = audit.events(run_id=run_id)[-1]
    assert stored == event
    assert stored.started_at == began
    assert (stored.secret_id, stored.request_id, stored.vault_version) == ("sid", "rid", 7)
    assert stored.detail == {"reconciled": True, "attempts": [1, 2]}


def test_events_filter_by_run_and_key_in_order(audit: AuditLog) -> None:
    """Events come in append order, filtered by run or by key."""
    a, b = start(audit, api_key="ka"), start(audit, api_key="kb")
    for n in range(3):
        audit.record(run_id=a, api_key="ka", step=f"s{n}", outcome="ok", started_at=utcnow())
    audit.record(run_id=b, api_key="kb", step="other", outcome="ok", started_at=utcnow())
    assert [e.step for e in audit.events(run_id=a)] == ["run.start", "s0", "s1", "s2"]
    assert [e.step for e in audit.events(api_key="kb")] == ["run.start", "other"]
    seqs = [e.seq for e in audit.events()]
    assert seqs == list(range(1, len(seqs) + 1))


def test_chain_verifies_after_a_history_of_runs(audit: AuditLog) -> None:
    """Every event of a key links to the key's event before it; the whole log verifies."""
    for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.ROLLED_BACK):
        run_id = start(audit)
        audit.record(run_id=run_id, api_key="k1", step="inspect", outcome="ok", started_at=utcnow())
        audit.finish_run(run_id, status)
    events = audit.events()
    assert {e.api_key for e in events} == {"k1"}
    assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(events))
    report = audit.verify_chain()
    assert (report.ok, report.checked) == (True, len(events))


def test_concurrent_appends_keep_one_linear_chain(audit: AuditLog) -> None:
    """Threads appending at once never fork the chain nor reuse a sequence number."""
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for n in range(10):
                audit.record(step=f"w{worker}.{n}", outcome="ok", started_at=utcnow())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [e.seq for e in audit.events()] == list(range(1, 41))
    assert audit.verify_chain().ok


def test_last_success_is_the_latest_run_that_made_a_new_secret_current(audit: AuditLog) -> None:
    """Succeeded and awaiting-revoke runs count; failures and other keys do not."""
    assert audit.last_success("k1") is None
    audit.finish_run(start(audit), RunStatus.SUCCEEDED)
    awaiting = audit.finish_run(start(audit), RunStatus.AWAITING_REVOKE, revoke_after=utcnow())
    audit.finish_run(start(audit), RunStatus.FAILED)
    audit.finish_run(start(audit), RunStatus.ROLLED_BACK)
    audit.finish_run(start(audit, api_key="k2"), RunStatus.SUCCEEDED)
    last = audit.last_success("k1")
    assert last is not None
    assert last.tzinfo is not None
    assert abs(last - awaiting.started_at) < timedelta(microseconds=2)


def test_key_histories_match_the_per_key_queries(audit: AuditLog) -> None:
    """One grouped read gives every key the same last success and newest run as two per-key
    queries do, a key without a success included."""
    audit.finish_run(start(audit), RunStatus.SUCCEEDED)
    audit.finish_run(start(audit), RunStatus.FAILED)
    audit.finish_run(start(audit, api_key="k2"), RunStatus.AWAITING_REVOKE, revoke_after=utcnow())
    audit.finish_run(start(audit, api_key="k3"), RunStatus.ROLLED_BACK)
    histories = audit.key_histories()
    assert sorted(histories) == ["k1", "k2", "k3"]
    for key, (last_success, newest) in histories.items():
        assert last_success == audit.last_success(key)
        assert newest == audit.runs(api_key=key, limit=1)[0]
    assert histories["k3"][0] is None
    assert histories["k1"][1] is not None
    assert histories["k1"][1].status == RunStatus.FAILED


def test_runs_filter_by_status_time_and_limit(audit: AuditLog) -> None:
    """runs() filters by key, statuses and start time, newest first unless asked otherwise."""
    ids = [start(audit) for _ in range(3)]
    audit.finish_run(ids[0], RunStatus.FAILED)
    assert [r.id for r in audit.runs(api_key="k1")] == ids[::-1]
    assert [r.id for r in audit.runs(newest_first=False, limit=2)] == ids[:2]
    assert [r.id for r in audit.runs(statuses=[RunStatus.FAILED])] == [ids[0]]
    since = audit.get_run(ids[1]).started_at
    assert [r.id for r in audit.runs(since=since, newest_first=False)] == ids[1:]
    assert [r.id for r in audit.runs(until=since)] == [ids[0]]


def test_run_is_found_by_a_unique_prefix(audit: AuditLog) -> None:
    """Operators type a run id's first characters; an unknown prefix finds nothing."""
    run_id = start(audit)
    found = audit.find_run(run_id[:8])
    assert found is not None
    assert found.id == run_id
    assert audit.find_run("zzzz") is None


def test_unknown_run_id_raises_run_not_found(audit: AuditLog) -> None:
    """Asking for a run that does not exist is a RunNotFoundError, not a silent None."""
    with pytest.raises(RunNotFoundError, match="no run 00000000-"):
        audit.get_run("00000000-0000-0000-0000-000000000000")
