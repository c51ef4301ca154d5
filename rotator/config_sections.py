"""The configuration's sections about what rotator rotates and where: Vonage, Vault (and its
auth methods), the database, the rotation and its schedule/window, the accounts and logging.
``rotator.config`` puts them together (``Config``) and re-exports them.

Unknown keys are errors, and no field holds a secret value: tokens and secret-ids are named by
environment variable or file path (``read_env``, ``read_file``).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from rotator import policy
from rotator.durations import parse_duration
from rotator.errors import ConfigError
from rotator.identifiers import is_api_key, parse_api_key
from rotator.secret import Secret

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo must not disable a safety feature)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _api_key(value: object) -> str:
    """A config API key through ``rotator.identifiers`` (pydantic reports the ValueError)."""
    if not is_api_key(value):
        raise ValueError("not a valid Vonage API key (1-64 letters, digits, '_' or '-')")
    return parse_api_key(value)


ApiKeyField = Annotated[str, AfterValidator(_api_key)]


def _vault_path(value: str) -> str:
    """A Vault path: no leading or trailing '/', never empty, never climbing with '..'."""
    value = value.strip("/")
    if not value or ".." in value.split("/"):
        raise ValueError("must be a non-empty path without '..'")
    return value


VaultPath = Annotated[str, AfterValidator(_vault_path)]


class VonageConfig(Section):
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


class TokenAuth(Section):
    method: Literal["token"] = "token"
    token_env: str | None = "VAULT_TOKEN"  # noqa: S105 - a variable name
    token_file: Path | None = None

    def token(self) -> Secret:
        if self.token_file is not None:
            return Secret(read_file(self.token_file, "vault.auth.token_file"))
        return Secret(read_env(self.token_env or "VAULT_TOKEN", "vault.auth.token_env"))


class AppRoleAuth(Section):
    method: Literal["approle"]
    role_id: str = Field(min_length=1)
    secret_id_env: str | None = "VAULT_SECRET_ID"  # noqa: S105 - a variable name
    secret_id_file: Path | None = None
    mount_point: str = "approle"

    def secret_id(self) -> Secret:
        if self.secret_id_file is not None:
            return Secret(read_file(self.secret_id_file, "vault.auth.secret_id_file"))
        name = self.secret_id_env or "VAULT_SECRET_ID"
        return Secret(read_env(name, "vault.auth.secret_id_env"))


class KubernetesAuth(Section):
    method: Literal["kubernetes"]
    role: str = Field(min_length=1)
    jwt_path: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    mount_point: str = "kubernetes"

    def jwt(self) -> Secret:
        return Secret(read_file(self.jwt_path, "vault.auth.jwt_path"))


class VaultConfig(Section):
    url: str = "http://127.0.0.1:8200"
    auth: Annotated[TokenAuth | AppRoleAuth | KubernetesAuth, Field(discriminator="method")] = (
        TokenAuth()
    )
    mount: VaultPath = "secret"
    path_prefix: VaultPath = "vonage"
    state_prefix: VaultPath = Field(
        default="rotator-state",
        description="where pending and previous secrets live, apart from what applications read",
    )
    namespace: str | None = None
    timeout: Duration = timedelta(seconds=10)
    verify_tls: bool = True
    ca_cert: Path | None = None

    @model_validator(mode="after")
    def _apart(self) -> VaultConfig:
        if self.path_prefix == self.state_prefix:
            raise ValueError("path_prefix and state_prefix must differ")
        return self


class DatabaseConfig(Section):
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


class Window(Section):
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


class Schedule(Section):
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


class RotationConfig(Section):
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


class AccountOverride(Section):
    api_key: ApiKeyField
    schedule: Schedule | None = None
    grace_period: Duration | None = None
    secret_length: int | None = None

    @field_validator("secret_length")
    @classmethod
    def _length(cls, value: int | None) -> int | None:
        # Checked here, not at rotation time, where generate() would refuse it mid-run.
        return None if value is None else policy.check_length(value)


class AccountsConfig(Section):
    discover_subaccounts: bool = True
    discovery_interval: Duration = timedelta(hours=1)
    include: list[str] = ["*"]
    exclude: list[str] = []
    overrides: list[AccountOverride] = []


class LoggingConfig(Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


def read_env(name: str, field: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"{field}: environment variable {name} is not set")
    return value


def read_file(path: Path, field: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{field}: cannot read {path}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{field}: {path} is empty")
    return value
