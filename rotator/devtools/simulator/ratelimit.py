"""A token bucket for the whole simulator, driven by the injectable clock.

With a fake clock that nobody advances, the bucket never refills: a test can spend it exactly and
see the 429 without sleeping.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable


class TokenBucket:
    """``rate`` requests per second, bursting up to ``max(1, rate)``; ``None`` means unlimited."""

    def __init__(self, rate: float | None, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._rate: float | None = None
        self._tokens = 0.0
        self._stamp = 0.0
        self.configure(rate)

    @property
    def rate(self) -> float | None:
        return self._rate

    def configure(self, rate: float | None, clock: Callable[[], float] | None = None) -> None:
        """Change the rate (or clock) at any time; a newly enabled limit starts full."""
        if rate is not None and not rate > 0:
            raise ValueError("rate_limit must be None or > 0 requests per second")
        with self._lock:
            if clock is not None:
                self._clock = clock
            was_unlimited = self._rate is None
            self._rate = None if rate is None else float(rate)
            if self._rate is not None:
                capacity = max(1.0, self._rate)
                self._tokens = capacity if was_unlimited else min(self._tokens, capacity)
                self._stamp = self._clock()

    def acquire(self) -> int | None:
        """Take a token; ``None`` when allowed, else the whole seconds to wait (>= 1)."""
        with self._lock:
            if self._rate is None:
                return None
            now = self._clock()
            capacity = max(1.0, self._rate)
            elapsed = max(0.0, now - self._stamp)
            self._tokens = min(capacity, self._tokens + elapsed * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - self._tokens) / self._rate))
