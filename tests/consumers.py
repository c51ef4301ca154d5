"""An application that uses a Vonage secret while rotations happen: it reads the secret (from
Vault, or a file Vault Agent renders), caches it for a while, and calls get-balance on the
Vonage simulator in a loop, counting refusals. Keeps only hashes of what it read."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

import httpx


class Application(threading.Thread):
    """``read()`` returns the secret to use (None: not available yet); it is re-read once it is
    older than ``cache_for`` seconds, as an application with a cached client does."""

    def __init__(
        self, rest_url: str, api_key: str, read: Callable[[], str | None], *, cache_for: float
    ) -> None:
        super().__init__(daemon=True, name=f"app-{api_key}")
        self.url = f"{rest_url}/account/get-balance"
        self.api_key, self.read, self.cache_for = api_key, read, cache_for
        self.calls = 0
        self.refused: list[int] = []  # HTTP statuses of refused calls (401s)
        self.seen: set[str] = set()  # hashes of the secrets it used
        self._halt = threading.Event()

    def run(self) -> None:
        secret: str | None = None
        read_at = 0.0
        with httpx.Client(timeout=10) as client:
            while not self._halt.is_set():
                if secret is None or time.monotonic() - read_at >= self.cache_for:
                    secret, read_at = self.read(), time.monotonic()
                if secret is not None:
                    reply = client.get(self.url, auth=(self.api_key, secret))
                    self.calls += 1
                    self.seen.add(hashlib.sha256(secret.encode()).hexdigest()[:12])
                    if reply.status_code == 401:
                        self.refused.append(reply.status_code)
                self._halt.wait(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)
