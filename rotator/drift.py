"""Drift: a key's secrets on Vonage disagree with what rotator knows. Pure, tested without I/O.

A secret rotator did not create means a person or an attacker added one (it also takes the
second slot and blocks the next rotation); a current secret gone from Vonage means someone
revoked what applications use. rotator knows: Vault's current record, and its own state
(pending, previous, adopted). A key with no baseline (no secret id recorded anywhere) cannot be
judged; one with a pending secret whose id is not yet recorded is mid-run (the lease says so
too) and is not judged either.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from rotator.scheduling import jitter_offset


@dataclass(frozen=True, kw_only=True)
class Known:
    """The secret ids rotator knows for one key."""

    current_id: str | None  # Vault's current record
    pending_id: str | None = None
    pending_unidentified: bool = False  # a pending secret staged, its Vonage id not yet known
    previous_id: str | None = None
    adopted_id: str | None = None

    @property
    def ids(self) -> frozenset[str]:
        found = (self.current_id, self.pending_id, self.previous_id, self.adopted_id)
        return frozenset(i for i in found if i)


@dataclass(frozen=True, kw_only=True)
class Drift:
    """What one comparison found: unknown secrets and/or a vanished current secret."""

    api_key: str
    unknown: tuple[str, ...] = ()
    vanished: str | None = None  # the current secret id no longer on Vonage
    judged: bool = True  # False: nothing to compare against (no baseline, or mid-run)

    @property
    def found(self) -> bool:
        return bool(self.unknown) or self.vanished is not None

    def describe(self) -> str:
        parts = []
        if self.unknown:
            parts.append(f"unknown secret(s) {', '.join(self.unknown)} on Vonage")
        if self.vanished:
            parts.append(f"current secret {self.vanished} is gone from Vonage")
        return "; ".join(parts) or "no drift"


def compare(api_key: str, listed: Collection[str], known: Known) -> Drift:
    """Compare the ids Vonage lists for ``api_key`` with those rotator knows."""
    if known.pending_unidentified or not (known.current_id or known.adopted_id):
        return Drift(api_key=api_key, judged=False)
    unknown = tuple(sorted(i for i in listed if i not in known.ids))
    vanished = known.current_id if known.current_id and known.current_id not in listed else None
    return Drift(api_key=api_key, unknown=unknown, vanished=vanished)


def first_watch(api_key: str, first_seen: datetime, interval: timedelta) -> datetime:
    """When a key is first watched: a stable offset within one interval spreads the fleet."""
    return first_seen + jitter_offset(api_key, interval)


def watch_tick(interval: timedelta) -> timedelta:
    """How often the watch job looks for keys to watch: often enough to keep the spread."""
    return min(max(interval / 20, timedelta(seconds=0.5)), timedelta(seconds=30))


__all__ = ["Drift", "Known", "compare", "first_watch", "watch_tick"]
