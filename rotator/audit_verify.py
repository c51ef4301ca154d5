"""``audit verify``: recompute every chain of the audit log and check everything that points into
it, so an edit, a deletion, a reordering or a truncation anywhere is reported.

- each chain (one per key, and "") runs ``chain_seq`` 1, 2, ... with every ``prev_hash`` the hash
  before it and every ``hash`` recomputed from the row (``rotator.audit_chain.event_hash``);
- every fold in chain "" names (key, chain_seq, hash) triples that must still be there;
- ``audit_heads`` ends each chain where its events end (a deleted tail);
- the Vault anchor and ``--expect-head`` name a point of chain "" that must be there (a deleted
  tail of chain "", or every hash recomputed);
- every run row equals the run derived from its chained events (an edited status, actor, reason,
  error or start).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from rotator.audit_chain import event_hash, hashed_fields, to_model
from rotator.audit_records import (
    FOLD_STEP,
    GENESIS,
    GLOBAL_CHAIN,
    RUN_STEPS,
    ChainReport,
    Head,
    RunStatus,
)
from rotator.clock import parse
from rotator.models import AuditEventRow, HeadRow, RunRow

RUN_FIELDS = ("api_key", "trigger", "reason", "actor", "status", "emergency", "old_secret_id",
              "new_secret_id", "started_at", "finished_at", "revoke_after", "error")  # fmt: skip


class Broken(Exception):
    """The first problem found: becomes a failed ``ChainReport``."""

    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq, self.problem = seq, problem


class _Walk:
    """State of one pass over every event, chain by chain."""

    def __init__(self) -> None:
        self.checked = 0
        self.ends: dict[str, tuple[int, str]] = {}  # chain -> (chain_seq, hash) of its last event
        self.hashes: dict[str, int] = {}  # every hash of chain "" -> its chain_seq
        self.folded: dict[tuple[str, int], str] = {}  # (chain, chain_seq) -> hash, from folds
        self.runs: dict[str, dict[str, Any]] = {}

    def chain(self, rows: Iterable[Any]) -> None:
        chain, expected, prev = None, 1, GENESIS
        for raw in rows:
            row = to_model(AuditEventRow, raw)
            if row.chain != chain:
                chain, expected, prev = row.chain, 1, GENESIS
            self.event(row, expected, prev)
            expected, prev = expected + 1, row.hash
            self.ends[row.chain] = (row.chain_seq, row.hash)

    def event(self, row: AuditEventRow, expected: int, prev: str) -> None:
        where = f"row {row.seq}" + (f" (key {row.chain})" if row.chain else "")
        if row.chain_seq != expected:
            raise Broken(row.seq, f"{where}: event {expected} of its chain is missing")
        if row.prev_hash != prev:
            raise Broken(row.seq, f"{where} does not follow the event before it "
                         "(deleted, inserted or reordered)")  # fmt: skip
        if event_hash(prev, hashed_fields(row)) != row.hash:
            raise Broken(row.seq, f"row {row.seq} was altered")
        folded = self.folded.pop((row.chain, row.chain_seq), None)
        if folded is not None and folded != row.hash:
            raise Broken(row.seq, f"{where} is not the event the global chain recorded")
        if row.chain == GLOBAL_CHAIN:
            self.hashes[row.hash] = row.chain_seq
            if row.step == FOLD_STEP and row.detail:
                heads = json.loads(row.detail).get("heads", {})
                for key, (seq, hash_) in heads.items():
                    self.folded[(key, int(seq))] = str(hash_)
        if row.run_id and row.step in RUN_STEPS:
            _derive(self.runs, row)
        self.checked += 1


def verify(conn: Connection, *, anchor: Head | None, expect_head: str | None) -> ChainReport:
    walk = _Walk()
    try:
        order = (AuditEventRow.chain_seq,)
        query = sa.select(AuditEventRow).execution_options(yield_per=1000)
        walk.chain(conn.execute(query.where(AuditEventRow.chain == GLOBAL_CHAIN).order_by(*order)))
        others = query.where(AuditEventRow.chain != GLOBAL_CHAIN)
        walk.chain(conn.execute(others.order_by(AuditEventRow.chain, *order)))
        _check_folds(walk)
        _check_heads(conn, walk)
        head = Head(*walk.ends.get(GLOBAL_CHAIN, (0, GENESIS)))
        _check_anchor(walk, anchor, expect_head)
        _check_runs(conn, walk)
    except Broken as broken:
        return ChainReport(False, walk.checked, broken.seq, broken.problem)
    return ChainReport(True, walk.checked, head=head.hash)


def _check_folds(walk: _Walk) -> None:
    if walk.folded:
        chain, seq = min(walk.folded)
        raise Broken(None, f"event {seq} of key {chain}, recorded by the global chain, is missing")


def _check_heads(conn: Connection, walk: _Walk) -> None:
    heads = {
        r[0]: (r[1], r[2])
        for r in conn.execute(sa.select(HeadRow.chain, HeadRow.seq, HeadRow.hash))
    }
    for chain in sorted(set(heads) | set(walk.ends)):
        name = f"key {chain}" if chain else "the global chain"
        if heads.get(chain, (0, GENESIS)) != walk.ends.get(chain, (0, GENESIS)):
            raise Broken(None, f"{name} does not end where its head says (events deleted)")


def _check_anchor(walk: _Walk, anchor: Head | None, expect_head: str | None) -> None:
    if anchor is not None and walk.hashes.get(anchor.hash) != anchor.chain_seq:
        at = f"event {anchor.chain_seq} of the global chain, {anchor.hash[:16]}..."
        raise Broken(None, f"the anchored head ({at}) is not in the log: deleted or rewritten")
    if expect_head is not None and expect_head not in walk.hashes:
        raise Broken(None, f"the expected head {expect_head[:16]}... is not in the log")


def _derive(runs: dict[str, dict[str, Any]], row: AuditEventRow) -> None:
    """Fold one run event into the run it describes (what the run row must say)."""
    detail = json.loads(row.detail) if row.detail else {}
    run = runs.setdefault(row.run_id or "", {})
    if row.step == "run.start":
        run.update(api_key=row.api_key, trigger=detail.get("trigger"), reason=detail.get("reason"),
                   actor=row.actor, status=RunStatus.RUNNING.value,
                   emergency=int(bool(detail.get("emergency"))), old_secret_id=None,
                   new_secret_id=None, started_at=row.started_at, finished_at=None,
                   revoke_after=None, error=None)  # fmt: skip
    elif row.step == "run.update":
        run.update({k: v for k, v in detail.items() if k in RUN_FIELDS})
    else:
        after = detail.get("revoke_after")
        run.update(status=row.outcome, error=row.error,
                   revoke_after=parse(after) if after else None,
                   old_secret_id=detail.get("old_secret_id"),
                   new_secret_id=detail.get("new_secret_id"))  # fmt: skip
        if row.step == "run.end":
            run["finished_at"] = row.finished_at


def _check_runs(conn: Connection, walk: _Walk) -> None:
    seen = set()
    for raw in conn.execute(sa.select(RunRow).order_by(RunRow.started_at, RunRow.id)):
        row = to_model(RunRow, raw)
        seen.add(row.id)
        derived = walk.runs.get(row.id)
        if derived is None or "started_at" not in derived:
            raise Broken(None, f"run {row.id} has no chained start event (inserted)")
        for name in RUN_FIELDS:
            if getattr(row, name) == derived.get(name):
                continue
            raise Broken(None, f"run {row.id} was edited: its {name} differs from its events")
    missing = sorted(set(walk.runs) - seen)
    if missing:
        raise Broken(None, f"run {missing[0]} has chained events but no run row (deleted)")
