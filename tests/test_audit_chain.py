"""Tamper evidence: the audit events are append-only and hash-chained per key; `audit verify`
finds an edited, deleted, reordered or truncated row, and an edited run, on SQLite and
PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from rotator import db
from rotator.audit import AuditLog, RunStatus
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
    """A log nobody touched verifies, and reports how many events and the folded head's hash."""
    head = audit.fold()
    report = audit.verify_chain()
    assert report.ok
    assert report.checked == 7
    assert report.head == head.hash == audit.events()[-1].hash


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
    """Deleting event 4 is reported at the row after the gap, naming the missing event."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 4"))
    report = audit.verify_chain()
    assert (report.ok, report.first_bad_seq, report.checked) == (False, 5, 3)
    assert report.problem == "row 5 (key k): event 4 of its chain is missing"


def test_verify_pinpoints_reordered_rows(audit: AuditLog) -> None:
    """Swapping the contents of events 2 and 5 is caught at event 2."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET seq = -2 WHERE seq = 2"))
        conn.execute(sa.text("UPDATE audit_events SET seq = 2 WHERE seq = 5"))
        conn.execute(sa.text("UPDATE audit_events SET seq = 5 WHERE seq = -2"))
    report = audit.verify_chain()
    assert not report.ok
    assert report.first_bad_seq == 5
    assert report.problem == "row 5 was altered"


def test_verify_catches_rows_reordered_within_their_chain(audit: AuditLog) -> None:
    """Swapping the places of events 2 and 5 in their key's chain breaks the links."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET chain_seq = -2 WHERE seq = 2"))
        conn.execute(sa.text("UPDATE audit_events SET chain_seq = 2 WHERE seq = 5"))
        conn.execute(sa.text("UPDATE audit_events SET chain_seq = 5 WHERE seq = -2 OR seq = 2"))
    report = audit.verify_chain()
    assert not report.ok
    assert "does not follow" in (report.problem or "")


def test_verify_catches_a_deleted_tail(audit: AuditLog) -> None:
    """Deleting a key's newest event leaves its head pointing past the end."""
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 6"))
    report = audit.verify_chain()
    assert not report.ok
    assert report.problem == "key k does not end where its head says (events deleted)"


def test_verify_catches_a_deleted_tail_with_its_head_rewound(audit: AuditLog) -> None:
    """Rewinding the head row too is caught by the fold that recorded the deleted event."""
    audit.fold()
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 6"))
        conn.execute(
            sa.text("UPDATE audit_heads SET seq = 5, hash = (SELECT hash FROM audit_events "
                    "WHERE seq = 5) WHERE chain = 'k'")
        )  # fmt: skip
    report = audit.verify_chain()
    assert not report.ok
    assert report.problem == "event 6 of key k, recorded by the global chain, is missing"


def test_verify_catches_a_fully_recomputed_chain_by_the_anchor(audit: AuditLog) -> None:
    """Rewriting a key's whole chain, its head and the fold verifies alone, but not against the
    head anchored before: the attacker cannot reach the anchor."""
    from rotator.audit import GENESIS, event_hash
    from rotator.audit_chain import hashed_fields
    from rotator.models import AuditEventRow

    anchored = audit.fold()
    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE chain = ''"))
        conn.execute(sa.text("DELETE FROM audit_heads WHERE chain = ''"))
        conn.execute(sa.text("UPDATE audit_heads SET folded_seq = 0"))
        prev = GENESIS
        rows = conn.execute(sa.select(AuditEventRow).order_by(AuditEventRow.seq)).all()
        for row in rows:
            fields = {**hashed_fields(row), "outcome": "forged"}
            new = event_hash(prev, fields)
            conn.execute(
                sa.text("UPDATE audit_events SET outcome = 'forged', prev_hash = :p, hash = :h "
                        "WHERE seq = :s"), {"p": prev, "h": new, "s": row.seq}
            )  # fmt: skip
            prev = new
        conn.execute(sa.text("UPDATE audit_heads SET hash = :h WHERE chain = 'k'"), {"h": prev})
    audit.fold()  # the attacker's own fold, so chain "" is consistent again
    assert audit.verify_chain().ok
    report = audit.verify_chain(anchor=anchored)
    assert not report.ok
    assert "anchored head" in (report.problem or "")


def test_expect_head_must_still_be_in_the_log(audit: AuditLog) -> None:
    """`--expect-head` with a head an auditor noted passes; a head the log lacks fails."""
    head = audit.fold()
    audit.record(step="later", outcome="ok", started_at=utcnow(), api_key="k")
    audit.fold()
    assert audit.verify_chain(expect_head=head.hash).ok
    report = audit.verify_chain(expect_head="f" * 64)
    assert not report.ok
    assert "expected head" in (report.problem or "")


