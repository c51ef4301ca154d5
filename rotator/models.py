"""SQLAlchemy models of the audit database. The schema itself is made only by Alembic
(``migrations/``); these classes must match it (a test compares them)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no time zones), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the audit database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RunRow(Base):
    """One rotation run: the operational summary, updated as the run progresses."""

    __tablename__ = "rotation_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    api_key: Mapped[str] = mapped_column(String(64), index=True)
    trigger: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(24), index=True)
    emergency: Mapped[int] = mapped_column(Integer, default=0)
    old_secret_id: Mapped[str | None] = mapped_column(String(64))
    new_secret_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoke_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))


class AuditEventRow(Base):
    """One step of a run (or a daemon event), append-only and hash-chained in its ``chain`` (the
    api key; "" for events about no key, for the folds of every key's head, and for events
    written before migration 0004). ``seq`` is unique across chains, ``chain_seq`` counts 1, 2, …
    within one."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    chain: Mapped[str] = mapped_column(String(64), server_default="")
    chain_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    api_key: Mapped[str | None] = mapped_column(String(64), index=True)
    step: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(128))
    secret_id: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    vault_version: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (Index("uq_audit_events_chain_seq", "chain", "chain_seq", unique=True),)


class HeadRow(Base):
    """The newest event of each chain. Appenders lock their chain's row (so appends of two keys
    never wait for each other); ``folded_seq`` is the ``chain_seq`` the global chain ("") last
    recorded for it; ``txid`` orders changes for pollers (the PostgreSQL transaction id, on
    SQLite the event's ``seq``). Writable by the daemon role only."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    folded_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    txid: Mapped[int] = mapped_column(BigInteger, server_default="0", index=True)


class LeaseRow(Base):
    """Who may rotate a key right now. ``token`` only grows: a fencing token."""

    __tablename__ = "key_leases"

    api_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[str | None] = mapped_column(String(36))


class OutboxRow(Base):
    """One event for one consumer endpoint, written in the transaction of the audit event it
    reports; ``id`` orders an endpoint's deliveries. Delivered rows stay, as a delivery log."""

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same on every retry
    endpoint: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(32))
    api_key: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(36))
    audit_seq: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body that is signed and sent
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("endpoint", "message_id", name="uq_event_outbox_endpoint_message"),
        Index("ix_event_outbox_endpoint_status", "endpoint", "status", "id"),
    )


class KeyHoldRow(Base):
    """An operator's hold on a key (``rotator pause``; ``*`` for every key), and when its
    failure count was last cleared (``rotator resume``, which ends a ``stuck`` key)."""

    __tablename__ = "key_holds"

    api_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[int] = mapped_column(Integer)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
