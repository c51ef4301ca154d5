"""The configuration's sections about what rotator offers and tells: the HTTP listener and its
control API, alerts (notify), signed consumer events and the drift watch. ``rotator.config``
re-exports them.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from rotator.config_sections import Duration, Section, VaultPath, read_env, read_file
from rotator.errors import ConfigError
from rotator.events.types import ALL_TYPES, EventType
from rotator.secret import Secret


class ControlConfig(Section):
    """The authenticated control API (rotate, pause, resume over HTTP), off by default."""

    enabled: bool = False
    vault_path: VaultPath = (
        "rotator-control"  # capabilities asked on <vault_path>/<api_key>/<action>
    )
    max_body: int = Field(default=4096, ge=256, le=65536)  # bytes
    rate_per_minute: int = Field(default=30, ge=1, le=6000)  # per caller
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> ControlConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def is_loopback(host: str) -> bool:
    """An address only this machine reaches (the control API without TLS may listen only there)."""
    import ipaddress

    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpConfig(Section):
    listen: str = "127.0.0.1:9464"
    control: ControlConfig = ControlConfig()

    @model_validator(mode="after")
    def _control_safe(self) -> HttpConfig:
        host = self.listen.rpartition(":")[0]
        if self.control.enabled and not self.control.tls and not is_loopback(host):
            raise ValueError(
                "http.control needs TLS (control.tls_cert and tls_key) to listen on a "
                "non-loopback address"
            )
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464")
        return value


class SmsConfig(Section):
    from_: str = Field(default="Rotator", alias="from")
    to: list[str] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NotifyConfig(Section):
    webhook_url: str | None = None
    sms: SmsConfig = SmsConfig()
    dedup_window: Duration = timedelta(hours=1)


class EventEndpoint(Section):
    """A consumer that receives signed rotation events (Standard Webhooks). The URL is given
    literally only when it carries no credentials or query string; otherwise by variable or file,
    like the signing secret, which is always named, never written here."""

    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    types: list[EventType] | None = None  # None: every type
    name: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("url")
    @classmethod
    def _plain_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username or parts.password or parts.query:
            raise ValueError(
                "must not hold credentials or a query string; give such a URL with url_env "
                "or url_file"
            )
        return value

    @model_validator(mode="after")
    def _one_each(self) -> EventEndpoint:
        if sum(x is not None for x in (self.url, self.url_env, self.url_file)) != 1:
            raise ValueError("give exactly one of 'url', 'url_env' or 'url_file'")
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of 'secret_env' or 'secret_file'")
        return self

    @property
    def label(self) -> str:
        """The endpoint's name in the outbox and in messages: never the URL's secret parts."""
        if self.name is not None:
            return self.name
        if self.url is not None:
            parts = urlsplit(self.url)
            return f"{parts.scheme}://{parts.netloc}{parts.path}"[:200]
        if self.url_env is not None:
            return f"${self.url_env}"
        return str(self.url_file)[:200]

    @property
    def event_types(self) -> frozenset[EventType]:
        return ALL_TYPES if self.types is None else frozenset(self.types)

    def resolve_url(self) -> str:
        """The URL to post to (from the environment or a file when so configured)."""
        if self.url is not None:
            return self.url
        if self.url_env is not None:
            value = read_env(self.url_env, f"events endpoint {self.label}: url_env")
        else:
            assert self.url_file is not None
            value = read_file(self.url_file, f"events endpoint {self.label}: url_file")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"events endpoint {self.label}: the URL is not http:// or https://")
        return value

    def secret(self) -> Secret:
        if self.secret_file is not None:
            field = f"events endpoint {self.label}: secret_file"
            return Secret(read_file(self.secret_file, field))
        assert self.secret_env is not None
        return Secret(read_env(self.secret_env, f"events endpoint {self.label}: secret_env"))


class EventsConfig(Section):
    """Signed rotation events for consumers, delivered at least once through an outbox."""

    endpoints: list[EventEndpoint] = []
    timeout: Duration = timedelta(seconds=10)
    retry_base: Duration = timedelta(seconds=5)
    retry_max: Duration = timedelta(hours=1)
    poll_interval: Duration = timedelta(seconds=2)
    # Delivered rows are the delivery log; None keeps them for ever (the audit log is the
    # record of what happened either way).
    keep_delivered: Duration | None = None

    @model_validator(mode="after")
    def _distinct(self) -> EventsConfig:
        labels = [e.label for e in self.endpoints]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"endpoints must differ (give each a 'name'): {', '.join(twice)}")
        if self.retry_base <= timedelta(0) or self.retry_max < self.retry_base:
            raise ValueError("need 0 < retry_base <= retry_max")
        if self.keep_delivered is not None and self.keep_delivered < timedelta(hours=1):
            raise ValueError("keep_delivered must be at least 1h (or null: keep for ever)")
        return self


class WatchConfig(Section):
    """Drift watch: every key's secrets listed on a cadence and compared with what rotator knows."""

    enabled: bool = True
    interval: Duration = timedelta(minutes=15)
    on_drift: Literal["alert", "emergency"] = "alert"

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value
