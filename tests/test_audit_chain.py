"""Tamper evidence: the audit events are append-only and hash-chained; `audit verify` finds
an edited, deleted or reordered row on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from rotator import db
from rotator.audit import AuditLog
from rotator.clock import utcnow
from tests.conftest import World

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def audit(migrated: World) -> AuditLog:
    log = AuditLog(db.make_engine(migrated.database_url))
    for n in range(6):
        log.record(step=f"step{n}", outcome="ok", started_at=utcnow(), api_key="k", detail={"n": n})
    yield log
    log.engine.dispose()


def disable_guard(engine: sa.Engine) -> None:
    """What an attacker with DDL rights would do first."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_events_no_delete"))


def test_untouched_chain_verifies(audit: AuditLog) -> None:
    """A log nobody touched verifies, and reports how many events and the head hash."""
    report = audit.verify_chain()
    assert report.ok
    assert report.checked == 6
    assert report.head == audit.events()[-1].hash


def test_update_of_an_audit_event_is_refused(audit: AuditLog) -> None:
    """The database itself refuses to change an audit event."""
    with pytest.raises(DBAPIError, match="append-only"), audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET outcome = 'failed' WHERE seq = 2"))


def test_delete_of_an_audit_event_is_refused(audit: AuditLog) -> None:
    """The database itself refuses to delete an audit event."""
    with pytest.raises(DBAPIError, match="append-only"), audit.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 2"))


def test_verify_pinpoints_an_edited_row(audit: AuditLog) -> None:
    """Changing one field of event 3 breaks the chain exactly at event 3."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET outcome = 'failed' WHERE seq = 3"))
    report = audit.verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.problem == "row 3 was altered"


def test_verify_pinpoints_a_deleted_row(audit: AuditLog) -> None:
    """Deleting event 4 is reported as event 4 missing."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    report = audit.verify_chain()
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 4, 3)
    assert report.problem == "row 4 is missing"


def test_verify_pinpoints_reordered_rows(audit: AuditLog) -> None:
    """Swapping the contents of events 2 and 5 is caught at event 2."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET seq = -2 WHERE seq = 2"))
        conn.execute(sa.text("UPDATE audit_events SET seq = 2 WHERE seq = 5"))
        conn.execute(sa.text("UPDATE audit_events SET seq = 5 WHERE seq = -2"))
    report = audit.verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 2
    assert "does not follow" in (report.problem or "")


def test_verify_catches_a_rehashed_edit_by_the_next_row(audit: AuditLog) -> None:
    """Recomputing an edited row's own hash still breaks the link from the row after it."""
    from rotator.audit import _hashed_fields, event_hash
    from rotator.models import AuditEventRow

    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        row = conn.execute(sa.select(AuditEventRow).where(AuditEventRow.seq == 3)).one()
        fields = {**_hashed_fields(row), "outcome": "failed"}
        new_hash = event_hash(row.prev_hash, fields)
        conn.execute(
            sa.text("UPDATE audit_events SET outcome = 'failed', hash = :h WHERE seq = 3"),
            {"h": new_hash},
        )
    report = audit.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_audit_verify_command_reports_the_broken_row(migrated: World, run_cli: Any) -> None:
    """`rotator audit verify` exits 0 on a sound log and 1 naming the first bad event."""
    migrated.seed_primary()
    assert run_cli("rotate", "sub00001").returncode == 0
    ok = run_cli("audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "audit chain verified" in ok.stdout
    engine = db.make_engine(migrated.database_url)
    disable_guard(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    engine.dispose()
    broken = run_cli("audit", "verify")
    assert broken.returncode == 1
    assert "AUDIT CHAIN BROKEN at event 2" in broken.stdout


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_insert_only_role_can_rotate_but_not_rewrite(postgres_url: str, world: World) -> None:
    """With deploy/postgres/audit-grants.sql the daemon's role rotates, but cannot edit the log."""
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    dsn = postgres_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((REPO / "deploy/postgres/audit-grants.sql").read_text())
    engine.dispose()
    daemon_url = postgres_url.replace("//postgres@", "//rotator_daemon@")
    world.database_url = daemon_url
    world.configure(database={"url": daemon_url})
    world.seed_primary()
    outcome = world.services().rotator.rotate("sub00001", actor="daemon")
    assert outcome.ok
    daemon_engine = db.make_engine(daemon_url)
    with pytest.raises(DBAPIError, match="must be owner"), daemon_engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    with pytest.raises(DBAPIError, match="permission denied"), daemon_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events"))
    daemon_engine.dispose()
