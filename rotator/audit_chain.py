"""The hash chains under the audit log: hashing an event, appending events to their keys' chains
under those chains' head locks, and folding every key's head into chain "".

An appender locks only its chains' rows of ``audit_heads`` (issue 12), so appends to different
keys never wait for each other. ``append_many`` writes a batch (the daemon's discovery events,
say) with one lock and one update of each chain's head: exactly the rows one ``append`` per
event would write. ``rotator.audit.AuditLog`` is the public face over these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rotator import audit_heads
from rotator.audit_records import FOLD_STEP, GENESIS, GLOBAL_CHAIN, Event, Head
from rotator.clock import iso, utcnow
from rotator.models import AuditEventRow, HeadRow

if TYPE_CHECKING:
    from rotator.events.outbox import OutboxWriter

_HASHED = (
    "seq", "run_id", "api_key", "step", "outcome", "started_at", "finished_at", "actor",
    "secret_id", "request_id", "vault_version", "error", "detail",
)  # fmt: skip
_COLUMNS: Final = tuple(c.key for c in AuditEventRow.__table__.columns)
_GIVEN: Final = frozenset(_COLUMNS) - {"seq", "chain", "chain_seq", "prev_hash", "hash"}
_INSERT: Final = sa.insert(AuditEventRow)
_EVENTS: Final = AuditEventRow.__table__
_HEADS: Final = HeadRow.__table__
# WITH appended AS (INSERT INTO audit_events ...) UPDATE audit_heads ...: an event and its
# chain's head in one round trip. Text with typed binds, not a Core statement: a rotation runs
# it nine times, and building the cache key of a 17-column INSERT in a CTE cost more CPU than
# the statement's round trip.
_APPEND_ONE_PG: Final = sa.text(
    "WITH appended AS (INSERT INTO audit_events (seq, chain, chain_seq, run_id, api_key, step, "
    "outcome, started_at, finished_at, actor, secret_id, request_id, vault_version, error, "
    "detail, prev_hash, hash) VALUES (:e_seq, :e_chain, :e_chain_seq, :e_run_id, :e_api_key, "
    ":e_step, :e_outcome, :e_started_at, :e_finished_at, :e_actor, :e_secret_id, :e_request_id, "
    ":e_vault_version, :e_error, :e_detail, :e_prev_hash, :e_hash)) "
    "UPDATE audit_heads SET seq = :e_chain_seq, hash = :e_hash, "
    "txid = pg_current_xact_id()::text::bigint WHERE chain = :e_chain"
).bindparams(*(sa.bindparam(f"e_{c.key}", type_=c.type) for c in _EVENTS.c))


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers: sorted-key JSON, datetimes as UTC ISO-8601 (µs)."""
    normal = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    return json.dumps(normal, sort_keys=True, separators=(",", ":")).encode()


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()


def hashed_fields(row: Any) -> dict[str, Any]:
    """What an event's hash covers, from a row (or a mapping of its columns)."""
    if isinstance(row, Mapping):
        return {name: row[name] for name in _HASHED}
    return {name: getattr(row, name) for name in _HASHED}


def chain_of(fields: Mapping[str, Any]) -> str:
    """The chain an event joins: its api key's, or "" for an event about no key."""
    return str(fields.get("api_key") or GLOBAL_CHAIN)


def append(conn: Connection, outbox: OutboxWriter | None, **fields: Any) -> Event:
    """Append one event to its key's chain (chain "" without a key) in ``conn``'s transaction;
    the consumer event, if an outbox is given, is written in the same transaction."""
    return append_many(conn, outbox, [fields])[0]


def append_many(
    conn: Connection, outbox: OutboxWriter | None, batch: Sequence[Mapping[str, Any]]
) -> list[Event]:
    """Append ``batch`` in its order, in ``conn``'s transaction: the very rows (seqs, chain_seqs,
    hashes) one ``append`` per event would write, under one lock and one update of each chain's
    head, in one multi-row INSERT. Each event's outbox rows go in the same transaction. Heads
    are locked in one order (``lock_heads``), so batches never deadlock; one call per
    transaction (a second would take locks out of that order)."""
    if not batch:
        return []
    chains = sorted({chain_of(fields) for fields in batch})
    heads, seqs = audit_heads.locked(conn, chains, len(batch))
    return _append_locked(conn, outbox, chains, heads, seqs, batch)


