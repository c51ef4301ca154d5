"""Alerts to people: a webhook (Slack-compatible JSON) and/or SMS through Vonage.

One alert per (kind, key) within ``notify.dedup_window``, so a failing key does not page every
few minutes. Every alert sent is an audit event (step ``alert``), and the window is checked
against the newest one, so deduplication survives restarts and is shared by replicas. A channel
that is down is logged, never raised: an alert must not break the rotation that raised it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import httpx
import structlog

from rotator.audit import ALERT_STEP, AuditLog
from rotator.clock import iso, utcnow
from rotator.config import Config
from rotator.errors import RotatorError
from rotator.secret import MASK, known_values
from rotator.vault import VaultStore
from rotator.vonage import VonageClient

log = structlog.get_logger("rotator.notify")

AlertKind = Literal["failed", "rolled_back", "emergency"]
KINDS: Final = ("failed", "rolled_back", "emergency", "quarantined")
UNDELIVERED: Final = "undelivered"  # audit outcome of an alert no channel accepted
SMS_MAX = 300  # characters: two concatenated SMS parts at most
WEBHOOK_TIMEOUT = 5.0


def scrub(text: str) -> str:
    """Mask any secret value this process knows, should one ever reach a message."""
    for value in known_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


class Notifier:
    """Sends deduplicated alerts; ``alert`` returns True when at least one channel took it."""

    def __init__(
        self,
        config: Config,
        *,
        audit: AuditLog,
        vault: VaultStore,
        vonage: VonageClient,
        http: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
        actor: str = "rotator-daemon",
    ) -> None:
        self._config = config
        self._audit = audit
        self._vault = vault
        self._vonage = vonage
        self._http = http or httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False)
        self._owns_http = http is None
        self._clock = clock
        self._actor = actor  # who the audit log says sent the alert
        self._lock = threading.Lock()  # check-then-send-then-record, one alert at a time

    @property
    def enabled(self) -> bool:
        notify = self._config.notify
        return bool(notify.webhook_url or notify.sms.to)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def alert(self, kind: str, api_key: str, message: str, run_id: str | None = None) -> bool:
        """Tell people about ``api_key``; False when deduplicated, not configured or undelivered."""
        if kind not in KINDS:
            raise ValueError(f"unknown alert kind {kind!r} (one of {', '.join(KINDS)})")
        if not self.enabled:
            return False
        message = scrub(message)
        with self._lock:
            try:
                last = self._audit.last_alert(kind, api_key)
            except RotatorError as exc:
                log.error("alert_dedup_check_failed", kind=kind, api_key=api_key, error=str(exc))
                last = None
            now = self._clock()
            if last is not None and now - last < self._config.notify.dedup_window:
                log.info("alert_deduplicated", kind=kind, api_key=api_key, last_sent=str(last))
                return False
            delivered, errors = self._deliver(kind, api_key, message, run_id, now)
            self._record(kind, api_key, message, run_id, now, delivered, errors)
            return bool(delivered)

    # -- channels ---------------------------------------------------------------------------

    def _deliver(
        self, kind: str, api_key: str, message: str, run_id: str | None, now: datetime
    ) -> tuple[list[str], dict[str, str]]:
        delivered: list[str] = []
        errors: dict[str, str] = {}
        text = f"rotator: {kind.replace('_', ' ')} for {api_key}: {message}"
        if self._config.notify.webhook_url:
            try:
                self._webhook(self._config.notify.webhook_url, text, kind, api_key, message, run_id)
                delivered.append("webhook")
            except RotatorError as exc:
                errors["webhook"] = str(exc)
                log.error("alert_webhook_failed", kind=kind, api_key=api_key, error=str(exc))
        recipients = self._config.notify.sms.to
        if recipients:
            sent = self._sms(recipients, text, kind, api_key, errors)
            if sent:
                delivered.append(f"sms:{sent}")
        if delivered:
            log.warning("alert_sent", kind=kind, api_key=api_key, channels=delivered)
        return delivered, errors

    def _webhook(
        self,
        url: str,
        text: str,
        kind: str,
        api_key: str,
        message: str,
        run_id: str | None,
    ) -> None:
        body: dict[str, Any] = {
            "text": text,
            "kind": kind,
            "api_key": api_key,
            "message": message,
            "run_id": run_id,
            "host": socket.gethostname(),
            "at": iso(self._clock()),
        }
        where = urlsplit(url).netloc or "the webhook"  # a webhook URL's path is often a secret
        try:
            response = self._http.post(url, json=body)
        except httpx.HTTPError as exc:
            raise RotatorError(f"webhook at {where} unreachable ({type(exc).__name__})") from None
        if not response.is_success:
            raise RotatorError(f"webhook at {where} answered HTTP {response.status_code}")

    def _sms(
        self, recipients: list[str], text: str, kind: str, api_key: str, errors: dict[str, str]
    ) -> int:
        try:
            creds = self._vault.credentials(self._config.vonage.primary_api_key)
        except RotatorError as exc:
            errors["sms"] = str(exc)
            log.error("alert_sms_failed", kind=kind, api_key=api_key, error=str(exc))
            return 0
        sent = 0
        for to in recipients:
            try:
                self._vonage.send_sms(
                    creds, sender=self._config.notify.sms.from_, to=to, text=text[:SMS_MAX]
                )
                sent += 1
            except RotatorError as exc:
                errors[f"sms:{to}"] = str(exc)
                log.error("alert_sms_failed", kind=kind, api_key=api_key, to=to, error=str(exc))
        return sent

    # -- the audit trail (and the dedup memory) ---------------------------------------------

    def _record(
        self,
        kind: str,
        api_key: str,
        message: str,
        run_id: str | None,
        now: datetime,
        delivered: list[str],
        errors: dict[str, str],
    ) -> None:
        try:
            self._audit.record(
                step=ALERT_STEP,
                outcome=kind if delivered else UNDELIVERED,
                started_at=now,
                api_key=api_key,
                run_id=run_id,
                actor=self._actor,
                error="; ".join(f"{k}: {v}" for k, v in errors.items())[:1000] or None,
                detail={"kind": kind, "channels": delivered, "message": message[:500]},
            )
        except RotatorError as exc:
            log.error("alert_record_failed", kind=kind, api_key=api_key, error=str(exc))


__all__ = ["KINDS", "AlertKind", "Notifier", "scrub"]
