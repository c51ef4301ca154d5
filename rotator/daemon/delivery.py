"""The daemon's event deliverer: one background thread sending the outbox to consumers.

Rotations write events in their audit transactions whether or not this thread runs, so a
daemon killed mid-delivery loses nothing: the next one (or another replica) sends what is left.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    import sqlalchemy as sa
    from prometheus_client import CollectorRegistry

    from rotator.config import EventsConfig
    from rotator.events.deliverer import Deliverer

log = structlog.get_logger("rotator.daemon")


class EventDelivery:
    """Starts, flushes and stops the deliverer; does nothing when no endpoint is configured."""

    def __init__(self, config: EventsConfig) -> None:
        self._config = config
        self._stop = threading.Event()
        self._deliverer: Deliverer | None = None
        self._thread: threading.Thread | None = None

    def open(self, engine: sa.Engine, registry: CollectorRegistry) -> None:
        if not self._config.endpoints:
            return
        from rotator.events.deliverer import Deliverer, EventMetrics
        from rotator.events.outbox import Outbox

        self._deliverer = Deliverer.from_config(
            self._config, Outbox(engine), metrics=EventMetrics(registry)
        )

    def start(self) -> None:
        if self._deliverer is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._deliverer.run_forever,
            args=(self._stop, self._config.poll_interval),
            name="rotator-events",
            daemon=True,
        )
        self._thread.start()

    def flush(self) -> None:
        """Send what is due now (``rotator run --once`` has no thread)."""
        if self._deliverer is None:
            return
        try:
            self._deliverer.run_once()
        except Exception as exc:  # delivery is retried later; never fail the run for it
            log.error("event_delivery_pass_failed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._config.timeout.total_seconds() + 5)
            self._thread = None
        if self._deliverer is not None:
            self._deliverer.close()
            self._deliverer = None
