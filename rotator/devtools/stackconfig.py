"""The config of a local stack (the Vonage simulator, an OpenBao, a database), written as an
operator would write it, shared by the demo, the tests, the benchmarks and the chaos harness:
only the endpoints point at the local stand-ins; each caller merges in its own settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rotator.devtools.simulator import VonageSimulator


def stack_config(
    sim: VonageSimulator,
    *,
    vault_url: str,
    vault_auth: dict[str, str],
    database_url: str,
    path_prefix: str = "vonage",
    state_prefix: str = "rotator-state",
    mount: str = "secret",
) -> dict[str, Any]:
    """The vonage, vault and database sections; ``vault_auth`` is e.g. ``{"method": "token",
    "token_env": NAME}``."""
    return {
        "vonage": {
            "primary_api_key": sim.primary_api_key,
            "api_url": sim.api_url,
            "rest_url": sim.rest_url,
        },
        "vault": {
            "url": vault_url,
            "auth": vault_auth,
            "mount": mount,
            "path_prefix": path_prefix,
            "state_prefix": state_prefix,
        },
        "database": {"url": database_url},
        # Local stacks rotate every few seconds: no grace period unless the caller sets one
        # (the default, hours, must stay shorter than the schedule).
        "rotation": {"grace_period": "0s"},
    }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, section by section (nested dicts merge)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
