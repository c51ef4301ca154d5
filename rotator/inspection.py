"""Read-only views of keys for ``plan``, ``status`` and ``check``: they only ever GET."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from rotator import runio
from rotator.audit import Run
from rotator.clock import utcnow
from rotator.errors import RotatorError
from rotator.lease import LeaseInfo
from rotator.protocol import Plan, grace_until, plan
from rotator.secret import Credentials
from rotator.services import Services
from rotator.vonage import SecretInfo


def admin_credentials(services: Services) -> Credentials:
    """The primary's credentials, which manage every key's secrets."""
    return services.vault.credentials(services.config.vonage.primary_api_key)


def account_keys(services: Services, admin: Credentials | None = None) -> list[str]:
    """Every key of the account: active subaccounts first, the primary last."""
    return account_listing(services, admin)[0]


def account_listing(
    services: Services, admin: Credentials | None = None
) -> tuple[list[str], list[str]]:
    """``account_keys``, and the listed keys refused as invalid (sanitised; quarantined)."""
    admin = admin or admin_credentials(services)
    listing = services.vonage.list_subaccounts(admin)
    keys = sorted(s.api_key for s in listing.subaccounts if not s.suspended)
    return [*keys, services.config.vonage.primary_api_key], list(listing.refused)


def quarantined_view(label: str) -> KeyView:
    """A listed key refused as invalid: shown, never inspected or rotated."""
    return KeyView(
        api_key=label,
        is_primary=False,
        error="quarantined: Vonage listed an invalid API key; it is skipped",
    )


@dataclass(frozen=True, kw_only=True)
class KeyView:
    api_key: str
    is_primary: bool
    secrets: list[SecretInfo] = field(default_factory=list)
    record_present: bool = False
    record_secret_id: str | None = None
    rotated_at: str | None = None
    pending_id: str | None = None
    pending: bool = False
    previous_id: str | None = None
    adopted_id: str | None = None
    last_run: Run | None = None
    last_success: datetime | None = None
    lease: LeaseInfo | None = None
    grace_until: datetime | None = None  # the previous secret's grace period ends then
    plan: Plan | None = None
    error: str | None = None

    @property
    def current(self) -> SecretInfo | None:
        current_id = self.plan.current_id if self.plan else self.record_secret_id
        return next((s for s in self.secrets if s.id == current_id), None)

    def age(self, now: datetime | None = None) -> timedelta | None:
        current = self.current
        if current is None:
            return None
        return (now or utcnow()) - current.created_at

    def to_json(self) -> dict[str, Any]:
        current = self.current
        age = self.age()
        return {
            "api_key": self.api_key,
            "primary": self.is_primary,
            "secret_count": len(self.secrets),
            "secrets": [
                {"id": s.id, "created_at": s.created_at.isoformat(), "current": s is current}
                for s in self.secrets
            ],
            "current_secret_id": current.id if current else None,
            "current_secret_age_seconds": int(age.total_seconds()) if age else None,
            "vault": {
                "record": self.record_present,
                "secret_id": self.record_secret_id,
                "rotated_at": self.rotated_at,
                "pending": self.pending,
                "pending_secret_id": self.pending_id,
                "previous_secret_id": self.previous_id,
                "adopted_secret_id": self.adopted_id,
            },
            "last_run": self.last_run.to_json() if self.last_run else None,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "grace_until": self.grace_until.isoformat() if self.grace_until else None,
            "lease": (
                {"owner": self.lease.owner, "expires_at": self.lease.expires_at.isoformat()}
                if self.lease and self.lease.active
                else None
            ),
            "plan": (
                {"actions": list(self.plan.actions), "blocked": self.plan.blocked}
                if self.plan
                else None
            ),
            "error": self.error,
        }


def observe(
    services: Services, api_key: str, *, admin: Credentials, emergency: bool = False
) -> KeyView:
    """Everything rotator knows about ``api_key``, and what a rotation would do. Reads only."""
    config = services.config
    primary = config.vonage.primary_api_key
    runs = services.audit.runs(api_key=api_key, limit=1)
    common: dict[str, Any] = {
        "api_key": api_key,
        "is_primary": api_key == primary,
        "last_run": runs[0] if runs else None,
        "last_success": services.audit.last_success(api_key),
        "lease": services.leases.holder(api_key),
    }
    try:
        secrets = services.vonage.list_secrets(admin, api_key).secrets
        record = services.vault.read_current(api_key)
        state = services.vault.read_state(api_key)
        seen = runio.observe(services.vonage, api_key, secrets, record, state)
        seen = replace(seen, promised_until=runio.promised_until(services.audit, api_key))
        decided = plan(
            seen,
            emergency=emergency,
            grace_period=config.grace_period_for(api_key),
            revoke_older_if_unidentified=config.rotation.on_unidentified == "revoke_older",
            now=utcnow(),
        )
    except RotatorError as exc:
        return KeyView(**common, error=str(exc))
    return KeyView(
        **common,
        secrets=secrets,
        record_present=record is not None,
        record_secret_id=record.secret_id if record else None,
        rotated_at=record.rotated_at if record else None,
        pending=state.pending is not None,
        pending_id=state.pending.secret_id if state.pending else None,
        previous_id=seen.previous_id,
        adopted_id=state.adopted_id,
        grace_until=grace_until(seen, now=utcnow(), emergency=False),
        plan=decided,
    )
