"""The configuration file: pydantic models, loaded from YAML.

Unknown keys are errors (a typo must not silently disable a safety feature), and no field can hold
a secret value: tokens and secret-ids are named by environment variable or file path.

The sections live in ``rotator.config_sections`` (what is rotated, and where) and
``rotator.config_services`` (what rotator offers and tells); their names are re-exported here.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from rotator.config_sections import (
    DEFAULT_GRACE,
    WEEKDAYS,
    AccountOverride,
    AccountsConfig,
    ApiKeyField,
    AppRoleAuth,
    DatabaseConfig,
    Duration,
    KubernetesAuth,
    LoggingConfig,
    RotationConfig,
    Schedule,
    Section,
    TokenAuth,
    VaultConfig,
    VonageConfig,
    Weekday,
    Window,
)
from rotator.config_services import (
    ControlConfig,
    EventEndpoint,
    EventsConfig,
    HttpConfig,
    NotifyConfig,
    SmsConfig,
    WatchConfig,
    is_loopback,
)
from rotator.errors import ConfigError

CONFIG_ENV = "ROTATOR_CONFIG"


class Config(Section):
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


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_GRACE",
    "WEEKDAYS",
    "AccountOverride",
    "AccountsConfig",
    "ApiKeyField",
    "AppRoleAuth",
    "Config",
    "ControlConfig",
    "DatabaseConfig",
    "Duration",
    "EventEndpoint",
    "EventsConfig",
    "HttpConfig",
    "KubernetesAuth",
    "LoggingConfig",
    "NotifyConfig",
    "RotationConfig",
    "Schedule",
    "SmsConfig",
    "TokenAuth",
    "VaultConfig",
    "VonageConfig",
    "WatchConfig",
    "Weekday",
    "Window",
    "is_loopback",
    "load_config",
    "parse_config",
]
