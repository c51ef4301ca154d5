"""The primary's credentials as every run of one process uses them.

Rotator manages every key's secrets as the primary, so each run used to read the primary's
record from Vault before its first Vonage call: one of a scheduled rotation's eleven Vault round
trips (issue 12). Runs now share one copy, read again when Vonage refuses it
(``RunIO.as_admin``: a rotation of the primary elsewhere revoked it; a 401 applied nothing, so
the retry is safe), when a run of this process makes a new primary secret current, and at least
every ``max_age`` seconds (a record changed by hand is picked up without a refusal).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from rotator.secret import Credentials
from rotator.vault import VaultStore

MAX_AGE = 30.0  # seconds a copy is used before Vault is read again anyway


class PrimarySecret:
    def __init__(
        self,
        vault: VaultStore,
        api_key: str,
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._vault, self._api_key = vault, api_key
        self._max_age, self._clock = max_age, clock
        self._lock = threading.Lock()
        self._creds: Credentials | None = None
        self._read_at = -math.inf

    def __repr__(self) -> str:
        return f"PrimarySecret(api_key={self._api_key!r})"

    def get(self) -> Credentials:
        """The shared copy, or Vault's record when there is none or it is ``max_age`` old."""
        with self._lock:
            if self._creds is not None and self._clock() - self._read_at < self._max_age:
                return self._creds
        return self.read()

    def read(self) -> Credentials:
        """Vault's record now (``VaultStore.credentials``: no record is an operator's error)."""
        creds = self._vault.credentials(self._api_key)  # no I/O under the lock
        self.use(creds)
        return creds

    def use(self, creds: Credentials) -> None:
        """A run made ``creds`` the primary's current secret (Vault's read-back proved it)."""
        if creds.api_key != self._api_key:
            raise ValueError(f"not the primary's credentials: {creds.api_key}")
        with self._lock:
            self._creds, self._read_at = creds, self._clock()


__all__ = ["MAX_AGE", "PrimarySecret"]
