"""What the control API asks of the daemon, done the CLI's way: the same ``Rotator.rotate``
(lease, audit, events), the same pause rule, the same ``Holds``, on the daemon's rotation pool.

A rotate request waits only until its run is recorded (``on_start``) and answers with the run id;
the run goes on in the pool and the caller polls ``GET /v1/runs/{id}``. A request the pool cannot
start within ``START_WAIT`` is withdrawn (it never starts later) and answered 503.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import Any, Final

import structlog

from rotator.audit import Run, Trigger
from rotator.clock import iso_or_none
from rotator.control import Busy
from rotator.daemon.work import Context, Work
from rotator.errors import KeyHeldError, LeaseHeldError, RotatorError
from rotator.holds import Pause

log = structlog.get_logger("rotator.control")

START_WAIT: Final = 15.0  # seconds a request waits for its run to start (under the deadline)


class ControlOperations:
    def __init__(self, ctx: Context, work: Work) -> None:
        self._ctx = ctx
        self._work = work

    def managed(self, api_key: str) -> bool:
        return self._ctx.keys.first_seen(api_key) is not None

    def keys(self) -> list[dict[str, Any]]:
        now = self._ctx.clock()
        return [
            {
                "api_key": k.api_key,
                "primary": k.primary,
                "last_success": iso_or_none(k.last_success),
                "next_due": iso_or_none(k.next_due),
                "last_run": k.last_run.to_json() if k.last_run else None,
                "paused": k.paused,
                "stuck": k.stuck,
            }
            for k in self._ctx.keys.statuses(now, {})
        ]

    def run(self, run_id: str) -> Run:
        return self._ctx.services.audit.get_run(run_id)

    def pause(self, api_key: str, *, until: str | None, reason: str, actor: str) -> Pause:
        from rotator.commands.holds import parse_until

        moment = parse_until(until, self._ctx.clock()) if until else None
        return self._ctx.holds.pause(api_key, until=moment, reason=reason, actor=actor)

    def resume(self, api_key: str, *, actor: str, reason: str | None) -> None:
        self._ctx.holds.resume(api_key, actor=actor, reason=reason)

    def rollback(self, api_key: str, *, actor: str, reason: str) -> Run:
        """``rotator rollback``'s code, at once (a few calls, under the key's lease)."""
        from rotator import rollback as undo

        ctx = self._ctx
        with ctx.keys.guard(api_key, wait=False) as got:
            if not got:
                raise LeaseHeldError(f"{api_key} is being rotated or revoked by this daemon")
            run = undo.rollback(ctx.services.rotator.deps, api_key, actor=actor, reason=reason)
        self._work.refresh(api_key)
        return run

    def rotate(self, api_key: str, *, actor: str, reason: str, emergency: bool) -> Run:
        """Start a rotation on the pool; returns its run once recorded (it goes on running)."""
        started: Future[Run] = Future()
        job = f":control:{uuid.uuid4().hex}"

        def work() -> None:
            self._rotate(started, api_key, actor=actor, reason=reason, emergency=emergency)

        if not self._ctx.jobs.run_now(job, f"control rotation of {api_key}", work):
            raise Busy("the daemon is stopping")
        try:
            return started.result(timeout=START_WAIT)
        except (FutureTimeout, CancelledError):
            started.cancel()  # a job not started yet now never will
            if started.done() and not started.cancelled():
                return started.result()
            raise Busy(f"the daemon could not start the rotation within {START_WAIT:g}s") from None

    def _rotate(
        self, started: Future[Run], key: str, *, actor: str, reason: str, emergency: bool
    ) -> None:
        if not started.set_running_or_notify_cancel():
            return  # the request gave up waiting
        ctx = self._ctx
        began = time.monotonic()
        try:
            with ctx.keys.guard(key, wait=False) as got:
                if not got:
                    raise LeaseHeldError(f"{key} is being rotated or revoked by this daemon")
                reason = self._mind_pause(key, reason, emergency)
                outcome = ctx.services.rotator.rotate(
                    key,
                    trigger=Trigger.MANUAL,
                    actor=actor,
                    reason=reason,
                    emergency=emergency,
                    lock_wait=timedelta(0),
                    on_start=started.set_result,
                )
        except RotatorError as exc:
            if not started.done():
                started.set_exception(exc)
                return
            log.error("control_rotation_error", api_key=key, error=str(exc))
            self._work.alert("failed", key, f"rotation by {actor} failed: {exc}")
            return
        except Exception:
            log.exception("control_rotation_crashed", api_key=key)
            if not started.done():
                started.set_exception(RotatorError("internal error; see rotator's log"))
            return
        for run in outcome.resumed:
            self._work.after_run(run, None)
        self._work.after_run(outcome.run, time.monotonic() - began)
        if emergency and outcome.ok:
            self._work.alert("emergency", key, f"emergency rotation by {actor}: {reason}")
        self._work.refresh(key)

    def _mind_pause(self, key: str, reason: str, emergency: bool) -> str:
        """As ``rotator rotate``: a paused key rotates only in an emergency, which says so."""
        pause = self._ctx.holds.pause_for(key, self._ctx.clock())
        if pause is None:
            return reason
        if not emergency:
            raise KeyHeldError(f"{key} is held: {pause.describe()}")
        return f"{reason} (the key was paused: {pause.describe()})"


__all__ = ["START_WAIT", "ControlOperations"]
