"""Builds rotator's collaborators from a config, in one place, for the CLI and the daemon."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from rotator import db, startup
from rotator.audit import AuditLog
from rotator.config import Config
from rotator.lease import Leases
from rotator.ratelimit import RateLimiter
from rotator.rotation import Rotator
from rotator.runio import no_boundary
from rotator.vault import VaultStore
from rotator.vonage import VonageClient

if TYPE_CHECKING:
    from rotator.events.outbox import OutboxWriter


@dataclass
class Services:
    config: Config
    engine: Engine
    audit: AuditLog
    leases: Leases
    vault: VaultStore
    vonage: VonageClient
    rotator: Rotator

    def close(self) -> None:
        self.vonage.close()
        self.vault.close()
        self.engine.dispose()


def open_database(config: Config, *, migrate: bool = True) -> Engine:
    # A pooled connection for each rotation worker and for the daemon's own threads (jobs,
    # housekeeping, deliveries, the HTTP endpoints): none reopened per transaction.
    engine = db.make_engine(config.database.url, pool_size=config.rotation.max_parallel + 4)
    if migrate:
        if not db.at_head(engine):  # one query; Alembic is loaded only to migrate
            db.upgrade(engine)
    else:
        db.require_migrated(engine)
    return engine


def build(
    config: Config,
    *,
    migrate: bool = True,
    limiter: RateLimiter | None = None,
    boundary: Callable[[str], None] | None = None,
) -> Services:
    """``boundary``: called around every rotation step (see ``Rotator``); none by default."""
    engine = open_database(config, migrate=migrate)
    from rotator.anchor import VaultAnchor

    vault = VaultStore(config.vault)
    audit = AuditLog(engine, outbox=_outbox(config), anchor=VaultAnchor(vault))
    leases = Leases(engine, ttl=config.rotation.lease_ttl)
    vonage = VonageClient(
        config.vonage, limiter=limiter or RateLimiter(config.vonage.max_calls_per_second)
    )
    rotator = Rotator(
        config,
        vault=vault,
        vonage=vonage,
        audit=audit,
        leases=leases,
        boundary=boundary or no_boundary,
    )
    startup.done()  # what start-up allocated lives on; collect as usual for the work itself
    return Services(config, engine, audit, leases, vault, vonage, rotator)


def _outbox(config: Config) -> OutboxWriter | None:
    """The webhook outbox's writer, when endpoints are configured (the deliverer's module, with
    its HTTP client and metrics, is imported only then)."""
    if not config.events.endpoints:
        return None
    from rotator.events.deliverer import writer_for

    return writer_for(config)
