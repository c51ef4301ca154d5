"""Per-key chains on PostgreSQL: appends of different keys never wait for each other, pollers
miss no event committed out of order, no lock any login can take stalls rotator, sessions time
out; the grants file runs as a plain database owner; a 0003 database migrates with its chain."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import DBAPIError

from rotator import db
from rotator.audit import GENESIS, AuditLog, event_hash
from rotator.audit_chain import lock_head
from rotator.clock import utcnow
from tests.conftest import PG_ADMIN_DSN

REPO = Path(__file__).resolve().parent.parent
pg = pytest.mark.postgres


@pytest.fixture
def pg_audit(postgres_url: str) -> Iterator[AuditLog]:
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    yield AuditLog(engine)
    engine.dispose()


def note(audit: AuditLog, key: str | None) -> None:
    audit.record(step="note", outcome="ok", started_at=utcnow(), api_key=key)


@pg
def test_a_key_appends_while_another_keys_chain_is_locked(pg_audit: AuditLog) -> None:
    """Key b's event is written while a transaction holds key a's head (no global lock)."""
    note(pg_audit, "a")
    with pg_audit.engine.begin() as holder:
        lock_head(holder, "a")
        note(pg_audit, "b")  # would wait, then hit lock_timeout, under one global lock
        assert [e.api_key for e in pg_audit.events()] == ["a", "b"]
    assert pg_audit.verify_chain().ok


@pg
def test_poller_sees_an_event_committed_after_a_later_one(pg_audit: AuditLog) -> None:
    """An event that got its seq first but committed last is still reported on the next poll."""
    with pg_audit.engine.begin() as slow:
        pg_audit._append(slow, step="slow", outcome="ok", started_at=utcnow(),
                         finished_at=utcnow(), api_key="a")  # fmt: skip
        note(pg_audit, "b")
        seen, cursor = pg_audit.keys_changed(0)
        assert seen == {"b"}
    later, _ = pg_audit.keys_changed(cursor)
    assert "a" in later


@pg
def test_an_advisory_lock_held_by_any_login_stalls_nothing(pg_audit: AuditLog) -> None:
    """Another login holding the advisory lock the chain used to take does not stop appends."""
    dsn = str(pg_audit.engine.url.set(drivername="postgresql").render_as_string(False))
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (0x0707_A0D1,))
        note(pg_audit, "a")
        note(pg_audit, None)
    assert pg_audit.verify_chain().checked == 2


@pg
def test_rotator_sessions_have_lock_and_statement_timeouts(pg_audit: AuditLog) -> None:
    """Every session gives up on a held lock or a runaway statement instead of hanging."""
    with pg_audit.engine.connect() as conn:
        lock = conn.execute(sa.text("SHOW lock_timeout")).scalar()
        statement = conn.execute(sa.text("SHOW statement_timeout")).scalar()
    assert (lock, statement) == (db.LOCK_TIMEOUT, "1min")


@pg
def test_a_connection_the_server_ended_a_moment_ago_is_replaced_before_use(
    postgres_url: str,
) -> None:
    """A connection used an instant ago, then ended by the server (a restart does the same), is
    not handed out dead: the next audit write works."""
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    audit = AuditLog(engine)
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone() == (True,)
    note(audit, "a")
    assert [e.api_key for e in audit.events()] == ["a"]
    engine.dispose()


@pytest.fixture
def plain_owner() -> Iterator[str]:
    """A throwaway database owned by a role with no superuser, CREATEROLE or CREATEDB."""
    role, name = f"rot_owner_{uuid.uuid4().hex[:8]}", f"rotator_g_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB")
        admin.execute(f"CREATE DATABASE {name} OWNER {role}")
        admin.execute(  # roles are cluster-wide: an administrator makes it once
            "DO $$ BEGIN CREATE ROLE rotator_daemon LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
    server = PG_ADMIN_DSN.rsplit("/", 1)[0].split("@", 1)[1]
    try:
        yield f"postgresql://{role}@{server}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {role}")


@pg
def test_grants_file_runs_as_a_plain_database_owner(plain_owner: str) -> None:
    """The owner migrates and applies deploy/postgres/audit-grants.sql without superuser; the
    daemon role then appends but cannot edit events or lock heads as an outsider could."""
    engine = db.make_engine(plain_owner)
    db.upgrade(engine)
    engine.dispose()
    with psycopg.connect(plain_owner, autocommit=True) as owner:
        owner.execute((REPO / "deploy/postgres/audit-grants.sql").read_text())
    daemon = AuditLog(db.make_engine("postgresql://rotator_daemon@" + plain_owner.split("@")[1]))
    note(daemon, "a")
    assert daemon.verify_chain().ok
    with pytest.raises(DBAPIError, match="permission denied"), daemon.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events"))
    daemon.engine.dispose()


@pg
def test_a_login_without_grants_cannot_lock_a_chain(plain_owner: str) -> None:
    """Locking a head row needs UPDATE on audit_heads, which only the daemon role has."""
    engine = db.make_engine(plain_owner)
    db.upgrade(engine)
    engine.dispose()
    with psycopg.connect(plain_owner, autocommit=True) as owner:
        owner.execute((REPO / "deploy/postgres/audit-grants.sql").read_text())
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE ROLE rotator_nobody LOGIN; "
                      "EXCEPTION WHEN duplicate_object THEN NULL; END $$")  # fmt: skip
    outsider = "postgresql://rotator_nobody@" + plain_owner.split("@", 1)[1]
    with psycopg.connect(outsider) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM audit_heads FOR UPDATE")


def test_a_0003_database_migrates_with_its_chain(database_url: str) -> None:
    """Events written before 0004 become the start of the global chain; new events of keys form
    chains of their own, and the whole log verifies."""
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        command.upgrade(db._alembic_config(conn), "0003")
        prev = GENESIS
        for seq in (1, 2):
            now = utcnow()
            fields = dict(seq=seq, run_id=None, api_key="old", step="legacy", outcome="ok",
                          started_at=now, finished_at=now, actor=None, secret_id=None,
                          request_id=None, vault_version=None, error=None, detail=None)  # fmt: skip
            digest = event_hash(prev, fields)
            conn.execute(
                sa.text("INSERT INTO audit_events (seq, api_key, step, outcome, started_at, "
                        "finished_at, prev_hash, hash) VALUES (:seq, 'old', 'legacy', 'ok', :t, "
                        ":t, :p, :h)"),
                {"seq": seq, "t": now.replace(tzinfo=None), "p": prev, "h": digest},
            )  # fmt: skip
            prev = digest
    db.upgrade(engine)
    audit = AuditLog(engine)
    note(audit, "old")
    note(audit, None)
    with engine.connect() as conn:
        chains = [tuple(r) for r in conn.execute(
            sa.text("SELECT seq, chain, chain_seq FROM audit_events ORDER BY seq"))]  # fmt: skip
    assert chains == [(1, "", 1), (2, "", 2), (3, "old", 1), (4, "", 3)]
    assert audit.verify_chain().ok
    engine.dispose()
