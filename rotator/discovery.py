"""Which keys the daemon manages: the primary and, via the Subaccounts API, its subaccounts.

Include/exclude globs match a key or its name; suspended subaccounts are dropped (they cannot
authenticate, so rotating them could only fail). Changes to the managed set are audit events
(step ``discovery``, outcome ``added``/``removed``), and the set last recorded there is what
the next discovery compares against, so a restart does not re-announce every key.

A listed key that fails ``rotator.identifiers`` validation (``/``, ``..``, a control character)
is quarantined, not managed: it is reported (sanitised) in ``quarantined`` while every other key
is managed as usual — one hostile entry never stops discovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from rotator.audit import DISCOVERY_STEP, AuditLog, EventFields
from rotator.clock import utcnow
from rotator.config import Config
from rotator.scheduling import selected
from rotator.vault import VaultStore
from rotator.vonage import VonageClient

log = structlog.get_logger("rotator.discovery")


@dataclass(frozen=True, kw_only=True)
class Account:
    api_key: str
    name: str | None = None
    primary: bool = False


@dataclass(frozen=True, kw_only=True)
class Discovered:
    accounts: list[Account]
    added: list[str]
    removed: list[str]
    quarantined: list[str] = field(default_factory=list)  # refused keys, sanitised

    def api_keys(self) -> set[str]:
        return {a.api_key for a in self.accounts}


class Discovery:
    def __init__(
        self, config: Config, *, audit: AuditLog, vault: VaultStore, vonage: VonageClient
    ) -> None:
        self._config = config
        self._audit = audit
        self._vault = vault
        self._vonage = vonage

    @property
    def primary(self) -> str:
        return self._config.vonage.primary_api_key

    def accounts(self) -> list[Account]:
        """The keys to manage now (raises VaultError/VonageError when they cannot be listed)."""
        return self._listing()[0]

    def _listing(self) -> tuple[list[Account], list[str]]:
        """The keys to manage, and the listed keys refused as invalid (quarantined)."""
        accounts = self._config.accounts
        found = [Account(api_key=self.primary, primary=True)]
        refused: list[str] = []
        if accounts.discover_subaccounts:
            creds = self._vault.credentials(self.primary)
            listing = self._vonage.list_subaccounts(creds)
            refused = list(listing.refused)
            for sub in listing.subaccounts:
                if sub.suspended or sub.api_key == self.primary:
                    continue
                found.append(Account(api_key=sub.api_key, name=sub.name))
        else:
            # Without discovery, keys named in accounts.overrides are managed besides the primary.
            for override in accounts.overrides:
                if override.api_key != self.primary:
                    found.append(Account(api_key=override.api_key))
        chosen = [
            a
            for a in found
            if selected(a.api_key, a.name, include=accounts.include, exclude=accounts.exclude)
        ]
        return chosen, refused

    def discover(self) -> Discovered:
        """List the accounts and record what changed since the last recorded discovery."""
        accounts, quarantined = self._listing()
        now_keys = {a.api_key for a in accounts}
        known = self.recorded_keys()
        added = sorted(now_keys - known)
        removed = sorted(known - now_keys)
        changes = [(k, "added") for k in added] + [(k, "removed") for k in removed]
        # One batch, not one transaction per key: a first start with 10,000 keys (issue 12).
        self._audit.record_many(
            [
                EventFields(
                    step=DISCOVERY_STEP,
                    outcome=outcome,
                    started_at=utcnow(),
                    api_key=key,
                    actor="rotator-daemon",
                )
                for key, outcome in changes
            ]
        )
        for key, outcome in changes:
            log.info("discovery_" + outcome, api_key=key)
        return Discovered(accounts=accounts, added=added, removed=removed, quarantined=quarantined)

    def recorded_keys(self) -> set[str]:
        """Keys whose newest discovery event says ``added``."""
        return self._audit.discovered_keys()


__all__ = ["Account", "Discovered", "Discovery"]
