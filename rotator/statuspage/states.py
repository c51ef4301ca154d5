"""The states a key can be in on the status page, as one table: adding a state is one line.

A key takes the FIRST state whose test passes, so the table is in order of urgency. ``attention``
states put the key in the "needs attention" list above the full one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from rotator.snapshot import KeyStatus

DUE_SOON_MIN: Final = timedelta(hours=1)  # due within this (or a tenth of its interval): soon


@dataclass(frozen=True)
class State:
    name: str  # the ?state= value and the CSS class
    label: str
    attention: bool
    colour: str
    test: Callable[[KeyStatus, datetime], bool]


def _due_soon(key: KeyStatus, now: datetime) -> bool:
    if key.next_due is None:
        return False
    window = max(DUE_SOON_MIN, (key.interval or timedelta(0)) / 10)
    return key.next_due <= now + window


STATES: Final[tuple[State, ...]] = (
    State("stuck", "stuck", True, "#7f0000", lambda k, _now: k.stuck),
    State("failing", "failing", True, "#c62828", lambda k, _now: k.failing),
    State("paused", "paused", True, "#546e7a", lambda k, _now: k.paused is not None),
    State("in_grace", "in grace", False, "#6a4c93", lambda k, _now: k.grace_until is not None),
    State("due_soon", "due soon", False, "#d9822b", _due_soon),
    State("healthy", "healthy", False, "#2e7d32", lambda _k, _now: True),
)
BY_NAME: Final = {s.name: s for s in STATES}


def state_of(key: KeyStatus, now: datetime) -> State:
    for state in STATES:
        if state.test(key, now):
            return state
    return STATES[-1]


def counts(states: Iterable[State]) -> dict[str, int]:
    """How many keys are in each state, every state listed (zeros too), in table order."""
    out = {s.name: 0 for s in STATES}
    for state in states:
        out[state.name] += 1
    return out


__all__ = ["BY_NAME", "STATES", "State", "counts", "state_of"]
