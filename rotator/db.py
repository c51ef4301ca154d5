"""Connecting to the audit database and migrating it. SQLAlchemy errors become
``DatabaseError`` here and in the repositories that use ``translate_errors``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from rotator.errors import DatabaseError

if TYPE_CHECKING:  # Alembic is imported only when migrating (start-up speed, issue 12)
    from alembic.config import Config as AlembicConfig

# The newest migration in migrations/versions; tests/test_db_head.py keeps it equal to Alembic's.
SCHEMA_HEAD = "0005"


def migrations_dir() -> Path:
    """``migrations/`` in a checkout, or the copy a wheel ships as ``rotator/_migrations``."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise DatabaseError("rotator's migrations directory is missing from this installation")


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "<unparseable database URL>"


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine tuned for many short transactions from several processes. ``pool_size``
    (PostgreSQL): connections kept open, one per thread that uses the database at once (the
    daemon's rotation workers and its own threads); beyond it a connection is closed on return
    and opened anew next time, which costs more CPU than the transaction it serves (issue 12).
    Every checkout is pinged (``pool_pre_ping``): a server restart must cost no rotation its
    next statement; skipping the ping for recently used connections saved ~4 % of a rotation's
    CPU and failed the chaos run's first read after a PostgreSQL restart."""
    try:
        parsed = sa.make_url(url)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"invalid database.url: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            parent = Path(parsed.database).expanduser().resolve().parent
            if not parent.is_dir():
                raise DatabaseError(f"database directory {parent} does not exist")
            with contextlib.suppress(FileExistsError):  # created 0600: it is the audit log
                os.close(
                    os.open(parent / Path(parsed.database).name, os.O_CREAT | os.O_EXCL, 0o600)
                )
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        _sqlite_serialized_writes(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        engine = sa.create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args=_pg_args(),
        )
    except ModuleNotFoundError as exc:
        raise DatabaseError(
            f"the PostgreSQL driver is not installed ({exc.name})",
            hint="pip install 'rotator[postgres]'",
        ) from None
    return engine


# Every rotator session gives up instead of queueing forever behind a lock someone else holds
# (issue 11 item 9) or a statement that never ends; migrations lift both for their transaction.
LOCK_TIMEOUT: Final = "10s"
STATEMENT_TIMEOUT: Final = "60s"


def _pg_args() -> dict[str, Any]:
    return {
        "connect_timeout": 10,
        "application_name": "rotator",
        "options": f"-c lock_timeout={LOCK_TIMEOUT} -c statement_timeout={STATEMENT_TIMEOUT}",
    }


def _sqlite_serialized_writes(engine: Engine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE so read-then-write transactions never deadlock."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")  # first: the WAL switch below may wait
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def translate_errors(what: str, engine: Engine | None = None) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        where = f" at {safe_url(str(engine.url))}" if engine is not None else ""
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = detail[0][:200] if detail else type(exc).__name__
        raise DatabaseError(f"cannot {what}: database{where} failed: {first}") from None


def _alembic_config(connection: Connection) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


_MIGRATION_LOCK = 0x0707_A0D0  # PostgreSQL advisory lock id: one migrator at a time
_STARTUP_LOCK = 0x0707_A0D2  # PostgreSQL advisory lock: replicas starting together migrate once


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one replica migrates while the others wait (then find nothing to do)."""
    if not is_postgres(engine):
        yield
        return
    with translate_errors("lock the schema for migration", engine), engine.connect() as conn:
        conn.execute(sa.text("SET lock_timeout = 0"))  # undone by the rollback on close
        conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _STARTUP_LOCK})
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _STARTUP_LOCK})


def _switch_to_wal(cursor: Any, attempts: int = 50) -> None:
    """Switch a database to WAL. The switch needs the database to itself and SQLite refuses it
    at once (no busy wait) while another process is connecting too: on a fresh database, at
    the first start of several processes. Retried a bounded number of times, briefly."""
    import sqlite3

    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def upgrade(engine: Engine) -> str | None:
    """Bring the schema to the newest migration; returns the revision now applied.

    Every process migrates at start, so several may do it at once on one fresh database: on
    PostgreSQL an advisory lock makes the others wait and then find the schema at head (two
    concurrent CREATE TABLEs would otherwise fail); SQLite's BEGIN IMMEDIATE already serializes.
    """
    from alembic import command

    with translate_errors("migrate the database", engine), engine.begin() as connection:
        if is_postgres(engine):
            connection.execute(sa.text("SET LOCAL lock_timeout = 0"))
            connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK}
            )
        command.upgrade(_alembic_config(connection), "head")
    return current_revision(engine)


def at_head(engine: Engine) -> bool:
    """Whether the schema is at ``SCHEMA_HEAD``: one query, no Alembic (the common case)."""
    with translate_errors("read the schema version", engine), engine.connect() as connection:
        try:
            found = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return list(found.scalars()) == [SCHEMA_HEAD]
        except SQLAlchemyError:  # no version table yet: a new database
            return False


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with translate_errors("read the schema version", engine), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations_dir()))
    return ScriptDirectory.from_config(config).get_current_head()


def require_migrated(engine: Engine) -> None:
    if at_head(engine):
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise DatabaseError(
            f"database schema is at revision {current or 'none'}, rotator needs {head}",
            hint="run `rotator db upgrade`",
        )
