"""The audit database's tables, declared as classes. The schema itself is made only by Alembic
(``migrations/``); these classes must match it (a test compares them).

Core tables, not the ORM (nothing here needs a session, identity map or relationship; importing
and configuring ``sqlalchemy.orm`` was a tenth of a CLI command's start-up, issue 12). Each class
keeps the declarative spelling the code relies on: ``RunRow.api_key`` is the table's column (for
queries), ``run.api_key`` a row's value, ``sa.select(RunRow)`` and ``sa.insert(RunRow)`` use the
table, and ``RunRow(**values)`` makes a detached row (a column not given reads as ``None``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar, overload

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

T = TypeVar("T")

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


class Col(Generic[T]):
    """A column of a row class: on the class, the table's ``Column``; on a row, its value."""

    def __init__(self, type_: Any, *args: Any, nullable: bool = False, **kwargs: Any) -> None:
        self.spec = (type_, args, nullable, kwargs)
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    def column(self) -> Column[Any]:
        type_, args, nullable, kwargs = self.spec
        return Column(self.name, type_, *args, nullable=nullable, **kwargs)

    @overload
    def __get__(self, row: None, owner: type[Any]) -> Column[T]: ...
    @overload
    def __get__(self, row: object, owner: type[Any]) -> T: ...
    def __get__(self, row: object | None, owner: type[Any]) -> Column[T] | T | None:
        if row is None:
            column: Column[T] = owner.__table__.c[self.name]
            return column
        return None  # a row made without this column (set ones live in the row's __dict__)