def test_keys_append_to_chains_of_their_own(audit: AuditLog) -> None:
    """Events of two keys and of no key form three chains, each numbered from 1, and verify."""
    audit.record(step="x", outcome="ok", started_at=utcnow(), api_key="other")
    audit.record(step="y", outcome="ok", started_at=utcnow())
    with audit.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT chain, chain_seq FROM audit_events ORDER BY seq"))
        chains = [tuple(r) for r in rows]
    assert chains == [("k", n) for n in range(1, 7)] + [("other", 1), ("", 1)]
    assert audit.verify_chain().ok


def test_verify_catches_a_rehashed_edit_by_the_next_row(audit: AuditLog) -> None:
    """Recomputing an edited row's own hash still breaks the link from the row after it."""
    from rotator.audit import event_hash
    from rotator.audit_chain import hashed_fields
    from rotator.models import AuditEventRow

    disable_guard(audit.engine)
    with audit.engine.begin() as conn:
        row = conn.execute(sa.select(AuditEventRow).where(AuditEventRow.seq == 3)).one()
        fields = {**hashed_fields(row), "outcome": "failed"}
        new_hash = event_hash(row.prev_hash, fields)
        conn.execute(
            sa.text("UPDATE audit_events SET outcome = 'failed', hash = :h WHERE seq = 3"),
            {"h": new_hash},
        )
    report = audit.verify_chain()
    assert (report.ok, report.first_bad_seq) == (False, 4)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status", "'succeeded'"),
        ("actor", "'mallory'"),
        ("reason", "'routine'"),
        ("error", "NULL"),
        ("started_at", "'2099-01-01 00:00:00'"),
    ],
)
def test_verify_catches_an_edited_run(audit: AuditLog, column: str, value: str) -> None:
    """A run row rewritten behind the chain's back (the daemon role may update it) fails verify."""
    run = audit.start_run(api_key="k", trigger="manual", actor="alice", owner="o", reason="leak")
    audit.finish_run(run.id, RunStatus.FAILED, error="vonage down")
    with audit.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE rotation_runs SET {column} = {value}"))  # noqa: S608
    report = audit.verify_chain()
    assert not report.ok
    assert report.problem == f"run {run.id} was edited: its {column} differs from its events"


def test_an_edited_run_start_does_not_move_the_schedule(audit: AuditLog) -> None:
    """A started_at of 2099 in the run row leaves last_success where the chained events put it."""
    run = audit.start_run(api_key="k", trigger="manual", actor="alice", owner="o")
    audit.finish_run(run.id, RunStatus.SUCCEEDED)
    with audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE rotation_runs SET started_at = '2099-01-01 00:00:00'"))
    assert audit.last_success("k") == run.started_at


def test_verify_catches_a_deleted_or_forged_run_row(audit: AuditLog) -> None:
    """A run row deleted, or one inserted without chained events, fails verify."""
    run = audit.start_run(api_key="k", trigger="manual", actor="alice", owner="o")
    with audit.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE rotation_runs SET id = 'forged' WHERE id = :id"), {"id": run.id}
        )
    report = audit.verify_chain()
    assert not report.ok
    assert report.problem == "run forged has no chained start event (inserted)"


def test_run_updates_are_chained(audit: AuditLog) -> None:
    """Secret ids set mid-run are events too, so the row derived from the chain matches."""
    run = audit.start_run(api_key="k", trigger="manual", actor="alice", owner="o")
    audit.update_run(run.id, old_secret_id="aa11", new_secret_id="bb22")
    assert [e.step for e in audit.events(run_id=run.id)] == ["run.start", "run.update"]
    assert audit.verify_chain().ok
    with audit.engine.begin() as conn:
        conn.execute(sa.text("UPDATE rotation_runs SET new_secret_id = 'cc33'"))
    assert not audit.verify_chain().ok


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


def test_the_postgresql_append_names_every_event_column() -> None:
    """PostgreSQL's one-round-trip append is SQL text (issue 12, CPU): a column added to
    audit_events must be added there too, as a typed bind of the same name."""
    from rotator.audit_chain import _APPEND_ONE_PG
    from rotator.models import AuditEventRow

    columns = [c.key for c in AuditEventRow.__table__.columns]
    named = re.search(r"INSERT INTO audit_events \(([^)]*)\)", str(_APPEND_ONE_PG))
    assert named is not None
    assert named.group(1).split(", ") == columns
    binds = _APPEND_ONE_PG._bindparams
    assert sorted(binds) == sorted(f"e_{name}" for name in columns)
    for c in AuditEventRow.__table__.columns:
        assert type(binds[f"e_{c.key}"].type) is type(c.type), c.key
