"""The chains' head rows (``audit_heads``) under the audit log: locking them, making them on
first use, moving them to a chain's newest event, and drawing the events' global seqs.

Everyone takes head locks in one order, so no two appenders ever wait for each other in a
cycle (issue 12: several daemons and CLIs append to one PostgreSQL at once): a transaction's
missing heads are made first (``ON CONFLICT DO NOTHING``, in order), then all its heads are
locked in chain order ("" first; bytewise, as Python sorts: PostgreSQL's "C" collation), and
``audit_chain.fold`` takes "" and then key heads in that same order. A batch of many chains on
PostgreSQL is one statement per phase (arrays, not one bind per chain); SQLite's writers take
the whole database (BEGIN IMMEDIATE), so there the order is moot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rotator.audit_records import GENESIS
from rotator.errors import DatabaseError
from rotator.models import AuditEventRow, HeadRow

Heads = dict[str, tuple[int, str]]  # chain -> (chain_seq, hash) of its newest event

_NEXTVAL: Final = sa.text("SELECT nextval('audit_events_seq_seq')")
_NEXTVALS: Final = sa.text("SELECT nextval('audit_events_seq_seq') FROM generate_series(1, :n)")
# One chain (every append of a rotation): lock the head, then draw the events' seqs (after the
# lock, so a chain's seqs ascend), in one round trip instead of two.
_LOCK_ONE_PG: Final = sa.text(
    "WITH head AS MATERIALIZED (SELECT chain, seq, hash FROM audit_heads WHERE chain = :chain "
    "FOR UPDATE) SELECT chain, seq, hash, nextval('audit_events_seq_seq') "
    "FROM head, generate_series(1, :n)"
)
_NEW_HEAD: Final = sa.text(
    "INSERT INTO audit_heads (chain, seq, hash, folded_seq, txid) "
    "VALUES (:chain, 0, :hash, 0, 0) ON CONFLICT (chain) DO NOTHING"
)
_NEW_HEADS_PG: Final = sa.text(
    "INSERT INTO audit_heads (chain, seq, hash, folded_seq, txid) "
    "SELECT chain, 0, :hash, 0, 0 FROM unnest(CAST(:chains AS varchar[])) AS chain "
    'ORDER BY chain COLLATE "C" ON CONFLICT (chain) DO NOTHING'
)
_LOCK_MANY_PG: Final = sa.text(
    "SELECT chain, seq, hash FROM audit_heads WHERE chain = ANY(CAST(:chains AS varchar[])) "
    'ORDER BY chain COLLATE "C" FOR UPDATE'
)
# The fold (chain "" locked already): every key head that moved since the last fold, locked in
# the one order, marked folded at the seq it is recorded at; one statement instead of two.
_MARK_FOLDED_PG: Final = sa.text(
    "WITH moved AS MATERIALIZED (SELECT chain FROM audit_heads "
    "WHERE chain <> '' AND seq > folded_seq ORDER BY chain COLLATE \"C\" FOR UPDATE) "
    "UPDATE audit_heads AS h SET folded_seq = h.seq FROM moved WHERE h.chain = moved.chain "
    "RETURNING h.chain, h.seq, h.hash"
)
_MOVE_HEAD: Final = sa.text(
    "UPDATE audit_heads SET seq = :seq, hash = :hash, txid = :txid WHERE chain = :chain"
)
_MOVE_HEAD_PG: Final = sa.text(
    "UPDATE audit_heads SET seq = :seq, hash = :hash, "
    "txid = pg_current_xact_id()::text::bigint WHERE chain = :chain"
)
_MOVE_HEADS_PG: Final = sa.text(  # every row is locked already (lock_heads): no new waits
    "UPDATE audit_heads AS h SET seq = v.seq, hash = v.hash, "
    "txid = pg_current_xact_id()::text::bigint "
    "FROM unnest(CAST(:chains AS varchar[]), CAST(:seqs AS integer[]), "
    "CAST(:hashes AS varchar[])) AS v(chain, seq, hash) WHERE h.chain = v.chain"
)


def locked(conn: Connection, chains: Sequence[str], count: int) -> tuple[Heads, list[int]]:
    """The heads of ``chains`` (sorted), locked, and ``count`` new seqs drawn after the locks."""
    if len(chains) == 1 and _postgres(conn):
        rows = conn.execute(_LOCK_ONE_PG, {"chain": chains[0], "n": count}).all()
        if rows:  # else: the chain's first event; its head is made below
            chain, seq, hash_, _ = rows[0]
            return {str(chain): (int(seq), str(hash_))}, sorted(int(row[3]) for row in rows)
    return lock_heads(conn, chains), next_seqs(conn, count)


def lock_heads(conn: Connection, chains: Sequence[str]) -> Heads:
    """Lock the head rows of ``chains`` (sorted; made on first use): the module's one order.
    One chain, the common case, is one statement when its head exists."""
    if len(chains) == 1:
        found = _lock(conn, chains)
        if found:
            return found
        conn.execute(_NEW_HEAD, {"chain": chains[0], "hash": GENESIS})
    elif _postgres(conn):
        conn.execute(_NEW_HEADS_PG, {"chains": list(chains), "hash": GENESIS})
    else:
        existing = conn.execute(sa.select(HeadRow.chain).where(HeadRow.chain.in_(chains)))
        have = set(existing.scalars())
        missing = [{"chain": chain, "hash": GENESIS} for chain in chains if chain not in have]
        if missing:
            conn.execute(_NEW_HEAD, missing)
    found = _lock(conn, chains)
    if len(found) != len(chains):  # heads are never deleted: only a broken database gets here
        raise DatabaseError("cannot lock the audit chains' heads: some are missing")
    return found


def _lock(conn: Connection, chains: Sequence[str]) -> Heads:
    if len(chains) > 1 and _postgres(conn):
        rows = conn.execute(_LOCK_MANY_PG, {"chains": list(chains)})
    else:  # SQLite has no row locks: BEGIN IMMEDIATE took the whole database already
        query = sa.select(HeadRow.chain, HeadRow.seq, HeadRow.hash).with_for_update()
        rows = conn.execute(query.where(HeadRow.chain.in_(chains)))
    return {str(chain): (int(seq), str(hash_)) for chain, seq, hash_ in rows}


def mark_folded(conn: Connection) -> list[tuple[str, int, str]] | None:
    """PostgreSQL: lock every key head that moved since the last fold (in chain order), set
    its ``folded_seq`` to its seq, and return (chain, seq, hash) of each, sorted by chain;
    None elsewhere (SQLite: the caller reads, then marks)."""
    if not _postgres(conn):
        return None
    moved = [(str(c), int(s), str(h)) for c, s, h in conn.execute(_MARK_FOLDED_PG)]
    return sorted(moved)


def move_heads(conn: Connection, chains: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Point each chain's head at its newest row in ``rows`` (the rows just appended)."""
    last = {row["chain"]: row for row in rows}
    heads = [last[chain] for chain in chains]
    if len(heads) > 1 and _postgres(conn):
        arrays = {
            "chains": [h["chain"] for h in heads],
            "seqs": [h["chain_seq"] for h in heads],
            "hashes": [h["hash"] for h in heads],
        }
        conn.execute(_MOVE_HEADS_PG, arrays)
        return
    moves = [
        {"chain": h["chain"], "seq": h["chain_seq"], "hash": h["hash"], "txid": h["seq"]}
        for h in heads
    ]
    statement = _MOVE_HEAD_PG if _postgres(conn) else _MOVE_HEAD
    conn.execute(statement, moves[0] if len(moves) == 1 else moves)  # one: no executemany


def next_seqs(conn: Connection, count: int) -> list[int]:
    """``count`` new global seqs, ascending: from a sequence on PostgreSQL (appends of keys run
    in parallel); the next numbers on SQLite, whose writers BEGIN IMMEDIATE and take turns."""
    if _postgres(conn):
        if count == 1:
            return [int(conn.execute(_NEXTVAL).scalar_one())]
        return sorted(int(value) for value in conn.execute(_NEXTVALS, {"n": count}).scalars())
    top = conn.execute(sa.select(sa.func.coalesce(sa.func.max(AuditEventRow.seq), 0)))
    first = int(top.scalar_one()) + 1
    return list(range(first, first + count))


def _postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"
