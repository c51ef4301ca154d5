"""What one chaos run breaks, and when: pure decisions from a seeded RNG (no I/O here).

Fault kinds are dealt from a shuffled deck, so every kind comes up once per ``len(KINDS)`` draws
(a short CI run still covers them all) while the order, the combinations and every parameter stay
random. The same seed gives the same plans.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from rotator.devtools.simulator import Fault

VONAGE_KINDS = (
    "vonage_5xx",
    "vonage_429",
    "vonage_timeout",
    "vonage_reset_before_apply",
    "vonage_reset_after_apply",
    "vonage_propagation",
)
SERVICE_KINDS = ("vault_sealed", "vault_down", "vault_403", "vault_5xx", "db_down")
KINDS = (*VONAGE_KINDS, *SERVICE_KINDS, "sigkill")

# Where a paused rotator can be struck: every step boundary of a forward run after the start
# (and, for SIGKILL, rollback's, which only a run that failed after staging reaches).
STEPS: tuple[str, ...] = (
    "inspect",
    "make_room",
    "generate",
    "stage",
    "create",
    "verify",
    "promote",
    "revoke",
)
BOUNDARIES = tuple(f"{when}:{step}" for step in STEPS for when in ("before", "after"))[1:]
KILL_BOUNDARIES = (*BOUNDARIES, "before:rollback", "after:rollback")
SYNC_BOUNDARY = "before:inspect"  # every rotator waits here so the timeline starts together


@dataclass(frozen=True, kw_only=True)
class Strike:
    """A fault outside Vonage (Vault, database) or a SIGKILL, and when it happens.

    ``at``: seconds after the rotations start; or ``boundary``: when ``victim`` reaches it (the
    victim is paused there, struck or killed, then let go). ``heal_after``: seconds until the
    service is mended mid-run; ``None`` leaves it broken until recovery."""

    kind: str
    victim: str | None = None
    at: float | None = None
    boundary: str | None = None
    heal_after: float | None = None
    mode: str | None = None  # db_down: pg_ctl's immediate/fast; vault_5xx: before/after_apply


@dataclass(frozen=True, kw_only=True)
class RunPlan:
    number: int
    kinds: tuple[str, ...]
    keys: tuple[str, ...]
    sync: bool  # start every rotation's run at the same moment (else: as processes come up)
    latency: float  # simulator latency per call, so runs last long enough to be hit mid-way
    vonage_timeout: float
    verify_timeout: float
    propagation: float
    rate_limit: float | None
    sim_faults: tuple[tuple[str, Fault], ...]  # (kind, fault)
    strikes: tuple[Strike, ...]
    through_proxy: bool  # rotator reaches Vault through the 503 proxy
    notes: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        parts = [f"run {self.number}: {'+'.join(self.kinds)}"]
        parts += list(self.notes)
        for kind, fault in self.sim_faults:
            if fault.nth is None:
                what = f"{fault.status}" if fault.action == "status" else fault.action
                parts.append(f"{kind}: {what} on {fault.method} p={fault.probability}")
        for strike in self.strikes:
            when = f"at {strike.at:.2f}s" if strike.at is not None else f"{strike.boundary}"
            who = f" {strike.victim}" if strike.victim else ""
            heal = f", healed after {strike.heal_after:.2f}s" if strike.heal_after else ""
            mode = f" ({strike.mode})" if strike.mode else ""
            parts.append(f"{strike.kind}{mode}{who} {when}{heal}")
        return "; ".join(parts)


class Planner:
    """Deals fault kinds and draws every parameter of a run from one seeded RNG."""

    def __init__(
        self,
        seed: int,
        keys: list[str],
        *,
        max_propagation: float,
        max_kinds: int = 3,
        kinds_per_run: int | None = None,
        singles: int = 0,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"fault kinds must be among {', '.join(KINDS)}")
        self.kinds = tuple(kinds)
        self.rng = random.Random(seed)
        self.keys = list(keys)
        self.max_propagation = max_propagation
        self.max_kinds = max_kinds
        self.kinds_per_run = kinds_per_run  # fixed, or None: 1 to max_kinds at random
        self.singles = singles  # the first runs get one kind each (nothing masks it)
        self._deck: list[str] = []

    def _deal(self) -> str:
        if not self._deck:
            self._deck = list(self.kinds)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    def next(self, number: int) -> RunPlan:
        rng = self.rng
        count = self.kinds_per_run or min(self.max_kinds, rng.choice([1, 1, 2, 2, 3]))
        count = 1 if number <= self.singles else min(count, len(self.kinds))
        kinds: list[str] = []
        while len(kinds) < count:
            kind = self._deal()
            if kind not in kinds:
                kinds.append(kind)
        sync = rng.random() < 0.8
        latency = rng.choice([0.005, 0.02, 0.05, 0.1])
        vonage_timeout, verify_timeout, propagation = 2.0, 10.0, 0.0
        rate_limit: float | None = None
        faults: list[tuple[str, Fault]] = []
        notes: list[str] = []
        strikes: list[Strike] = []
        victims = list(self.keys)
        rng.shuffle(victims)
        for kind in kinds:
            if kind == "vonage_5xx":
                faults.append(
                    (
                        kind,
                        Fault(
                            action="status",
                            status=rng.choice([500, 502, 503, 504]),
                            method=rng.choice(["*", "*", "GET", "POST", "DELETE"]),
                            probability=round(rng.uniform(0.15, 0.5), 2),
                            times=None,
                        ),
                    )
                )
            elif kind == "vonage_429":
                if rng.random() < 0.5:
                    rate_limit = round(rng.uniform(2.0, 6.0), 1)
                    notes.append(f"rate limit {rate_limit}/s")
                else:
                    faults.append(
                        (
                            kind,
                            Fault(
                                action="status",
                                status=429,
                                retry_after=rng.choice([None, 0.0, 1.0, 2.0]),
                                probability=round(rng.uniform(0.2, 0.5), 2),
                                times=None,
                            ),
                        )
                    )
            elif kind == "vonage_timeout":
                vonage_timeout = 0.5
                faults.append(
                    (
                        kind,
                        Fault(
                            action="timeout",
                            delay=round(rng.uniform(1.0, 3.0), 2),
                            method=rng.choice(["*", "*", "GET", "POST", "DELETE"]),
                            probability=round(rng.uniform(0.2, 0.4), 2),
                            times=None,
                        ),
                    )
                )
            elif kind in ("vonage_reset_before_apply", "vonage_reset_after_apply"):
                action = kind.removeprefix("vonage_")
                faults.append(
                    (
                        kind,
                        Fault(
                            action=action,  # type: ignore[arg-type]
                            method=rng.choice(["POST", "POST", "DELETE", "*"]),
                            probability=round(rng.uniform(0.25, 0.6), 2),
                            times=None,
                        ),
                    )
                )
            elif kind == "vonage_propagation":
                propagation = round(rng.uniform(0.5, self.max_propagation), 2)
                if rng.random() < 0.7:  # long enough: the run verifies and succeeds
                    verify_timeout = round(propagation * rng.uniform(1.3, 1.6) + 2.0, 1)
                else:  # too short: the run must roll back
                    verify_timeout = round(max(0.3, propagation * rng.uniform(0.2, 0.6)), 1)
                notes.append(f"propagation {propagation}s, verify_timeout {verify_timeout}s")
            elif kind == "sigkill":
                for _ in range(rng.choice([1, 1, 2, len(self.keys)])):
                    strikes.append(self._strike(kind, victims, sync, latency))
            else:
                strikes.append(self._strike(kind, victims, sync, latency))
        # Each Vonage fault takes the first call it matches for sure, then calls at random:
        # a kind of fault that was planned is then also injected, if its calls happen at all.
        faults = [
            pair
            for kind, fault in faults
            for pair in ((kind, replace(fault, nth=1, times=1, probability=1.0)), (kind, fault))
        ]
        return RunPlan(
            number=number,
            kinds=tuple(kinds),
            keys=tuple(self.keys),
            sync=sync,
            latency=latency,
            vonage_timeout=vonage_timeout,
            verify_timeout=verify_timeout,
            propagation=propagation,
            rate_limit=rate_limit,
            sim_faults=tuple(faults),
            strikes=tuple(strikes),
            through_proxy="vault_5xx" in kinds,
            notes=tuple(notes),
        )

    def _strike(self, kind: str, victims: list[str], sync: bool, latency: float) -> Strike:
        """At a step boundary of one rotator (if a victim is left), else at a random moment."""
        rng = self.rng
        heal = None
        if kind not in ("sigkill", "vault_403") and rng.random() < 0.5:
            heal = round(rng.uniform(0.2, 2.0), 2)
        mode = None
        if kind == "db_down":
            mode = rng.choice(["immediate", "fast"])
        elif kind == "vault_5xx":  # 503 instead of forwarding, or after Vault applied it
            mode = rng.choice(["before_apply", "after_apply"])
        if victims and rng.random() < 0.6:
            return Strike(
                kind=kind,
                victim=victims.pop(),
                boundary=rng.choice(KILL_BOUNDARIES if kind == "sigkill" else BOUNDARIES),
                heal_after=heal,
                mode=mode,
            )
        # A rotation makes ~8 Vonage calls: strike while it is likely under way. Without the
        # start barrier the rotators are still starting for the first seconds.
        at = rng.uniform(0.0, 0.2 + 6 * latency) if sync else rng.uniform(0.5, 5.0)
        victim = rng.choice(self.keys) if kind == "sigkill" else None
        return Strike(kind=kind, victim=victim, at=round(at, 2), heal_after=heal, mode=mode)
