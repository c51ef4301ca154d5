"""The audit log's records: runs, events, the chain's head and a verification report, and the
names of the steps the log itself writes. Plain frozen values; ``rotator.audit`` re-exports them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any, Final, Required, TypedDict

from rotator.clock import iso, iso_or_none

GENESIS = "0" * 64
GLOBAL_CHAIN: Final = ""  # events about no key, and the folds of every key's head
FOLD_STEP: Final = "chain.fold"
RUN_STEPS: Final = ("run.start", "run.update", "run.status", "run.end")


class RunStatus(StrEnum):
    RUNNING = "running"
    AWAITING_REVOKE = "awaiting_revoke"  # new secret current; old one revoked after grace
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in {RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK, RunStatus.FAILED}


class Trigger(StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    EMERGENCY = "emergency"


class Unset(Enum):
    """A keyword left out, as distinct from one set to None."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET
ALERT_STEP: Final = "alert"  # the step of an alert's audit event (the dedup memory of notify)
DISCOVERY_STEP: Final = "discovery"  # the step of a managed-set change (added/removed)


_RUN_COLUMNS: Final = (
    "id", "api_key", "trigger", "reason", "actor", "status", "emergency", "old_secret_id",
    "new_secret_id", "started_at", "finished_at", "revoke_after", "error", "owner",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Run:
    id: str
    api_key: str
    trigger: str
    reason: str | None
    actor: str
    status: RunStatus
    emergency: bool
    old_secret_id: str | None
    new_secret_id: str | None
    started_at: datetime
    finished_at: datetime | None
    revoke_after: datetime | None
    error: str | None
    owner: str

    @classmethod
    def from_row(cls, row: Any) -> Run:
        """From a ``RunRow``, or a result row of the runs table's columns."""
        return cls.from_values({name: getattr(row, name) for name in _RUN_COLUMNS})

    @classmethod
    def from_values(cls, row: Mapping[str, Any]) -> Run:
        """From the runs table's column values."""
        values = {name: row[name] for name in _RUN_COLUMNS}
        values.update(status=RunStatus(row["status"]), emergency=bool(row["emergency"]))
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "api_key": self.api_key,
            "trigger": self.trigger,
            "reason": self.reason,
            "actor": self.actor,
            "status": str(self.status),
            "emergency": self.emergency,
            "old_secret_id": self.old_secret_id,
            "new_secret_id": self.new_secret_id,
            "started_at": iso(self.started_at),
            "finished_at": iso_or_none(self.finished_at),
            "revoke_after": iso_or_none(self.revoke_after),
            "error": self.error,
        }


_EVENT_COLUMNS: Final = (
    "seq", "run_id", "api_key", "step", "outcome", "started_at", "finished_at", "actor",
    "secret_id", "request_id", "vault_version", "error", "detail", "prev_hash", "hash",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Event:
    seq: int
    run_id: str | None
    api_key: str | None
    step: str
    outcome: str
    started_at: datetime
    finished_at: datetime
    actor: str | None
    secret_id: str | None
    request_id: str | None
    vault_version: int | None
    error: str | None
    detail: dict[str, Any] | None
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: Any) -> Event:
        """From an ``AuditEventRow``, or a result row of the events table's columns."""
        return cls.from_values({name: getattr(row, name) for name in _EVENT_COLUMNS})

    @classmethod
    def from_values(cls, row: Mapping[str, Any]) -> Event:
        """From an event's column values (``detail`` as stored: JSON text)."""
        values = {name: row[name] for name in _EVENT_COLUMNS}
        values["detail"] = json.loads(row["detail"]) if row["detail"] else None
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run_id": self.run_id,
            "api_key": self.api_key,
            "step": self.step,
            "outcome": self.outcome,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "actor": self.actor,
            "secret_id": self.secret_id,
            "request_id": self.request_id,
            "vault_version": self.vault_version,
            "error": self.error,
            "detail": self.detail,
            "hash": self.hash,
        }


class EventFields(TypedDict, total=False):
    """What a caller says about one event (``AuditLog.record``/``record_many``); the chain adds
    seq, chain_seq and the hashes."""

    step: Required[str]
    outcome: Required[str]
    started_at: Required[datetime]
    run_id: str | None
    api_key: str | None
    finished_at: datetime | None  # now, when left out
    actor: str | None
    secret_id: str | None
    request_id: str | None
    vault_version: int | None
    error: str | None
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class Head:
    """Where chain "" ends: what the Vault anchor and ``--expect-head`` hold."""

    chain_seq: int
    hash: str

    def to_data(self) -> dict[str, Any]:
        return {"chain_seq": self.chain_seq, "hash": self.hash}


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head: str = GENESIS  # the last good hash: keep a copy elsewhere to detect a rewritten chain
