"""Injected failures: what can go wrong between rotator and Vonage, on demand.

A ``Fault`` says what to break and which calls to break; the ``FaultBook`` counts matching calls
and decides, under a lock and with the simulator's seeded RNG, which fault (if any) takes a call.
The HTTP layer then acts the fault out on the real socket.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass
from typing import Final, Literal, get_args

FaultAction = Literal[
    "status",
    "timeout",
    "reset_before_apply",
    "reset_after_apply",
    "html",
    "malformed_json",
    "huge_body",
    "body",
]
FaultHost = Literal["api", "rest", "*"]

FAULT_ACTIONS: Final[frozenset[str]] = frozenset(get_args(FaultAction))
_HOSTS: Final[frozenset[str]] = frozenset(get_args(FaultHost))
_METHODS: Final = frozenset({"*", "GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"})


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One kind of failure and the calls it hits.

    ``nth`` is 1-based and counts matching calls from injection (whether or not another fault
    took them); ``times`` counts the calls this fault actually affected. ``probability`` is rolled
    with the simulator's seeded RNG, so a chaos run replays with the same seed.
    """

    action: FaultAction
    method: str = "*"
    path: str = "*"
    host: FaultHost = "*"
    nth: int | None = None
    times: int | None = 1
    probability: float = 1.0
    status: int = 503
    retry_after: float | None = None
    delay: float = 30.0
    # action "body": answer ``status`` (any, 200 included) with this JSON text, e.g. a spoofed
    # listing; nothing is applied.
    body: str | None = None

    def __post_init__(self) -> None:
        if self.action not in FAULT_ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}")
        if self.method.upper() not in _METHODS:
            raise ValueError(f"unknown method {self.method!r}")
        if self.host not in _HOSTS:
            raise ValueError(f"host must be one of {sorted(_HOSTS)}")
        if self.nth is not None and self.nth < 1:
            raise ValueError("nth is 1-based: use None or an integer >= 1")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be None (forever) or an integer >= 1")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.action == "body":
            if self.body is None or not 200 <= self.status <= 599:
                raise ValueError("a body fault needs body text and a status of 200-599")
        elif not 400 <= self.status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.delay < 0:
            raise ValueError("delay must be >= 0")

    def matches(self, method: str, host: str, path: str) -> bool:
        return (
            (self.method == "*" or self.method.upper() == method.upper())
            and (self.host == "*" or self.host == host)
            and fnmatch.fnmatchcase(path, self.path)
        )


@dataclass
class _Armed:
    fault: Fault
    seen: int = 0
    hits: int = 0

    def exhausted(self) -> bool:
        return self.fault.times is not None and self.hits >= self.fault.times


class FaultBook:
    """The injected faults, in injection order; the first one that fires takes the call."""

    def __init__(self, seed: int | None = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # nosec B311
        self._armed: list[_Armed] = []
        self._retired: list[_Armed] = []

    def inject(self, fault: Fault) -> Fault:
        if not isinstance(fault, Fault):
            raise TypeError("inject() takes a Fault")
        with self._lock:
            if any(a.fault is fault for a in self._armed):
                raise ValueError("this Fault object is already injected")
            self._armed.append(_Armed(fault))
        return fault

    def clear(self) -> None:
        """Disarm every fault; their hit counts stay readable."""
        with self._lock:
            self._retired.extend(self._armed)
            self._armed.clear()

    def hits(self, fault: Fault) -> int:
        """How many calls ``fault`` (this very object) affected."""
        with self._lock:
            for armed in (*self._armed, *self._retired):
                if armed.fault is fault:
                    return armed.hits
        raise KeyError("this Fault was never injected")

    def take(self, method: str, host: str, path: str) -> Fault | None:
        """Count this call against every matching fault and return the one that fires."""
        chosen: Fault | None = None
        with self._lock:
            for armed in self._armed:
                fault = armed.fault
                if not fault.matches(method, host, path):
                    continue
                armed.seen += 1
                if chosen is not None or armed.exhausted():
                    continue
                if fault.nth is not None and armed.seen < fault.nth:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                armed.hits += 1
                chosen = fault
        return chosen
