"""Batched appends (issue 12: a first start records 10,000 discovery events in a few
transactions): a batch writes the very rows one ``record`` per event would, ``audit verify``
accepts it and still catches an edit inside it, its consumer events commit or roll back with
it, it cannot be handed its own hashes, and batches racing on PostgreSQL never deadlock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from rotator import db
from rotator.audit import RECORD_BATCH, AuditLog, EventFields, Head, RunStatus, event_hash
from rotator.audit_chain import hashed_fields, to_model
from rotator.errors import DatabaseError
from rotator.events.outbox import OutboxWriter, Route
from rotator.models import AuditEventRow, HeadRow, OutboxRow
from tests.test_audit_chain import disable_guard

T0 = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
RUN = "00000000-0000-0000-0000-000000000001"
SCRIPT: list[dict[str, Any]] = [
    {"step": "discovery", "outcome": "added", "api_key": "abcd1234", "actor": "rotator-daemon"},
    {"step": "discovery", "outcome": "added", "api_key": "sub00001", "actor": "rotator-daemon"},
    {"step": "note", "outcome": "ok", "detail": {"b": 2, "a": [1, "x"]}},
    {"step": "inspect", "outcome": "ok", "api_key": "sub00001", "run_id": RUN,
     "request_id": "req-1", "vault_version": 3, "secret_id": "s1",
     "detail": {"vonage_secret_ids": ["s1"]}},
    {"step": "discovery", "outcome": "removed", "api_key": "abcd1234", "actor": "rotator-daemon",
     "error": "gone"},
]  # fmt: skip
# What rotator wrote for SCRIPT one `record` at a time before batches existed (main at a90ca69,
# a fresh database): the hashes' text form must never change, or no older log would verify.
GOLDEN = [
    (1, "abcd1234", "489f1ea3efddc470d2e5cd8b2b645f0bd0f3f1658a3d8eb6d001759d6e9bb1e2"),
    (2, "sub00001", "aa5b821a981f32491963b2e496b865857185768869961c36610452b7efe09ddb"),
    (3, None, "2bfed7e10a5b168bfcb8db7621a8f3b244f081bbcce77460897e17057d722f83"),
    (4, "sub00001", "8f82d92a7ac15c923d2de0d3690e1fc771309c086ada9fa18f64ab71b1087630"),
    (5, "abcd1234", "9827c473ff02c9051b2476adb985c492427d91377b186da271e18b98bc29e581"),
]
GOLDEN_HEADS = {"": (1, GOLDEN[2][2]), "abcd1234": (2, GOLDEN[4][2]), "sub00001": (2, GOLDEN[3][2])}
DRIFT = Route("hooks")  # an endpoint for every consumer event type


def fixed(entries: list[dict[str, Any]]) -> list[EventFields]:
    """``entries`` at T0 (a fixed moment: the hashes cover the times)."""
    return [EventFields(**entry, started_at=T0, finished_at=T0) for entry in entries]  # type: ignore[typeddict-item]


def keyed(key: str, n: int = 0) -> EventFields:
    return EventFields(step="discovery", outcome="added", started_at=T0, api_key=key,
                       actor="rotator-daemon", detail={"n": n})  # fmt: skip


@pytest.fixture
def audit(database_url: str) -> Iterator[AuditLog]:
    engine = db.make_engine(database_url, pool_size=8)
    db.upgrade(engine)
    yield AuditLog(engine)
    engine.dispose()


def written(audit: AuditLog) -> list[tuple[int, str | None, str]]:
    return [(e.seq, e.api_key, e.hash) for e in audit.events()]


def heads(audit: AuditLog) -> dict[str, tuple[int, str]]:
    with audit.engine.connect() as conn:
        found = conn.execute(sa.select(HeadRow.chain, HeadRow.seq, HeadRow.hash)).all()
    return {chain: (seq, hash_) for chain, seq, hash_ in found}


def test_one_record_at_a_time_gives_the_hashes_it_always_gave(audit: AuditLog) -> None:
    """Appending SCRIPT event by event writes exactly the hashes rotator always wrote."""
    for entry in fixed(SCRIPT):
        audit.record(**entry)
    assert written(audit) == GOLDEN
    assert heads(audit) == GOLDEN_HEADS


def test_a_batch_writes_the_rows_one_record_each_would(audit: AuditLog) -> None:
    """One batch of SCRIPT (three chains, heads made inside it) gives the same rows and heads."""
    events = audit.record_many(fixed(SCRIPT))
    assert [(e.seq, e.api_key, e.hash) for e in events] == GOLDEN
    assert written(audit) == GOLDEN
    assert heads(audit) == GOLDEN_HEADS
    assert audit.verify_chain().ok


def test_a_batch_continues_chains_written_one_record_at_a_time(audit: AuditLog) -> None:
    """A batch after single appends (heads that exist and heads it makes) chains on them."""
    script = fixed(SCRIPT)
    audit.record(**script[0])
    audit.record_many(script[1:3])
    audit.record_many(script[3:])
    assert written(audit) == GOLDEN
    assert heads(audit) == GOLDEN_HEADS


def test_batches_larger_than_one_transaction_verify_with_their_folds(audit: AuditLog) -> None:
    """A batch spanning several transactions, keys recurring across them, folds and verifies."""
    entries = [keyed(f"key{n % 300:04d}", n) for n in range(2 * RECORD_BATCH + 1)]
    audit.record_many(entries)
    head = audit.fold()
    report = audit.verify_chain(anchor=head)
    assert (report.ok, report.checked) == (True, len(entries) + 1)
    assert heads(audit)["key0000"][0] == len(range(0, 2 * RECORD_BATCH + 1, 300))


def test_an_event_edited_inside_a_batch_is_caught(audit: AuditLog) -> None:
    """An attacker who edits one event in the middle of a batch is named by verify."""
    events = audit.record_many([keyed("k1", n) for n in range(5)])
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(
            sa.update(AuditEventRow).where(AuditEventRow.seq == events[2].seq).values(outcome="x")
        )
    report = audit.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, events[2].seq)


def test_an_event_rehashed_inside_a_batch_is_caught_by_the_next(audit: AuditLog) -> None:
    """Recomputing the edited event's own hash does not help: the next one no longer follows."""
    events = audit.record_many([keyed("k1", n) for n in range(5)])
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        query = sa.select(AuditEventRow).where(AuditEventRow.seq == events[2].seq)
        row = to_model(AuditEventRow, conn.execute(query).one())
        row.outcome = "removed"
        forged = event_hash(row.prev_hash, hashed_fields(row))
        conn.execute(
            sa.update(AuditEventRow)
            .where(AuditEventRow.seq == row.seq)
            .values(outcome="removed", hash=forged)
        )
    report = audit.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, events[3].seq)


