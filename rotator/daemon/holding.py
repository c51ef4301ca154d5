"""What holds a due key back: a pause (``rotator pause``, on any host), the stuck rule (too many
failed runs in a row) or another live process holding its lease. Shown on /status and /metrics;
a stuck key is alerted once per episode.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from rotator.config import Config
from rotator.daemon.registry import KeyRegistry
from rotator.errors import LeaseHeldError, RotatorError
from rotator.holds import ALL, Holds
from rotator.lease import owner_is_dead
from rotator.metrics import Metrics
from rotator.services import Services

log = structlog.get_logger("rotator.daemon")

Alert = Callable[[str, str, str], None]  # (kind, api key, message)


def recheck_interval(config: Config) -> timedelta:
    """How soon a held or busy key is looked at again: half the lease, within 1 s to 30 s."""
    return min(max(config.rotation.lease_ttl / 2, timedelta(seconds=1)), timedelta(seconds=30))


class HoldCheck:
    def __init__(
        self,
        *,
        config: Config,
        holds: Holds,
        keys: KeyRegistry,
        metrics: Metrics,
        services: Services,
        alert: Alert,
    ) -> None:
        self._config, self._holds, self._keys = config, holds, keys
        self._metrics, self._services, self._alert = metrics, services, alert
        self._recheck = recheck_interval(config)

    def held(self, key: str, now: datetime) -> datetime | None:
        """When a pause or the stuck rule holds a due key: when to look again (a pause can be
        lifted early by ``rotator resume`` on any host, so never later than a recheck)."""
        max_attempts = self._config.rotation.max_attempts
        pause, failures = self._holds.check(key, now, max_attempts)
        stuck = pause is None and failures >= max_attempts
        self._keys.set_hold(key, paused=pause.describe() if pause else None, stuck=stuck)
        self._metrics.paused.labels(api_key=key).set(1 if pause else 0)
        self._metrics.stuck.labels(api_key=key).set(1 if stuck else 0)
        if pause is not None:
            log.info("key_paused", api_key=key, detail=pause.describe())
            later = now + self._recheck
            return min(pause.until, later) if pause.until else later
        if stuck:
            self._alert_stuck(key, failures)
            return now + self._recheck
        return None

    def held_elsewhere(self, key: str) -> bool:
        """Another live process holds the key's lease (a dead one's is taken over at once)."""
        leases = self._services.leases
        info = leases.holder(key)
        return (
            info is not None
            and info.active
            and info.owner != leases.owner
            and not owner_is_dead(info.owner)
        )

    def note_pauses(self, now: datetime) -> None:
        """Pauses set on any host, shown on /status and /metrics (one query per pass)."""
        try:
            pauses = self._holds.active_pauses(now)
        except RotatorError as exc:
            log.error("pauses_unreadable", error=str(exc))
            return
        every = pauses.get(ALL)
        for key in self._keys.names():
            pause = pauses.get(key) or every
            self._keys.set_hold(key, paused=pause.describe() if pause else None)
            self._metrics.paused.labels(api_key=key).set(1 if pause else 0)

    def _alert_stuck(self, key: str, failures: int) -> None:
        """One alert per stuck episode (none again until a run ends after it), sent under the
        key's lease so two replicas never both send it."""
        leases = self._services.leases
        try:
            lease = leases.acquire(key, wait=timedelta(0))
        except LeaseHeldError:
            return  # another replica is on it
        try:
            self._alert_stuck_locked(key, failures)
        finally:
            leases.release(lease)

    def _alert_stuck_locked(self, key: str, failures: int) -> None:
        audit = self._services.audit
        last_alert = audit.last_alert("stuck", key)
        newest = audit.runs(api_key=key, limit=1)
        ended = newest[0].finished_at if newest else None
        if last_alert is not None and (ended is None or last_alert >= ended):
            return
        log.error("key_stuck", api_key=key, failures=failures)
        self._alert(
            "stuck",
            key,
            f"{failures} rotations in a row failed or were rolled back; no more automatic "
            f"attempts. Fix the cause (rotator plan {key}), then: rotator resume {key}",
        )


__all__ = ["HoldCheck", "recheck_interval"]
