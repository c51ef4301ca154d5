"""``rotator check``: each piece of config and connectivity, one actionable line each.

Besides failures it warns (exit status unchanged) about what makes a leak likely: a config or
credential file others can read, credentials written into a URL, plain http:// to a remote
Vault or Vonage.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from rotator import db
from rotator.config import AppRoleAuth, Config, TokenAuth, is_loopback
from rotator.errors import RotatorError
from rotator.ratelimit import RateLimiter
from rotator.redact import safe_url
from rotator.vault import VaultStore
from rotator.vonage import VonageClient


@dataclass(frozen=True)
class CheckResult:
    area: str
    ok: bool
    message: str
    warning: bool = False

    @property
    def label(self) -> str:
        """``ok  ``, ``WARN`` or ``FAIL``: the first column of ``rotator check``."""
        return "FAIL" if not self.ok else "WARN" if self.warning else "ok  "


def _warn(area: str, message: str) -> CheckResult:
    return CheckResult(area, True, message, warning=True)


def _readable_by_others(path: Path, area: str, what: str) -> list[CheckResult]:
    try:
        mode = path.stat().st_mode
    except OSError:
        return []  # a missing file is reported by the check that needs it
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        shown = f"{stat.S_IMODE(mode):04o}"
        return [_warn(area, f"{what} {path} is readable by group or others ({shown}): chmod 600")]
    return []


def security_warnings(config: Config, config_path: Path | None = None) -> list[CheckResult]:
    """What in the config or on disk makes a leak likely; pure apart from ``stat``."""
    results: list[CheckResult] = []
    if config_path is not None:
        results += _readable_by_others(Path(config_path), "config", "config file")
    auth = config.vault.auth
    if isinstance(auth, TokenAuth) and auth.token_file is not None:
        results += _readable_by_others(auth.token_file, "vault", "vault.auth.token_file")
    if isinstance(auth, AppRoleAuth) and auth.secret_id_file is not None:
        results += _readable_by_others(auth.secret_id_file, "vault", "vault.auth.secret_id_file")
    results += grace_warnings(config)
    database = urlsplit(config.database.url)
    if database.password:
        hint = "remove it and use $PGPASSWORD or ~/.pgpass"
        results.append(_warn("database", f"database.url holds a password; {hint}"))
    webhook = config.notify.webhook_url
    if webhook and (urlsplit(webhook).username or urlsplit(webhook).password):
        where = safe_url(webhook)
        message = (
            f"notify.webhook_url ({where}) holds credentials (user:pass@): they end up in logs"
        )
        results.append(_warn("notify", message))
    for name, url in (
        ("vault.url", config.vault.url),
        ("vonage.api_url", config.vonage.api_url),
        ("vonage.rest_url", config.vonage.rest_url),
    ):
        parts = urlsplit(url)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            message = f"{name} {safe_url(url)} is plain http:// to a remote host: use https://"
            results.append(_warn(name.partition(".")[0], message))
    return results


def grace_warnings(config: Config) -> list[CheckResult]:
    """A grace period of 0s revokes the old secret the moment the new one is current: every
    application that built its client at start-up gets 401s until it restarts."""
    keys = ["rotation.grace_period"] if config.rotation.grace_period <= timedelta(0) else []
    keys += [
        f"accounts.overrides {o.api_key}"
        for o in config.accounts.overrides
        if o.grace_period is not None and o.grace_period <= timedelta(0)
    ]
    return [
        _warn(
            "rotation",
            f"{where}: grace period 0s: applications that cache the secret get 401s at each "
            "rotation until they re-read Vault (see README, 'Grace period')",
        )
        for where in keys
    ]


def _check(area: str, results: list[CheckResult], test: Callable[[], str]) -> bool:
    try:
        results.append(CheckResult(area, True, test()))
        return True
    except RotatorError as exc:
        results.append(CheckResult(area, False, str(exc)))
        return False


def run_checks(config: Config, config_path: Path | None = None) -> list[CheckResult]:
    results: list[CheckResult] = [CheckResult("config", True, "valid")]
    results += security_warnings(config, config_path)
    _check("database", results, lambda: _database(config))
    vault = VaultStore(config.vault)
    vault_ok = _check("vault", results, lambda: _vault_reach(config, vault)) and _check(
        "vault", results, lambda: _vault_policy(vault)
    )
    if not vault_ok:
        results.append(CheckResult("vonage", False, "not checked: needs Vault for the primary"))
        return results
    vonage = VonageClient(config.vonage, limiter=RateLimiter(config.vonage.max_calls_per_second))
    try:
        if _check("vonage", results, lambda: _vonage_auth(config, vault, vonage)):
            _check("vonage", results, lambda: _vonage_manage(config, vault, vonage))
    finally:
        vonage.close()
    return results


def _database(config: Config) -> str:
    engine = db.make_engine(config.database.url)
    try:
        db.require_migrated(engine)
    finally:
        engine.dispose()
    return f"{db.safe_url(config.database.url)} reachable, schema current"


def _vault_reach(config: Config, vault: VaultStore) -> str:
    vault.login()
    vault.health()
    return f"{config.vault.url} reachable, unsealed, token valid"


def _vault_policy(vault: VaultStore) -> str:
    missing = vault.missing_capabilities()
    if missing:
        lacking = "; ".join(f"{p.removesuffix('/x')}/*: {', '.join(sorted(c))}" for p, c in
                            sorted(missing.items()))  # fmt: skip
        raise RotatorError(
            f"the token lacks {lacking}",
            hint="apply deploy/vault/rotator-policy.hcl to rotator's token",
        )
    return "token may read and write rotator's paths"


def _vonage_auth(config: Config, vault: VaultStore, vonage: VonageClient) -> str:
    primary = config.vonage.primary_api_key
    vonage.get_balance(vault.credentials(primary))
    return f"primary {primary} authenticates at {config.vonage.rest_url}"


def _vonage_manage(config: Config, vault: VaultStore, vonage: VonageClient) -> str:
    primary = config.vonage.primary_api_key
    creds = vault.credentials(primary)
    count = len(vonage.list_secrets(creds, primary).secrets)
    subs = vonage.list_subaccounts(creds).subaccounts
    active = sum(1 for s in subs if not s.suspended)
    return f"may manage secrets ({count} on the primary); {active} active subaccounts"
