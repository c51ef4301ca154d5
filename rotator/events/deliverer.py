"""Sends due outbox rows to their endpoints, signed; a 2xx settles a row, anything else retries.

One HTTP attempt per claimed row and run; the claim's lease outlasts the attempt (three
timeouts), so a second replica never sends the same row meanwhile. A deliverer killed between
sending and settling leaves the claim to expire: the row is sent again (at least once).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rotator.clock import utcnow
from rotator.config import Config, EventsConfig
from rotator.events import signing
from rotator.events.outbox import Backoff, Delivery, Outbox, OutboxWriter, Route
from rotator.events.types import ALL_TYPES, EventType
from rotator.secret import Secret

log = structlog.get_logger("rotator.events")

PURGE_EVERY = 3600.0  # seconds between purges of delivered rows
LAG_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)
_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint: where to post and the signing key. ``repr`` shows the label only."""

    label: str
    url: str = field(repr=False)
    secret: Secret = field(repr=False)
    types: frozenset[EventType] = ALL_TYPES

    @classmethod
    def from_config(cls, config: EventsConfig) -> list[Endpoint]:
        """Read every endpoint's URL and secret (ConfigError naming the endpoint if missing)."""
        found = []
        for ep in config.endpoints:
            endpoint = cls(ep.label, ep.resolve_url(), ep.secret(), ep.event_types)
            signing.signing_key(endpoint.secret)  # malformed secrets fail at start, not per send
            found.append(endpoint)
        return found


def routes(config: EventsConfig) -> list[Route]:
    """What the audit log's writer needs: names and types, no URL or secret."""
    return [Route(ep.label, ep.event_types) for ep in config.endpoints]


def writer_for(config: Config) -> OutboxWriter | None:
    """The audit hook for a config (None when no endpoint is configured: nothing is written)."""
    if not config.events.endpoints:
        return None

    def vault_path(api_key: str) -> str:
        return f"{config.vault.mount}/{config.vault.path_prefix}/{api_key}"

    return OutboxWriter(
        routes(config.events), vault_path=vault_path, grace_for=config.grace_period_for
    )


