"""A secret value that cannot leak by accident.

``repr()``, ``str()`` and f-strings show a mask; only ``reveal()`` gives the value, so every place
that handles the real value is greppable. Every value wrapped is also registered with the log
redactor (``rotator.logs``), the last line of defence.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass
from typing import Final

MASK: Final = "********"

_known: set[str] = set()
_known_lock = threading.Lock()
# The same values by length (longest first), for ``mask_known``: replaced (under the lock),
# never changed in place, so a reader takes it without the lock. Every log line is scrubbed,
# and a bulk run knows a thousand secrets: a line must not cost a thousand searches (issue 12).
_by_length: tuple[tuple[int, frozenset[str]], ...] = ()


def known_values() -> frozenset[str]:
    """Every secret value this process has wrapped: what the log redactor scrubs."""
    with _known_lock:
        return frozenset(_known)


def _remember(value: str) -> None:
    global _by_length
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
        buckets = dict(_by_length)
        buckets[len(value)] = buckets.get(len(value), frozenset()) | {value}
        _by_length = tuple(sorted(buckets.items(), reverse=True))


def mask_known(text: str) -> str:
    """``text`` with every secret value this process has wrapped replaced by the mask, longest
    first (a value inside a longer one is masked with it).

    The same answer as searching ``text`` for each known value, at the cost of whichever is
    cheaper: that search, or looking up each of ``text``'s substrings of each known length."""
    buckets = _by_length
    if not buckets or len(text) < buckets[-1][0]:
        return text
    for length, values in buckets:
        if length > len(text):
            continue
        if (len(text) - length + 1) < len(values):
            found = {text[i : i + length] for i in range(len(text) - length + 1)} & values
        else:
            found = {value for value in values if value in text}
        for value in sorted(found):
            text = text.replace(value, MASK)
    return text


class Secret:
    """An API secret, Vault token or similar, masked everywhere but ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value
        if len(value) >= 6:  # shorter strings would make the redactor mangle ordinary words
            _remember(value)

    def reveal(self) -> str:
        return self._value

    def fingerprint(self, key: bytes) -> str:
        """A short HMAC-SHA256 fingerprint: tells two secrets apart without revealing either.
        ``key`` is the installation's own (``VaultStore.fingerprint_key``), never a constant:
        with a known key anyone could confirm a guessed secret against the audit log."""
        digest = hmac.new(key, self._value.encode(), hashlib.sha256).hexdigest()
        return f"hmac-sha256:{digest[:16]}"

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


@dataclass(frozen=True)
class Credentials:
    """An API key and its secret, what Vonage's Basic auth takes; ``repr`` masks the secret."""

    api_key: str
    secret: Secret
