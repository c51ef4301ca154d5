"""The configuration file: pydantic models, loaded from YAML.

Unknown keys are errors (a typo must not silently disable a safety feature), and no field can hold
a secret value: tokens and secret-ids are named by environment variable or file path.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from rotator import policy
from rotator.durations import parse_duration
from rotator.errors import ConfigError
from rotator.events.types import ALL_TYPES, EventType
from rotator.identifiers import is_api_key, parse_api_key
from rotator.secret import Secret

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
CONFIG_ENV = "ROTATOR_CONFIG"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _api_key(value: object) -> str:
    """A config API key through ``rotator.identifiers`` (pydantic reports the ValueError)."""
    if not is_api_key(value):
        raise ValueError("not a valid Vonage API key (1-64 letters, digits, '_' or '-')")
    return parse_api_key(value)


ApiKeyField = Annotated[str, AfterValidator(_api_key)]


class VonageConfig(_Model):
    primary_api_key: ApiKeyField
    api_url: str = "https://api.nexmo.com"
    rest_url: str = "https://rest.nexmo.com"
    timeout: Duration = timedelta(seconds=10)
    max_calls_per_second: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    # The longest Retry-After rotator honours; a longer one fails the call (VonageRateLimitError)
    # rather than freeze every Vonage call of the process behind the shared limiter.
    max_retry_after: Duration = timedelta(minutes=5)
    verify_tls: bool = True

    @field_validator("api_url", "rest_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("max_retry_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value


class TokenAuth(_Model):
    method: Literal["token"] = "token"
    token_env: str | None = "VAULT_TOKEN"  # noqa: S105 - a variable name
    token_file: Path | None = None

    def token(self) -> Secret:
        if self.token_file is not None:
            return Secret(_read_file(self.token_file, "vault.auth.token_file"))
        return Secret(_read_env(self.token_env or "VAULT_TOKEN", "vault.auth.token_env"))


class AppRoleAuth(_Model):
    method: Literal["approle"]
    role_id: str = Field(min_length=1)
    secret_id_env: str | None = "VAULT_SECRET_ID"  # noqa: S105 - a variable name
    secret_id_file: Path | None = None
    mount_point: str = "approle"

    def secret_id(self) -> Secret:
        if self.secret_id_file is not None:
            return Secret(_read_file(self.secret_id_file, "vault.auth.secret_id_file"))
        name = self.secret_id_env or "VAULT_SECRET_ID"
        return Secret(_read_env(name, "vault.auth.secret_id_env"))


class KubernetesAuth(_Model):
    method: Literal["kubernetes"]
    role: str = Field(min_length=1)
    jwt_path: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    mount_point: str = "kubernetes"

    def jwt(self) -> Secret:
        return Secret(_read_file(self.jwt_path, "vault.auth.jwt_path"))


class VaultConfig(_Model):
    url: str = "http://127.0.0.1:8200"
    auth: Annotated[TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")] = (
        TokenAuth()
    )
    mount: str = "secret"
    path_prefix: str = "vonage"
    state_prefix: str = Field(
        default="rotator-state",
        description="where pending and previous secrets live, apart from what applications read",
    )
    namespace: str | None = None
    timeout: Duration = timedelta(seconds=10)
    verify_tls: bool = True
    ca_cert: Path | None = None

    @field_validator("path_prefix", "state_prefix", "mount")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip("/")
        if not value or ".." in value.split("/"):
            raise ValueError("must be a non-empty path without '..'")
        return value

    @model_validator(mode="after")
    def _apart(self) -> VaultConfig:
        if self.path_prefix == self.state_prefix:
            raise ValueError("path_prefix and state_prefix must differ")
        return self


class DatabaseConfig(_Model):
    url: str = "sqlite:///rotator.db"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _hhmm(value: str) -> str:
    hours, sep, minutes = value.partition(":")
    ok = sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) <= 2
    if not ok or int(minutes) > 59 or int(hours) * 60 + int(minutes) > 24 * 60:
        raise ValueError("must be a UTC time HH:MM, 00:00 to 24:00")
    return f"{int(hours):02d}:{minutes}"


class Window(_Model):
    """When scheduled rotations may start: these days (UTC), from ``start`` to ``end``. An end
    at or before the start runs past midnight into the next day (the day named is the start's)."""

    days: list[Weekday] = list(WEEKDAYS)  # type: ignore[arg-type]
    start: Annotated[str, AfterValidator(_hhmm)] = "00:00"
    end: Annotated[str, AfterValidator(_hhmm)] = "24:00"

    @field_validator("days")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one day")
        return value


class Schedule(_Model):
    interval: Duration | None = None
    cron: str | None = None
    jitter: Duration = timedelta(0)
    window: Window | None = None

    @model_validator(mode="after")
    def _one(self) -> Schedule:
        if (self.interval is None) == (self.cron is None):
            raise ValueError("give exactly one of 'interval' or 'cron'")
        if self.interval is not None and self.interval <= timedelta(0):
            raise ValueError("interval must be positive")
        if self.cron is not None:
            from rotator.cron import cron_trigger

            try:
                cron_trigger(self.cron)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from None
        return self


DEFAULT_GRACE = timedelta(hours=2)


class RotationConfig(_Model):
    secret_length: int = policy.DEFAULT_LENGTH
    verify_timeout: Duration = timedelta(seconds=60)
    # 2h: longer than External Secrets' default refresh (1h) and Vault Agent's static-secret
    # re-render (5 min), plus time for the restart they trigger; see config.example.yaml.
    grace_period: Duration = DEFAULT_GRACE
    schedule: Schedule = Schedule(interval=timedelta(days=30), jitter=timedelta(hours=1))
    on_unidentified: Literal["error", "revoke_older"] = "error"
    lease_ttl: Duration = timedelta(minutes=5)
    lock_wait: Duration = timedelta(seconds=0)
    # The daemon (`rotator run`): how many keys it rotates at once, and how soon it retries a key
    # whose last run failed or was rolled back (instead of waiting a whole schedule interval).
    max_parallel: int = Field(default=4, ge=1, le=64)
    retry_delay: Duration = timedelta(minutes=15)
    # After this many consecutive failed or rolled-back runs a key is `stuck`: no automatic
    # attempt until `rotator resume`.
    max_attempts: int = Field(default=5, ge=1, le=1000)

    @field_validator("secret_length")
    @classmethod
    def _length(cls, value: int) -> int:
        return policy.check_length(value)


class AccountOverride(_Model):
    api_key: ApiKeyField
    schedule: Schedule | None = None
    grace_period: Duration | None = None
    secret_length: int | None = None

    @field_validator("secret_length")
    @classmethod
    def _length(cls, value: int | None) -> int | None:
        # Checked here, not at rotation time, where generate() would refuse it mid-run.
        return None if value is None else policy.check_length(value)


class AccountsConfig(_Model):
    discover_subaccounts: bool = True
    discovery_interval: Duration = timedelta(hours=1)
    include: list[str] = ["*"]
    exclude: list[str] = []
    overrides: list[AccountOverride] = []


class ControlConfig(_Model):
    """The authenticated control API (rotate, pause, resume over HTTP), off by default."""

    enabled: bool = False
    vault_path: str = "rotator-control"  # capabilities asked on <vault_path>/<api_key>/<action>
    max_body: int = Field(default=4096, ge=256, le=65536)  # bytes
    rate_per_minute: int = Field(default=30, ge=1, le=6000)  # per caller
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("vault_path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = value.strip("/")
        if not value or ".." in value.split("/"):
            raise ValueError("must be a non-empty path without '..'")
        return value

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


class HttpConfig(_Model):
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


class SmsConfig(_Model):
    from_: str = Field(default="Rotator", alias="from")
    to: list[str] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NotifyConfig(_Model):
    webhook_url: str | None = None
    sms: SmsConfig = SmsConfig()
    dedup_window: Duration = timedelta(hours=1)


class EventEndpoint(_Model):
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
            value = _read_env(self.url_env, f"events endpoint {self.label}: url_env")
        else:
            assert self.url_file is not None
            value = _read_file(self.url_file, f"events endpoint {self.label}: url_file")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"events endpoint {self.label}: the URL is not http:// or https://")
        return value

    def secret(self) -> Secret:
        if self.secret_file is not None:
            field = f"events endpoint {self.label}: secret_file"
            return Secret(_read_file(self.secret_file, field))
        assert self.secret_env is not None
        return Secret(_read_env(self.secret_env, f"events endpoint {self.label}: secret_env"))


class EventsConfig(_Model):
    """Signed rotation events for consumers, delivered at least once through an outbox."""

    endpoints: list[EventEndpoint] = []
    timeout: Duration = timedelta(seconds=10)
    retry_base: Duration = timedelta(seconds=5)
    retry_max: Duration = timedelta(hours=1)
    poll_interval: Duration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _distinct(self) -> EventsConfig:
        labels = [e.label for e in self.endpoints]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"endpoints must differ (give each a 'name'): {', '.join(twice)}")
        if self.retry_base <= timedelta(0) or self.retry_max < self.retry_base:
            raise ValueError("need 0 < retry_base <= retry_max")
        return self


