"""The drift watch's I/O: list each key's secrets once per ``watch.interval`` (keys spread over
the interval, every call through the shared rate limiter) and compare with what rotator knows
(``rotator.drift``). On drift: an audit event (``drift``, which the outbox turns into a
``secret.drift`` consumer event), an alert, and with ``watch.on_drift: emergency`` an emergency
rotation of the key at once.

A key with a rotation in flight is never judged: the lease is checked before and after the
reads, and Vault is read before and after Vonage's list, so a rotation that ran in between (a
new secret created, or promoted) shows as a changed record and the key is looked at next tick.
"""

from __future__ import annotations

import threading
from datetime import datetime

import structlog

from rotator.daemon.work import ACTOR, Context, Work
from rotator.drift import Drift, Known, compare, first_watch
from rotator.errors import RotatorError
from rotator.lease import owner_is_dead
from rotator.secret import Credentials
from rotator.vault import CurrentRecord, RotationState

log = structlog.get_logger("rotator.daemon")

DRIFT_STEP = "drift"


class Watch:
    def __init__(self, ctx: Context, work: Work) -> None:
        self._ctx = ctx
        self._work = work
        self._next: dict[str, datetime] = {}  # each key's next watch
        self._reported: dict[str, tuple[tuple[str, ...], str | None]] = {}  # what was reported
        self._lock = threading.Lock()  # one tick at a time

    def tick(self) -> None:
        """Watch every key whose turn has come (the job runs every ``drift.watch_tick``)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            self._tick()
        finally:
            self._lock.release()

    def _tick(self) -> None:
        ctx = self._ctx
        interval = ctx.config.watch.interval
        keys = ctx.keys.names()
        ctx.metrics.keys_watched.set(len(keys))
        for gone in set(self._next) - set(keys):
            del self._next[gone]
        admin: Credentials | None = None
        for key in keys:
            now = ctx.clock()
            if ctx.stop.is_set():
                return
            seen = ctx.keys.first_seen(key) or now
            if self._next.setdefault(key, first_watch(key, seen, interval)) > now:
                continue
            try:
                admin = admin or ctx.services.vault.credentials(ctx.primary)
                judged = self.watch(key, admin)
            except RotatorError as exc:
                log.warning("watch_failed", api_key=key, error=str(exc))
                judged = True  # try again next interval, not every tick
            if judged:
                self._next[key] = now + interval

    def watch(self, key: str, admin: Credentials) -> bool:
        """Compare one key; False when it could not be judged now (a rotation in flight)."""
        ctx = self._ctx
        if self._busy(key):
            return False
        vault = ctx.services.vault
        record, state = vault.read_current(key), vault.read_state(key)
        listed = [s.id for s in ctx.services.vonage.list_secrets(admin, key).secrets]
        again = vault.read_current(key), vault.read_state(key)
        if self._busy(key) or _version(record, state) != _version(*again):
            return False
        ctx.metrics.last_watch.labels(api_key=key).set(ctx.clock().timestamp())
        drift = compare(key, listed, _known(record, state))
        if not drift.judged:
            return True
        signature = (drift.unknown, drift.vanished)
        if not drift.found:
            self._reported.pop(key, None)
        elif self._reported.get(key) != signature:
            self._reported[key] = signature
            self._report(drift)
        return True

    def _busy(self, key: str) -> bool:
        """A rotation is in flight (or a crash left one unfinished): not drift."""
        ctx = self._ctx
        if ctx.keys.is_running(key):
            return True
        info = ctx.services.leases.holder(key)
        if info is not None and info.active and not owner_is_dead(info.owner):
            return True
        return bool(ctx.services.audit.unfinished_runs(key))

    def _report(self, drift: Drift) -> None:
        ctx = self._ctx
        key, action = drift.api_key, ctx.config.watch.on_drift
        log.warning("drift_found", api_key=key, detail=drift.describe(), action=action)
        if drift.unknown:
            ctx.metrics.drift_found.labels(api_key=key, kind="unknown").inc()
        if drift.vanished:
            ctx.metrics.drift_found.labels(api_key=key, kind="vanished").inc()
        ctx.services.audit.record(
            step=DRIFT_STEP,
            outcome="found",
            started_at=ctx.clock(),
            api_key=key,
            actor=ACTOR,
            secret_id=drift.unknown[0] if drift.unknown else drift.vanished,
            detail={"unknown": list(drift.unknown), "vanished": drift.vanished, "action": action},
        )
        then = "; rotating it now (emergency)" if action == "emergency" else ""
        self._work.alert("drift", key, f"{drift.describe()}{then}")
        if action == "emergency":
            self._work.emergency(key, f"drift: {drift.describe()}")


def _known(record: CurrentRecord | None, state: RotationState) -> Known:
    pending = state.pending
    return Known(
        current_id=record.secret_id if record else None,
        pending_id=pending.secret_id if pending else None,
        pending_unidentified=pending is not None and pending.secret_id is None,
        previous_id=state.previous.secret_id if state.previous else None,
        adopted_id=state.adopted_id,
    )


def _version(record: CurrentRecord | None, state: RotationState) -> tuple[int, int]:
    return (record.version if record else 0, state.version)


__all__ = ["DRIFT_STEP", "Watch"]