class Base:
    """A table as a class: subclasses name ``__tablename__`` and declare ``Col`` attributes."""

    metadata: ClassVar[MetaData] = MetaData(naming_convention=NAMING)
    __tablename__: ClassVar[str]
    __table__: ClassVar[Table]
    __table_args__: ClassVar[tuple[Any, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        columns = [v.column() for v in vars(cls).values() if isinstance(v, Col)]
        cls.__table__ = Table(cls.__tablename__, cls.metadata, *columns, *cls.__table_args__)

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.__table__.c.keys())
        if unknown:
            raise TypeError(f"{type(self).__name__} has no column {sorted(unknown)[0]!r}")
        self.__dict__.update(values)

    @classmethod
    def __clause_element__(cls) -> Table:
        """What ``sa.select(RunRow)``, ``sa.insert(RunRow)`` and friends act on."""
        return cls.__table__


class RunRow(Base):
    """One rotation run: the operational summary, updated as the run progresses."""

    __tablename__ = "rotation_runs"

    id: Col[str] = Col(String(36), primary_key=True)
    api_key: Col[str] = Col(String(64), index=True)
    trigger: Col[str] = Col(String(16))
    reason: Col[str | None] = Col(Text, nullable=True)
    actor: Col[str] = Col(String(128))
    status: Col[str] = Col(String(24), index=True)
    emergency: Col[int] = Col(Integer, default=0)
    old_secret_id: Col[str | None] = Col(String(64), nullable=True)
    new_secret_id: Col[str | None] = Col(String(64), nullable=True)
    started_at: Col[datetime] = Col(UTCDateTime)
    finished_at: Col[datetime | None] = Col(UTCDateTime, nullable=True)
    revoke_after: Col[datetime | None] = Col(UTCDateTime, nullable=True)
    error: Col[str | None] = Col(Text, nullable=True)
    owner: Col[str] = Col(String(200))


class AuditEventRow(Base):
    """One step of a run (or a daemon event), append-only and hash-chained in its ``chain`` (the
    api key; "" for events about no key, for the folds of every key's head, and for events
    written before migration 0004). ``seq`` is unique across chains, ``chain_seq`` counts 1, 2, …
    within one."""

    __tablename__ = "audit_events"

    seq: Col[int] = Col(Integer, primary_key=True, autoincrement=False)
    chain: Col[str] = Col(String(64), server_default="")
    chain_seq: Col[int] = Col(Integer, server_default="0")
    run_id: Col[str | None] = Col(String(36), index=True, nullable=True)
    api_key: Col[str | None] = Col(String(64), index=True, nullable=True)
    step: Col[str] = Col(String(32))
    outcome: Col[str] = Col(String(16))
    started_at: Col[datetime] = Col(UTCDateTime)
    finished_at: Col[datetime] = Col(UTCDateTime)
    actor: Col[str | None] = Col(String(128), nullable=True)
    secret_id: Col[str | None] = Col(String(64), nullable=True)
    request_id: Col[str | None] = Col(String(64), nullable=True)
    vault_version: Col[int | None] = Col(Integer, nullable=True)
    error: Col[str | None] = Col(Text, nullable=True)
    detail: Col[str | None] = Col(Text, nullable=True)
    prev_hash: Col[str] = Col(String(64))
    hash: Col[str] = Col(String(64), unique=True)

    __table_args__ = (Index("uq_audit_events_chain_seq", "chain", "chain_seq", unique=True),)


class HeadRow(Base):
    """The newest event of each chain. Appenders lock their chain's row (so appends of two keys
    never wait for each other); ``folded_seq`` is the ``chain_seq`` the global chain ("") last
    recorded for it; ``txid`` orders changes for pollers (the PostgreSQL transaction id, on
    SQLite the event's ``seq``). Writable by the daemon role only."""

    __tablename__ = "audit_heads"

    chain: Col[str] = Col(String(64), primary_key=True)
    seq: Col[int] = Col(Integer)
    hash: Col[str] = Col(String(64))
    folded_seq: Col[int] = Col(Integer, server_default="0")
    txid: Col[int] = Col(BigInteger, server_default="0", index=True)


class LeaseRow(Base):
    """Who may rotate a key right now. ``token`` only grows: a fencing token."""

    __tablename__ = "key_leases"

    api_key: Col[str] = Col(String(64), primary_key=True)
    owner: Col[str] = Col(String(200))
    token: Col[int] = Col(Integer)
    acquired_at: Col[datetime] = Col(UTCDateTime)
    expires_at: Col[datetime] = Col(UTCDateTime)
    run_id: Col[str | None] = Col(String(36), nullable=True)


class OutboxRow(Base):
    """One event for one consumer endpoint, written in the transaction of the audit event it
    reports; ``id`` orders an endpoint's deliveries. Delivered rows stay, as a delivery log, for
    ``events.keep_delivered`` (for ever by default)."""

    __tablename__ = "event_outbox"

    id: Col[int] = Col(Integer, primary_key=True, autoincrement=True)
    message_id: Col[str] = Col(String(64))  # webhook-id: the same on every retry
    endpoint: Col[str] = Col(String(200))
    event_type: Col[str] = Col(String(32))
    api_key: Col[str | None] = Col(String(64), nullable=True)
    run_id: Col[str | None] = Col(String(36), nullable=True)
    audit_seq: Col[int | None] = Col(Integer, nullable=True)
    payload: Col[str] = Col(Text)  # the exact JSON body that is signed and sent
    status: Col[str] = Col(String(16))  # pending | delivered
    created_at: Col[datetime] = Col(UTCDateTime)
    next_attempt_at: Col[datetime] = Col(UTCDateTime)
    attempts: Col[int] = Col(Integer, default=0)
    last_error: Col[str | None] = Col(Text, nullable=True)
    claimed_by: Col[str | None] = Col(String(200), nullable=True)
    claimed_until: Col[datetime | None] = Col(UTCDateTime, nullable=True)
    delivered_at: Col[datetime | None] = Col(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("endpoint", "message_id", name="uq_event_outbox_endpoint_message"),
        Index("ix_event_outbox_endpoint_status", "endpoint", "status", "id"),
    )


class KeyHoldRow(Base):
    """An operator's hold on a key (``rotator pause``; ``*`` for every key), and when its
    failure count was last cleared (``rotator resume``, which ends a ``stuck`` key)."""

    __tablename__ = "key_holds"

    api_key: Col[str] = Col(String(64), primary_key=True)
    paused: Col[int] = Col(Integer)
    paused_until: Col[datetime | None] = Col(UTCDateTime, nullable=True)
    reason: Col[str | None] = Col(Text, nullable=True)
    actor: Col[str | None] = Col(String(200), nullable=True)
    changed_at: Col[datetime] = Col(UTCDateTime)
    cleared_at: Col[datetime | None] = Col(UTCDateTime, nullable=True)
