"""Requests per caller per minute: a sliding window, pure apart from the clock it is given.

A caller over its budget gets 429 and ``Retry-After`` (whole seconds until its oldest request
in the window leaves it). Memory stays bounded however many callers come and go.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

WINDOW: Final = 60.0  # seconds
MAX_CALLERS: Final = 10_000  # callers tracked at once; the longest idle ones are forgotten


class CallerLimits:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def take(self, caller: str) -> int | None:
        """Count one request of ``caller``: None when allowed, else seconds to wait."""
        now = self._clock()
        with self._lock:
            stamps = self._seen.pop(caller, None) or deque()
            while stamps and stamps[0] <= now - WINDOW:
                stamps.popleft()
            self._seen[caller] = stamps  # re-inserted: dict order is least recently seen first
            if len(stamps) >= self._per_minute:
                return max(1, math.ceil(stamps[0] + WINDOW - now))
            stamps.append(now)
            while len(self._seen) > MAX_CALLERS:
                del self._seen[next(iter(self._seen))]
            return None


__all__ = ["WINDOW", "CallerLimits"]
