"""Prometheus metrics of the daemon, in a registry of its own (never the global one).

The names are a contract with the alert rules in ``deploy/``: change them only together. Secret
age is computed at scrape time from the last success, so it grows between rotations without any
job having to tick it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from rotator.clock import utcnow

DURATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, version: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._since: dict[str, datetime] = {}  # when each key's current secret became current
        r = self.registry
        self.rotations = Counter(
            "rotator_rotations",
            "Rotation runs finished, by key and outcome (run status).",
            ["api_key", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "rotator_rotation_duration_seconds",
            "Wall time of rotation runs, by outcome.",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.secret_age = Gauge(
            "rotator_secret_age_seconds",
            "Seconds since the key's current secret was made current.",
            ["api_key"],
            registry=r,
        )
        self.max_secret_age = Gauge(
            "rotator_max_secret_age_seconds",
            "Secret age beyond which the key is overdue: schedule period + jitter + grace.",
            ["api_key"],
            registry=r,
        )
        self.next_rotation = Gauge(
            "rotator_next_rotation_timestamp_seconds",
            "When the key is next due (Unix time).",
            ["api_key"],
            registry=r,
        )
        self.last_success = Gauge(
            "rotator_last_success_timestamp_seconds",
            "When the key's last successful rotation started (Unix time).",
            ["api_key"],
            registry=r,
        )
        self.last_run_failed = Gauge(
            "rotator_last_run_failed",
            "1 when the key's newest run failed or was rolled back, else 0.",
            ["api_key"],
            registry=r,
        )
        self.grace_until = Gauge(
            "rotator_grace_until_timestamp_seconds",
            "When the previous secret's grace period ends (Unix time); 0 when none: the key's "
            "next rotation is postponed until then.",
            ["api_key"],
            registry=r,
        )
        self.keys_watched = Gauge(
            "rotator_keys_watched", "Keys the drift watch compares with Vonage.", registry=r
        )
        self.last_watch = Gauge(
            "rotator_last_watch_timestamp_seconds",
            "When the drift watch last compared the key with Vonage (Unix time).",
            ["api_key"],
            registry=r,
        )
        self.drift_found = Counter(
            "rotator_drift_found",
            "Drift the watch found: an unknown secret or a vanished current one, by kind.",
            ["api_key", "kind"],
            registry=r,
        )
        self.paused = Gauge(
            "rotator_key_paused", "1 while a pause holds the key, else 0.", ["api_key"], registry=r
        )
        self.stuck = Gauge(
            "rotator_key_stuck",
            "1 when the key failed rotation.max_attempts times in a row (needs rotator resume).",
            ["api_key"],
            registry=r,
        )
        self.quarantined = Gauge(
            "rotator_quarantined_keys",
            "Keys skipped because they cannot be handled (invalid key, internal error).",
            registry=r,
        )
        self.up = Gauge("rotator_up", "1 while the daemon runs.", registry=r)
        self.build_info = Gauge(
            "rotator_build_info", "rotator's version, as a label.", ["version"], registry=r
        )
        self.up.set(1)
        self.build_info.labels(version=version).set(1)

    def observe_run(self, api_key: str, outcome: str, seconds: float) -> None:
        self.rotations.labels(api_key=api_key, outcome=outcome).inc()
        self.duration.labels(outcome=outcome).observe(max(0.0, seconds))

    def set_key(
        self,
        api_key: str,
        *,
        last_success: datetime | None,
        next_due: datetime | None,
        max_age_seconds: float,
        last_run_failed: bool,
        secret_since: datetime | None = None,
        grace_until: datetime | None = None,
    ) -> None:
        """``secret_since`` (default: ``last_success``) is what the secret's age counts from:
        for a key rotator never rotated, Vault's ``rotated_at`` may still tell."""
        with self._lock:
            since = secret_since or last_success
            if since is not None:
                self._since[api_key] = since
            if last_success is not None:
                self.last_success.labels(api_key=api_key).set(last_success.timestamp())
            if next_due is not None:
                self.next_rotation.labels(api_key=api_key).set(next_due.timestamp())
            self.max_secret_age.labels(api_key=api_key).set(max_age_seconds)
            self.last_run_failed.labels(api_key=api_key).set(1 if last_run_failed else 0)
            grace = grace_until.timestamp() if grace_until is not None else 0
            self.grace_until.labels(api_key=api_key).set(grace)

    def remove_key(self, api_key: str) -> None:
        """Forget a key discovery dropped, so no stale series keeps alerting."""
        with self._lock:
            self._since.pop(api_key, None)
            for gauge in (
                self.secret_age,
                self.max_secret_age,
                self.next_rotation,
                self.last_success,
                self.last_run_failed,
                self.grace_until,
                self.last_watch,
                self.paused,
                self.stuck,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(api_key)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition the scraper's Accept header asks for (Prometheus text 0.0.4 by
        default, or OpenMetrics) and its content type, with secret ages as of now."""
        encoder, content_type = choose_encoder(accept)
        now = self._clock()
        with self._lock:
            for api_key, when in self._since.items():
                age = max(0.0, (now - when).total_seconds())
                self.secret_age.labels(api_key=api_key).set(age)
            return encoder(self.registry), content_type


__all__ = ["Metrics"]