@pytest.mark.parametrize("field", ["hash", "prev_hash", "seq", "chain", "chain_seq"])
def test_a_batch_cannot_be_handed_its_own_chain_fields(audit: AuditLog, field: str) -> None:
    """A caller cannot set an event's hash, link, seq or chain: the batch is refused whole."""
    audit.record(**keyed("k1"))
    before = (written(audit), heads(audit))
    forged: dict[str, Any] = {**keyed("k1", 2), field: "0" * 64 if "hash" in field else 1}
    with pytest.raises(TypeError, match=field):
        audit.record_many([keyed("k2"), forged])  # type: ignore[list-item]
    assert (written(audit), heads(audit)) == before


def test_a_batch_writes_its_consumer_events_in_its_transaction(database_url: str) -> None:
    """Each event of a batch that means a consumer event gets its outbox row, seq for seq."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    audit = AuditLog(engine, outbox=OutboxWriter([DRIFT]))
    found = [
        EventFields(step="drift", outcome="found", started_at=T0, api_key=key,
                    detail={"unknown": [f"s-{key}"], "vanished": []})
        for key in ("k1", "k2")
    ]  # fmt: skip
    events = audit.record_many([keyed("k0"), *found])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(OutboxRow.audit_seq, OutboxRow.event_type)).all()
    engine.dispose()
    assert sorted(rows) == [(events[1].seq, "secret.drift"), (events[2].seq, "secret.drift")]


@pytest.mark.postgres
def test_a_batch_whose_outbox_row_fails_leaves_no_event(postgres_url: str) -> None:
    """An outbox row the database refuses rolls its whole batch back: events, heads, rows."""
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    too_long = Route("x" * 300)  # endpoint is VARCHAR(200): the INSERT fails mid-transaction
    audit = AuditLog(engine, outbox=OutboxWriter([too_long]))
    audit.record(**keyed("k1"))
    before = (written(audit), heads(audit))
    drift = EventFields(step="drift", outcome="found", started_at=T0, api_key="k1",
                        detail={"unknown": ["s9"], "vanished": []})  # fmt: skip
    with pytest.raises(DatabaseError):
        audit.record_many([keyed("k2"), drift])
    assert (written(audit), heads(audit)) == before
    engine.dispose()


@pytest.mark.postgres
def test_racing_batches_singles_and_folds_on_postgres_leave_one_valid_chain(
    postgres_url: str,
) -> None:
    """Four writers at once, batches over the same keys in opposite orders (old and new heads),
    single appends and folds: none deadlocks or times out, and every chain verifies."""
    engine = db.make_engine(postgres_url, pool_size=8)
    db.upgrade(engine)
    audit = AuditLog(engine)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            start.wait()
            for round_ in range(6):
                keys = [f"k{round_ // 2}-{n:02d}" for n in range(20)]  # new keys every 2 rounds
                if worker % 2:
                    keys.reverse()
                audit.record_many([keyed(key, worker) for key in keys])
                audit.record(**keyed(keys[worker], worker))
                audit.fold()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    head = audit.fold()
    report = audit.verify_chain(anchor=head)
    assert report.ok, report.problem
    events = audit.events()
    assert report.checked == len(events)
    assert sum(1 for e in events if e.step != "chain.fold") == 4 * 6 * 21
    engine.dispose()


def test_runs_ending_together_each_return_anchored(database_url: str) -> None:
    """Runs that end at once may share a fold, yet each finish returns only once a head
    covering its run's end is anchored."""
    engine = db.make_engine(database_url, pool_size=8)
    db.upgrade(engine)
    anchored: list[Head] = []
    audit = AuditLog(engine, anchor=anchored.append)
    seen: dict[str, Head] = {}
    start = threading.Barrier(6)

    def run(key: str) -> None:
        started = audit.start_run(api_key=key, trigger="manual", actor="a", owner="o")
        start.wait()
        audit.finish_run(started.id, RunStatus.SUCCEEDED)
        seen[key] = anchored[-1]

    threads = [threading.Thread(target=run, args=(f"k{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    folds = [e for e in audit.events() if e.step == "chain.fold"]
    for key, head in seen.items():
        covering = [f for f in folds if f.hash == head.hash]
        assert covering, f"{key}: its anchored head is no fold"
        position = folds.index(covering[0])
        folded = [(f.detail or {})["heads"].get(key, [0])[0] for f in folds[: position + 1]]
        assert max(folded) == 2  # the key's events: run.start (1), run.end (2)
    assert audit.verify_chain(anchor=anchored[-1]).ok
    engine.dispose()
