"""Seed files: the accounts and knobs a simulator starts with, as YAML.

``load_seed`` returns keyword arguments for ``VonageSimulator`` so the CLI, the demo and
benchmarks build simulators the same way::

    sim = VonageSimulator(**load_seed(path), api_port=8099, rest_port=8100)

Errors name the offending field but never echo a secret value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from rotator.devtools.simulator.state import secret_problems, validate_api_key
from rotator.errors import ConfigError

DEFAULT_SEED: Final[Mapping[str, Any]] = {
    # Fake credentials of the simulated account: a test double's fixtures, not real secrets.
    "primary": {"api_key": "abcd1234", "secret": "Primary1Secret"},
    "subaccounts": [
        {"api_key": "sub00001", "secret": "Sub1Secret01", "name": "Dept A", "suspended": False},
        {"api_key": "sub00002", "secret": "Sub2Secret02", "name": "Dept B", "suspended": False},
        {"api_key": "sub00003", "secret": "Sub3Secret03", "name": "Dept C", "suspended": False},
    ],
}

_TOP_LEVEL: Final = frozenset(
    {
        "primary",
        "subaccounts",
        "excess_secret_status",
        "propagation_delay",
        "rate_limit",
        "latency",
        "seed",
    }
)
_ACCOUNT: Final = frozenset({"api_key", "secret", "name", "suspended"})

_Fail = Callable[[str], ConfigError]


def load_seed(path: Path | str) -> dict[str, Any]:
    """Read and validate a seed file; returns ``VonageSimulator`` keyword arguments."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"seed file {path}: cannot read it ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"seed file {path}: not valid YAML ({exc})") from exc
    return seed_kwargs(data, source=str(path))


def seed_kwargs(data: object, *, source: str = "seed") -> dict[str, Any]:
    """Validate an already-parsed seed mapping (e.g. ``DEFAULT_SEED``)."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"{source}: {message}", hint="fix the simulator seed file")

    if not isinstance(data, Mapping):
        raise fail("the top level must be a mapping with at least a 'primary' entry")
    unknown = set(data) - _TOP_LEVEL
    if unknown:
        raise fail(f"unknown keys {sorted(map(str, unknown))}; allowed: {sorted(_TOP_LEVEL)}")
    if "primary" not in data:
        raise fail("'primary' is required: {api_key: ..., secret: ...}")
    primary = _account(data["primary"], "primary", fail, allow_sub_fields=False)
    raw_subs = data.get("subaccounts") or []
    if not isinstance(raw_subs, list):
        raise fail("'subaccounts' must be a list")
    subaccounts = [
        _account(sub, f"subaccounts[{i}]", fail, allow_sub_fields=True)
        for i, sub in enumerate(raw_subs)
    ]
    keys = [primary["api_key"], *(sub["api_key"] for sub in subaccounts)]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise fail(f"duplicate api_key(s): {duplicates}")

    kwargs: dict[str, Any] = {
        "primary_api_key": primary["api_key"],
        "primary_secret": primary["secret"],
        "subaccounts": subaccounts,
    }
    return {**kwargs, **_settings(data, fail)}


def _settings(data: Mapping[str, Any], fail: _Fail) -> dict[str, Any]:
    """The simulator's behaviour settings of a seed (limits, delays, the random seed)."""
    kwargs: dict[str, Any] = {}
    if "excess_secret_status" in data:
        status = data["excess_secret_status"]
        if status not in (400, 403) or isinstance(status, bool):
            raise fail("'excess_secret_status' must be 400 or 403")
        kwargs["excess_secret_status"] = status
    for name in ("propagation_delay", "latency"):
        if name in data:
            kwargs[name] = _number(data[name], name, fail, allow_zero=True)
    if data.get("rate_limit") is not None:
        kwargs["rate_limit"] = _number(data["rate_limit"], "rate_limit", fail, allow_zero=False)
    elif "rate_limit" in data:
        kwargs["rate_limit"] = None
    if "seed" in data:
        if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
            raise fail("'seed' must be an integer")
        kwargs["seed"] = data["seed"]
    return kwargs


def _account(raw: object, where: str, fail: _Fail, *, allow_sub_fields: bool) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise fail(f"{where} must be a mapping with 'api_key' and 'secret'")
    allowed = _ACCOUNT if allow_sub_fields else frozenset({"api_key", "secret"})
    unknown = set(raw) - allowed
    if unknown:
        raise fail(f"{where}: unknown keys {sorted(map(str, unknown))}; allowed: {sorted(allowed)}")
    api_key, secret = raw.get("api_key"), raw.get("secret")
    if not isinstance(api_key, str):
        raise fail(f"{where}.api_key is required and must be a string")
    try:
        validate_api_key(api_key)
    except ValueError as exc:
        raise fail(f"{where}.api_key: {exc}") from None
    if not isinstance(secret, str):
        raise fail(f"{where}.secret is required and must be a string (quote it in YAML)")
    problems = secret_problems(secret)
    if problems:
        raise fail(f"{where}.secret is not a valid Vonage secret: it {'; it '.join(problems)}")
    account: dict[str, Any] = {"api_key": api_key, "secret": secret}
    if allow_sub_fields:
        name = raw.get("name")
        if name is not None and not isinstance(name, str):
            raise fail(f"{where}.name must be a string")
        suspended = raw.get("suspended", False)
        if not isinstance(suspended, bool):
            raise fail(f"{where}.suspended must be true or false")
        account["name"] = name
        account["suspended"] = suspended
    return account


def _number(value: object, name: str, fail: _Fail, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        unit = "requests per second" if name == "rate_limit" else "seconds"
        raise fail(f"'{name}' must be a number ({unit})")
    if value < 0 or (value == 0 and not allow_zero):
        raise fail(f"'{name}' must be {'>= 0' if allow_zero else '> 0'}")
    return float(value)
