"""Alerts to people: a webhook (Slack-compatible JSON) and/or SMS through Vonage.

One alert per (kind, key) within ``notify.dedup_window``, so a failing key does not page every
few minutes. Every alert sent is an audit event (step ``alert``), and the window is checked
against the newest one, so deduplication survives restarts and is shared by replicas. A channel
that is down is logged, never raised: an alert must not break the rotation that raised it.

Everything in an alert may come from outside (a key name from Vonage, an error text, a reason
typed by an operator): secret values are scrubbed, the Slack ``text`` is escaped so it cannot
mention ``@channel``, link or format, SMS text has no control characters, and the webhook URL
(whose userinfo, path and query are secrets) is shown as scheme and host only.
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
from rotator.escape import slack, terminal
from rotator.redact import safe_url, scrub
from rotator.tls import default_context
from rotator.vault import VaultStore
from rotator.vonage import VonageClient

log = structlog.get_logger("rotator.notify")

AlertKind = Literal["failed", "rolled_back", "emergency", "drift", "stuck", "quarantined"]
KINDS: Final = ("failed", "rolled_back", "emergency", "drift", "stuck", "quarantined")
UNDELIVERED: Final = "undelivered"  # audit outcome of an alert no channel accepted
SMS_MAX = 300  # characters: two concatenated SMS parts at most
WEBHOOK_TIMEOUT = 5.0


def webhook_origin(url: str) -> str:
    """Scheme, host and port of a webhook URL: what a message may say about where it posted."""
    parts = urlsplit(safe_url(url))
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the webhook"


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
        self._http = http or httpx.Client(
            timeout=WEBHOOK_TIMEOUT, verify=default_context(), follow_redirects=False
        )
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
        api_key = scrub(api_key)
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
                errors["webhook"] = scrub(str(exc))
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
            "text": slack(text),
            "kind": kind,
            "api_key": api_key,
            "message": message,
            "run_id": run_id,
            "host": socket.gethostname(),
            "at": iso(self._clock()),
        }
        where = webhook_origin(url)  # userinfo, path and query of a webhook URL are secrets
        try:
            response = self._http.post(url, json=body)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            raise RotatorError(f"webhook at {where} unreachable ({type(exc).__name__})") from None
        if not response.is_success:
            raise RotatorError(f"webhook at {where} answered HTTP {response.status_code}")

    def _sms(
        self, recipients: list[str], text: str, kind: str, api_key: str, errors: dict[str, str]
    ) -> int:
        try:
            creds = self._vault.credentials(self._config.vonage.primary_api_key)
        except RotatorError as exc:
            errors["sms"] = scrub(str(exc))
            log.error("alert_sms_failed", kind=kind, api_key=api_key, error=str(exc))
            return 0
        sent = 0
        for to in recipients:
            try:
                self._vonage.send_sms(
                    creds,
                    sender=self._config.notify.sms.from_,
                    to=to,
                    text=terminal(text)[:SMS_MAX],
                )
                sent += 1
            except RotatorError as exc:
                errors[f"sms:{to}"] = scrub(str(exc))
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


__all__ = ["KINDS", "AlertKind", "Notifier", "scrub", "webhook_origin"]