class WatchConfig(_Model):
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


class LoggingConfig(_Model):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Model):
    vonage: VonageConfig
    vault: VaultConfig = VaultConfig()
    database: DatabaseConfig = DatabaseConfig()
    rotation: RotationConfig = RotationConfig()
    accounts: AccountsConfig = AccountsConfig()
    http: HttpConfig = HttpConfig()
    notify: NotifyConfig = NotifyConfig()
    logging: LoggingConfig = LoggingConfig()
    events: EventsConfig = EventsConfig()
    watch: WatchConfig = WatchConfig()

    @model_validator(mode="after")
    def _grace_shorter_than_schedule(self) -> Config:
        """A grace period as long as the schedule's gap would have each rotation wait for the
        last one's grace: the key would never rotate on time (and used to lock apps out)."""
        default = self.rotation
        checks = [("rotation (every key without an override)", default.grace_period,
                   default.schedule)]  # fmt: skip
        checks += [
            (f"accounts.overrides {o.api_key}",
             default.grace_period if o.grace_period is None else o.grace_period,
             o.schedule or default.schedule)
            for o in self.accounts.overrides
            if o.grace_period is not None or o.schedule is not None
        ]  # fmt: skip
        for where, grace, schedule in checks:
            gap = _shortest_gap(schedule)
            if grace >= gap:
                raise ValueError(
                    f"{where}: grace_period {grace} is not shorter than the rotation "
                    f"schedule's shortest gap {gap}; shorten it or rotate less often"
                )
        return self

    def override_for(self, api_key: str) -> AccountOverride | None:
        return next((o for o in self.accounts.overrides if o.api_key == api_key), None)

    # One method per setting ``accounts.overrides`` can set for a key: every module asks these.

    def schedule_for(self, api_key: str) -> Schedule:
        """The key's own schedule, else ``rotation.schedule``."""
        override = self.override_for(api_key)
        if override is not None and override.schedule is not None:
            return override.schedule
        return self.rotation.schedule

    def grace_period_for(self, api_key: str) -> timedelta:
        """How long the key's old secret outlives a (non-emergency) rotation."""
        override = self.override_for(api_key)
        if override is not None and override.grace_period is not None:
            return override.grace_period
        return self.rotation.grace_period

    def secret_length_for(self, api_key: str) -> int:
        """How many characters the key's new secrets have."""
        override = self.override_for(api_key)
        if override is not None and override.secret_length is not None:
            return override.secret_length
        return self.rotation.secret_length


def _shortest_gap(schedule: Schedule) -> timedelta:
    if schedule.interval is not None:
        return schedule.interval
    from rotator.cron import shortest_gap

    assert schedule.cron is not None
    return shortest_gap(schedule.cron, now=datetime.now(UTC))


def _read_env(name: str, field: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"{field}: environment variable {name} is not set")
    return value


def _read_file(path: Path, field: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{field}: {path} is empty")
    return value


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see config.example.yaml)"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid:\n{_describe(exc)}") from None


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the config from ``path``, or from ``$ROTATOR_CONFIG``."""
    if path is None:
        path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"no config file: pass --config or set {CONFIG_ENV}")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}") from None
    return parse_config(data, str(path))
