"""``rotator adopt``: an operator names the Vonage secret applications use now, for a key
whose current secret rotator cannot tell (two secrets, no record). Under the key's lease,
checked against Vonage, recorded in the audit log with actor and reason."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from rotator.clock import utcnow
from rotator.errors import RotationError, VonageAuthError
from rotator.secret import Credentials, Secret
from rotator.services import Services

log = structlog.get_logger("rotator.adopt")


@dataclass(frozen=True)
class Adopted:
    api_key: str
    secret_id: str
    stored: str  # "record" (value and id in Vault) or "id-only" (rotation will replace it)


def adopt(
    services: Services,
    api_key: str,
    secret_id: str,
    *,
    actor: str,
    reason: str | None,
    value: Secret | None = None,
) -> Adopted:
    started = utcnow()
    lease = services.leases.acquire(api_key, wait=services.config.rotation.lock_wait)
    try:
        admin = services.vault.credentials(services.config.vonage.primary_api_key)
        if value is not None and api_key == admin.api_key:
            admin = Credentials(api_key, value)  # Vault's may be dead (an emergency's hint)
        listed = services.vonage.list_secrets(admin, api_key)
        ids = [s.id for s in listed.secrets]
        if secret_id not in ids:
            raise RotationError(
                f"{api_key} has no secret {secret_id} on Vonage "
                f"(it has: {', '.join(ids) or 'none'})",
                hint="list them with `rotator plan API_KEY`",
            )
        stored = _store(services, api_key, secret_id, value)
        services.audit.record(
            step="adopt",
            outcome="ok",
            started_at=started,
            api_key=api_key,
            actor=actor,
            secret_id=secret_id,
            request_id=listed.request_id,
            detail={"reason": reason, "stored": stored, "secrets_on_vonage": ids},
        )
        log.info("adopted", api_key=api_key, secret_id=secret_id, stored=stored, actor=actor)
        return Adopted(api_key, secret_id, stored)
    finally:
        services.leases.release(lease)


def _store(services: Services, api_key: str, secret_id: str, value: Secret | None) -> str:
    """Record the adoption in Vault: the value with its id when one authenticates (``record``),
    else only the id (``id-only``), which the next rotation replaces."""
    record = services.vault.read_current(api_key)
    candidate = value or (record.api_secret if record else None)
    state = services.vault.read_state(api_key)
    if candidate is not None:
        try:
            services.vonage.get_balance(Credentials(api_key, candidate))
        except VonageAuthError:
            raise RotationError(
                f"the secret value {'given' if value else 'in Vault'} for {api_key} does "
                "not authenticate, so it cannot be the one applications use",
                hint="pass the value applications use with --secret-env VAR",
            ) from None
        services.vault.write_current(
            api_key, candidate, secret_id, cas=record.version if record else 0, run_id=None
        )
    stored = "id-only" if candidate is None else "record"
    # A record names the current secret itself, so no adoption is kept beside it.
    services.vault.update_state(
        api_key, cas=state.version, adopted_id=None if stored == "record" else secret_id
    )
    return stored
