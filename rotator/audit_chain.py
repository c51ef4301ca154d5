"""The hash chains under the audit log: hashing an event, appending it to its key's chain under
that chain's head lock, and folding every key's head into chain "".

An appender locks only its chain's row of ``audit_heads`` (issue 12), so appends to different
keys never wait for each other. ``rotator.audit.AuditLog`` is the public face over these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rotator.audit_records import FOLD_STEP, GENESIS, GLOBAL_CHAIN, Event, Head
from rotator.clock import iso, utcnow
from rotator.models import AuditEventRow, HeadRow

if TYPE_CHECKING:
    from rotator.events.outbox import OutboxWriter

_SEQUENCE: Final = "audit_events_seq_seq"  # PostgreSQL: seq for concurrent appenders
_HASHED = (
    "seq", "run_id", "api_key", "step", "outcome", "started_at", "finished_at", "actor",
    "secret_id", "request_id", "vault_version", "error", "detail",
)  # fmt: skip
_MOVE_HEAD = sa.text(
    "UPDATE audit_heads SET seq = :seq, hash = :hash, txid = :txid WHERE chain = :chain"
)
_MOVE_HEAD_PG = sa.text(
    "UPDATE audit_heads SET seq = :seq, hash = :hash, "
    "txid = pg_current_xact_id()::text::bigint WHERE chain = :chain"
)


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers: sorted-key JSON, datetimes as UTC ISO-8601 (µs)."""
    normal = {k: iso(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    return json.dumps(normal, sort_keys=True, separators=(",", ":")).encode()


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()


def hashed_fields(row: AuditEventRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _HASHED}


def append(conn: Connection, outbox: OutboxWriter | None, **fields: Any) -> Event:
    """Append one event to its key's chain (chain "" without a key) in ``conn``'s transaction;
    the consumer event, if an outbox is given, is written in the same transaction."""
    chain = fields.get("api_key") or GLOBAL_CHAIN
    chain_seq, prev_hash = lock_head(conn, chain)
    detail = fields.pop("detail", None)
    row = AuditEventRow(
        seq=next_seq(conn),
        chain=chain,
        chain_seq=chain_seq + 1,
        detail=json.dumps(detail, sort_keys=True) if detail is not None else None,
        prev_hash=prev_hash,
        **fields,
    )
    for name in ("started_at", "finished_at"):
        setattr(row, name, getattr(row, name).astimezone(UTC))
    row.hash = event_hash(prev_hash, hashed_fields(row))
    # Values as parameters, not .values(): the statement stays the same, so SQLAlchemy's
    # compiled cache serves it (half the CPU of an audit write; the chain's hot path).
    conn.execute(sa.insert(AuditEventRow), row_values(row))
    conn.execute(
        _MOVE_HEAD_PG if conn.dialect.name == "postgresql" else _MOVE_HEAD,
        {"chain": chain, "seq": row.chain_seq, "hash": row.hash, "txid": row.seq},
    )
    event = Event.from_row(row)
    if outbox is not None:
        outbox.write(conn, event)
    return event


def fold(conn: Connection, outbox: OutboxWriter | None) -> Head:
    """Record in chain "" the head of every key's chain that moved since the last fold; returns
    the new global head. One folder at a time (chain ""'s lock); appenders of keys go on."""
    lock_head(conn, GLOBAL_CHAIN)
    moved = conn.execute(
        sa.select(HeadRow.chain, HeadRow.seq, HeadRow.hash).where(
            HeadRow.chain != GLOBAL_CHAIN, HeadRow.seq > HeadRow.folded_seq
        )
    ).all()
    if moved:
        now = utcnow()
        append(
            conn,
            outbox,
            step=FOLD_STEP,
            outcome="ok",
            started_at=now,
            finished_at=now,
            detail={"heads": {chain: [seq, hash_] for chain, seq, hash_ in moved}},
        )
        conn.execute(
            sa.update(HeadRow)
            .where(HeadRow.chain == sa.bindparam("c"))
            .values(folded_seq=sa.bindparam("s")),
            [{"c": chain, "s": seq} for chain, seq, _ in moved],
        )
    return global_head(conn)


def global_head(conn: Connection) -> Head:
    """The end of chain "" (events about no key and the folds)."""
    query = sa.select(HeadRow.seq, HeadRow.hash).where(HeadRow.chain == GLOBAL_CHAIN)
    row = conn.execute(query).first()
    return Head(row[0], row[1]) if row else Head(0, GENESIS)


def lock_head(conn: Connection, chain: str) -> tuple[int, str]:
    """Lock ``chain``'s head row (made on first use) and return its (chain_seq, hash)."""
    query = sa.select(HeadRow.seq, HeadRow.hash).where(HeadRow.chain == chain).with_for_update()
    row = conn.execute(query).first()
    if row is None:
        insert = sa.text(
            "INSERT INTO audit_heads (chain, seq, hash, folded_seq, txid) "
            "VALUES (:chain, 0, :hash, 0, 0) ON CONFLICT (chain) DO NOTHING"
        )
        conn.execute(insert, {"chain": chain, "hash": GENESIS})
        row = conn.execute(query).one()
    return int(row[0]), str(row[1])


def next_seq(conn: Connection) -> int:
    """A global seq: from a sequence on PostgreSQL (appends of keys run in parallel); the next
    number on SQLite, whose writers BEGIN IMMEDIATE and so take turns."""
    if conn.dialect.name == "postgresql":
        return int(conn.execute(sa.text(f"SELECT nextval('{_SEQUENCE}')")).scalar_one())
    top = conn.execute(sa.select(sa.func.coalesce(sa.func.max(AuditEventRow.seq), 0)))
    return int(top.scalar_one()) + 1


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