def _append_locked(
    conn: Connection,
    outbox: OutboxWriter | None,
    chains: Sequence[str],
    heads: dict[str, tuple[int, str]],
    seqs: Sequence[int],
    batch: Sequence[Mapping[str, Any]],
) -> list[Event]:
    """``append_many`` once ``chains``' heads are locked and the batch's seqs drawn."""
    rows = [_chained(heads, seq, fields) for seq, fields in zip(seqs, batch, strict=True)]
    _store(conn, chains, rows)
    events = [Event.from_values(row) for row in rows]
    if outbox is not None:
        for event in events:
            outbox.write(conn, event)
    return events


def _store(conn: Connection, chains: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` and move their chains' heads to them: on PostgreSQL one statement per
    event of one chain (a rotation's appends: one or two events), else the INSERT and then the
    heads' UPDATE."""
    if len(chains) == 1 and len(rows) <= 2 and conn.dialect.name == "postgresql":
        for row in rows:  # in order: the head ends at the last
            conn.execute(_APPEND_ONE_PG, {f"e_{name}": value for name, value in row.items()})
        return
    conn.execute(_INSERT, rows)  # values as parameters: one statement, compiled once
    audit_heads.move_heads(conn, chains, rows)


def _chained(
    heads: dict[str, tuple[int, str]], seq: int, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """The row of one event appended after ``heads[its chain]``, which then moves to it."""
    unknown = set(fields) - _GIVEN
    if unknown:
        raise TypeError(f"not an audit event field: {', '.join(sorted(unknown))}")
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)
    row.update(fields)
    chain = chain_of(fields)
    chain_seq, prev_hash = heads[chain]
    detail = fields.get("detail")
    row.update(
        seq=seq,
        chain=chain,
        chain_seq=chain_seq + 1,
        detail=json.dumps(detail, sort_keys=True) if detail is not None else None,
        prev_hash=prev_hash,
        started_at=row["started_at"].astimezone(UTC),
        finished_at=row["finished_at"].astimezone(UTC),
    )
    row["hash"] = event_hash(prev_hash, hashed_fields(row))
    heads[chain] = (row["chain_seq"], row["hash"])
    return row


def fold(conn: Connection, outbox: OutboxWriter | None) -> Head:
    """Record in chain "" the head of every key's chain that moved since the last fold; returns
    the new global head. One folder at a time (chain ""'s lock); appenders of keys go on. The
    key heads' rows are locked in chain order, the order every appender locks them in."""
    heads, seqs = audit_heads.locked(conn, [GLOBAL_CHAIN], 1)  # "" first; the fold's seq drawn
    moved = audit_heads.mark_folded(conn)
    if moved is None:  # SQLite: read what moved, mark it after the event (bytewise chain order)
        moved = sorted(
            (str(c), int(s), str(h))
            for c, s, h in conn.execute(
                sa.select(HeadRow.chain, HeadRow.seq, HeadRow.hash).where(
                    HeadRow.chain != GLOBAL_CHAIN, HeadRow.seq > HeadRow.folded_seq
                )
            )
        )
        marked = False
    else:
        marked = True
    head = Head(*heads[GLOBAL_CHAIN])
    if not moved:
        return head  # a seq drawn and unused (PostgreSQL): a gap, as a rolled-back append leaves
    now = utcnow()
    fields = {
        "step": FOLD_STEP,
        "outcome": "ok",
        "started_at": now,
        "finished_at": now,
        "detail": {"heads": {chain: [seq, hash_] for chain, seq, hash_ in moved}},
    }
    [event] = _append_locked(conn, outbox, [GLOBAL_CHAIN], heads, seqs, [fields])
    if not marked:
        conn.execute(
            sa.update(HeadRow)
            .where(HeadRow.chain == sa.bindparam("c"))
            .values(folded_seq=sa.bindparam("s")),
            [{"c": chain, "s": seq} for chain, seq, _ in moved],
        )
    return Head(head.chain_seq + 1, event.hash)  # chain "" is locked: nothing came between


def global_head(conn: Connection) -> Head:
    """The end of chain "" (events about no key and the folds)."""
    query = sa.select(HeadRow.seq, HeadRow.hash).where(HeadRow.chain == GLOBAL_CHAIN)
    row = conn.execute(query).first()
    return Head(row[0], row[1]) if row else Head(0, GENESIS)


def lock_head(conn: Connection, chain: str) -> tuple[int, str]:
    """Lock ``chain``'s head row (made on first use) and return its (chain_seq, hash)."""
    return audit_heads.lock_heads(conn, [chain])[chain]


def row_values(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in type(row).__table__.columns}


def to_model(model: type[Any], raw: Any) -> Any:
    """A Core result row of ``select(Model)`` turned into a detached model instance."""
    mapping = raw._mapping
    if len(mapping) == 1:
        only = next(iter(mapping.values()))
        if isinstance(only, model):
            return only
    return model(**{c.key: mapping[c.key] for c in model.__table__.columns})
