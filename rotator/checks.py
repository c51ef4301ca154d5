"""``rotator check``: each piece of config and connectivity, one actionable line each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rotator import db
from rotator.config import Config
from rotator.errors import RotatorError
from rotator.ratelimit import RateLimiter
from rotator.vault import VaultStore
from rotator.vonage import VonageClient


@dataclass(frozen=True)
class CheckResult:
    area: str
    ok: bool
    message: str


def _check(area: str, results: list[CheckResult], test: Callable[[], str]) -> bool:
    try:
        results.append(CheckResult(area, True, test()))
        return True
    except RotatorError as exc:
        results.append(CheckResult(area, False, str(exc)))
        return False


def run_checks(config: Config) -> list[CheckResult]:
    results: list[CheckResult] = [CheckResult("config", True, "valid")]

    def database() -> str:
        engine = db.make_engine(config.database.url)
        try:
            db.require_migrated(engine)
        finally:
            engine.dispose()
        return f"{db.safe_url(config.database.url)} reachable, schema current"

    _check("database", results, database)

    vault = VaultStore(config.vault)

    def vault_reach() -> str:
        vault.login()
        vault.health()
        return f"{config.vault.url} reachable, unsealed, token valid"

    def vault_policy() -> str:
        missing = vault.missing_capabilities()
        if missing:
            lacking = "; ".join(f"{p.removesuffix('/x')}/*: {', '.join(sorted(c))}" for p, c in
                                sorted(missing.items()))  # fmt: skip
            raise RotatorError(
                f"the token lacks {lacking}",
                hint="apply deploy/vault/rotator-policy.hcl to rotator's token",
            )
        return "token may read and write rotator's paths"

    vault_ok = _check("vault", results, vault_reach) and _check("vault", results, vault_policy)
    primary = config.vonage.primary_api_key
    if not vault_ok:
        results.append(CheckResult("vonage", False, "not checked: needs Vault for the primary"))
        return results

    vonage = VonageClient(config.vonage, limiter=RateLimiter(config.vonage.max_calls_per_second))
    try:

        def vonage_auth() -> str:
            vonage.get_balance(vault.credentials(primary))
            return f"primary {primary} authenticates at {config.vonage.rest_url}"

        def vonage_manage() -> str:
            creds = vault.credentials(primary)
            count = len(vonage.list_secrets(creds, primary).secrets)
            subs = vonage.list_subaccounts(creds).subaccounts
            active = sum(1 for s in subs if not s.suspended)
            return f"may manage secrets ({count} on the primary); {active} active subaccounts"

        if _check("vonage", results, vonage_auth):
            _check("vonage", results, vonage_manage)
    finally:
        vonage.close()
    return results
