"""A synthetic fleet's status snapshot (any number of keys, a realistic mix of states and a
week of run history) for the status page's benchmark, screenshots and tests. Deterministic."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from rotator.audit import Run, RunStatus
from rotator.hourly import hours_of
from rotator.snapshot import KeyStatus, LeaseSummary, Phase, RunMark, StatusSnapshot

DAY = timedelta(days=1)


def _run(key: str, n: int, started: datetime, status: RunStatus, error: str | None) -> Run:
    return Run(
        id=f"{key}-run-{n:04d}",
        api_key=key,
        trigger="scheduled",
        reason=None,
        actor="rotator-daemon",
        status=status,
        emergency=False,
        old_secret_id=None,
        new_secret_id=None,
        started_at=started,
        finished_at=started + timedelta(seconds=4),
        revoke_after=started + timedelta(hours=1),
        error=error,
        owner="host:1:abc",
    )


FAILING, IN_GRACE, HEALTHY = 0.01, 0.04, 0.5  # ``rolls`` that force a key's state


def _key(i: int, now: datetime, rnd: random.Random, name: str | None, roll: float) -> KeyStatus:
    key = "primary0" if i == 0 else f"sub{i:05d}"
    age = timedelta(seconds=rnd.uniform(0, 86400))
    if roll < 0.03:
        age += DAY * rnd.uniform(0.1, 1.0)  # failing keys fall behind
    last_start = now - age
    runs = []
    for n in range(rnd.randint(6, 9), 0, -1):
        failed = rnd.random() < 0.02
        status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
        runs.append(
            _run(key, n, last_start - n * DAY, status, "VonageServerError" if failed else None)
        )
    if roll < 0.03:
        last = _run(
            key,
            0,
            now - timedelta(minutes=rnd.randint(1, 600)),
            RunStatus.FAILED,
            "VonageAuthError: 401 credentials refused",
        )
    elif roll < 0.05:
        last = _run(key, 0, now - timedelta(minutes=10), RunStatus.AWAITING_REVOKE, None)
        age = timedelta(minutes=10)
    else:
        last = _run(key, 0, last_start, RunStatus.SUCCEEDED, None)
    runs.append(last)
    return KeyStatus(
        api_key=key,
        name=name,
        primary=i == 0,
        secret_age=age,
        last_success=now - age,
        next_due=now - age + DAY,
        rotating_here=False,
        last_run=last,
        lease=LeaseSummary(owner="host:1:abc", expires_at=now, active=True)
        if roll < 0.01
        else None,
        error=None,
        interval=DAY,
        recent=tuple(RunMark.of(r) for r in runs),
    )


def fleet_snapshot(
    keys: int,
    *,
    now: datetime,
    names: list[str | None] | None = None,
    rolls: list[float] | None = None,
    seed: int = 7,
) -> StatusSnapshot:
    """``keys`` keys with daily rotation; ``names`` (cycled) lets tests use hostile names and
    ``rolls`` (FAILING, IN_GRACE, HEALTHY) force the first keys' states."""
    rnd = random.Random(seed)  # noqa: S311 - test data, not secrets
    pool, forced = names or [None], rolls or []
    fleet = tuple(
        _key(i, now, rnd, pool[i % len(pool)], forced[i] if i < len(forced) else rnd.random())
        for i in range(keys)
    )
    return StatusSnapshot(
        version="synthetic",
        phase=Phase.RUNNING,
        owner="host:1:abc",
        generated_at=now,
        keys=fleet,
        hours=hours_of([m for k in fleet for m in k.recent], now),  # as the registry keeps them
    )


__all__ = ["FAILING", "HEALTHY", "IN_GRACE", "fleet_snapshot"]