class EventMetrics:
    """Delivery lag, failures and the pending count, on a Prometheus registry (the daemon's)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Histogram(
            "rotator_event_delivery_lag_seconds",
            "Seconds from an event's audit record to its delivery, by endpoint.",
            ["endpoint"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.failures = Counter(
            "rotator_event_delivery_failures",
            "Failed event delivery attempts (non-2xx, timeout, refused), by endpoint.",
            ["endpoint"],
            registry=registry,
        )
        self.pending = Gauge(
            "rotator_events_pending",
            "Consumer events not yet delivered (all endpoints).",
            registry=registry,
        )

    def delivered(self, endpoint: str, lag_seconds: float) -> None:
        self.lag.labels(endpoint=endpoint).observe(max(lag_seconds, 0.0))

    def failed(self, endpoint: str) -> None:
        self.failures.labels(endpoint=endpoint).inc()

    def set_pending(self, count: int) -> None:
        self.pending.set(count)


@dataclass(frozen=True)
class Result:
    delivered: int = 0
    failed: int = 0


class Deliverer:
    """Sends what is due: ``run_once`` for one pass, ``run_forever`` for the daemon's thread."""

    def __init__(
        self,
        outbox: Outbox,
        endpoints: Iterable[Endpoint],
        *,
        timeout: timedelta = timedelta(seconds=10),
        http: httpx.Client | None = None,
        metrics: EventMetrics | None = None,
        on_sent: Callable[[Delivery], None] | None = None,
        keep_delivered: timedelta | None = None,
    ) -> None:
        self.outbox = outbox
        self.keep_delivered = keep_delivered
        self._purged_at: float | None = None  # monotonic time of the last purge
        self.endpoints = {e.label: e for e in endpoints}
        self._keys = {e.label: signing.signing_key(e.secret) for e in self.endpoints.values()}
        self.timeout = timeout
        self._http = http or httpx.Client(timeout=timeout.total_seconds(), follow_redirects=False)
        self._metrics = metrics
        self._on_sent = on_sent  # a test seam: called after the POST, before the row is settled

    @classmethod
    def from_config(cls, config: EventsConfig, outbox: Outbox, **kwargs: Any) -> Deliverer:
        backoff = Backoff(base=config.retry_base, cap=config.retry_max)
        outbox.backoff = backoff
        return cls(
            outbox,
            Endpoint.from_config(config),
            timeout=config.timeout,
            keep_delivered=config.keep_delivered,
            **kwargs,
        )

    def close(self) -> None:
        self._http.close()

    def run_once(self) -> Result:
        """Claim and send each endpoint's next due row until nothing more is due now."""
        delivered = failed = 0
        lease = self.timeout * 3 + timedelta(seconds=5)
        while True:
            batch = self.outbox.claim(self.endpoints, lease)
            if not batch:
                break
            for delivery in batch:
                if self._send(delivery):
                    delivered += 1
                else:
                    failed += 1
        if self._metrics is not None:
            self._metrics.set_pending(self.outbox.pending_count())
        self._purge_now_and_then()
        return Result(delivered, failed)

    def _purge_now_and_then(self) -> None:
        """Drop delivered rows past ``keep_delivered``: at the first pass, then hourly."""
        now = time.monotonic()
        if self.keep_delivered is None or (
            self._purged_at is not None and now - self._purged_at < PURGE_EVERY
        ):
            return
        self._purged_at = now
        purged = self.outbox.purge_delivered(self.keep_delivered)
        if purged:
            log.info("delivered_events_purged", count=purged)

    def run_forever(
        self, stop: threading.Event, interval: timedelta = timedelta(seconds=2)
    ) -> None:
        """Deliver until ``stop`` is set; a database or config error is logged, then retried."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the thread must survive a database outage
                log.error("event_delivery_pass_failed", error=f"{type(exc).__name__}: {exc}")
            stop.wait(interval.total_seconds())

    def _send(self, delivery: Delivery) -> bool:
        endpoint = self.endpoints[delivery.endpoint]
        timestamp = int(utcnow().timestamp())  # wall time: receivers check freshness
        headers = signing.headers(
            self._keys[endpoint.label], delivery.message_id, timestamp, delivery.payload
        )
        error: str | None
        try:
            response = self._http.post(endpoint.url, content=delivery.payload, headers=headers)
            error = None if response.is_success else f"HTTP {response.status_code}"
        except httpx.TimeoutException:
            error = "timed out"
        except httpx.HTTPError as exc:
            error = _scrub(f"{type(exc).__name__}: {exc}", endpoint.url)
        if self._on_sent is not None:
            self._on_sent(delivery)
        if error is None:
            self.outbox.delivered(delivery)
            lag = (self.outbox.clock() - delivery.created_at).total_seconds()
            if self._metrics is not None:
                self._metrics.delivered(endpoint.label, lag)
            log.info("event_delivered", endpoint=endpoint.label, type=delivery.event_type,
                     message_id=delivery.message_id, attempts=delivery.attempts + 1)  # fmt: skip
            return True
        self.outbox.failed(delivery, error)
        if self._metrics is not None:
            self._metrics.failed(endpoint.label)
        log.warning("event_delivery_failed", endpoint=endpoint.label, type=delivery.event_type,
                    message_id=delivery.message_id, error=error)  # fmt: skip
        return False


def _scrub(text: str, url: str) -> str:
    """No URL in a stored error: it may carry credentials or a token in its query."""
    return _URLISH.sub("<url>", text.replace(url, "<url>"))[:500]


__all__ = [
    "Deliverer",
    "Endpoint",
    "EventMetrics",
    "Result",
    "routes",
    "writer_for",
]
