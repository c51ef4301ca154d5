"""The audit head anchored outside the database (Vault, check-and-set), and the per-installation
fingerprint key: real OpenBao, real SQLite and PostgreSQL, the Vonage simulator."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rotator import db
from rotator.anchor import ANCHOR, VaultAnchor
from rotator.audit import AuditLog, Head
from rotator.secret import Secret
from rotator.vault import FINGERPRINT_KEY, VaultStore
from tests.conftest import World
from tests.test_audit_chain import disable_guard


def test_every_run_anchors_the_folded_head_in_vault(migrated: World) -> None:
    """After a rotation the anchor in Vault is the global head, which covers the run's events."""
    migrated.seed_primary()
    services = migrated.services()
    assert services.rotator.rotate("sub00001", actor="alice").ok
    anchored = VaultAnchor(services.vault).read()
    assert anchored == services.audit.head()
    assert services.audit.verify_chain(anchor=anchored).ok


def test_the_anchor_never_moves_back(migrated: World) -> None:
    """An older head offered after a newer one leaves the anchor where it is."""
    services = migrated.services()
    anchor = VaultAnchor(services.vault)
    anchor(Head(5, "b" * 64))
    VaultAnchor(services.vault)(Head(3, "a" * 64))  # another process, an older fold
    assert anchor.read() == Head(5, "b" * 64)


def test_deleting_the_newest_events_is_caught_by_the_anchor(migrated: World, run_cli: Any) -> None:
    """An attacker who deletes the last run's events and rewinds every head passes the database's
    own checks, but `rotator audit verify` fails against the anchor in Vault."""
    migrated.seed_primary()
    assert run_cli("rotate", "sub00001").returncode == 0
    before = AuditLog(db.make_engine(migrated.database_url)).head()
    assert run_cli("rotate", "sub00002").returncode == 0
    engine = db.make_engine(migrated.database_url)
    disable_guard(engine)
    with engine.begin() as conn:
        for table in ("audit_events", "audit_heads", "rotation_runs"):
            conn.execute(sa.text(f"DELETE FROM {table} WHERE {_KEY[table]} = 'sub00002'"))  # noqa: S608
        conn.execute(sa.text("DELETE FROM audit_events WHERE chain = '' AND chain_seq > :s"),
                     {"s": before.chain_seq})  # fmt: skip
        conn.execute(sa.text("UPDATE audit_heads SET seq = :s, hash = :h WHERE chain = ''"),
                     {"s": before.chain_seq, "h": before.hash})  # fmt: skip
    engine.dispose()
    assert run_cli("audit", "verify", "--no-anchor").returncode == 0  # consistent on its own
    broken = run_cli("audit", "verify")
    assert broken.returncode == 1
    assert "anchored head" in broken.stdout


_KEY = {"audit_events": "chain", "audit_heads": "chain", "rotation_runs": "api_key"}


def test_verify_command_takes_an_expected_head(migrated: World, run_cli: Any) -> None:
    """`audit verify --expect-head` passes with the head it printed and fails with a forged one."""
    migrated.seed_primary()
    assert run_cli("rotate", "sub00001").returncode == 0
    ok = run_cli("audit", "verify")
    assert ok.returncode == 0, ok.stderr
    head = ok.stdout.split("head ")[1].split(",")[0]
    assert run_cli("audit", "verify", "--expect-head", head).returncode == 0
    forged = run_cli("audit", "verify", "--expect-head", "0" * 63 + "1")
    assert forged.returncode == 1
    assert "expected head" in forged.stdout


def test_fingerprint_key_is_made_once_per_installation(migrated: World) -> None:
    """Two processes of one installation share one random key; it is not the old constant."""
    first = VaultStore(migrated.config.vault).fingerprint_key()
    second = VaultStore(migrated.config.vault).fingerprint_key()
    assert first == second
    assert len(first) == 32
    assert first != b"rotator"


def test_audit_fingerprints_cannot_confirm_a_guessed_secret(migrated: World) -> None:
    """An attacker reading the audit log cannot test a guess with the well-known key: the
    fingerprint of Vault's secret there is keyed with this installation's key."""
    migrated.seed_primary()
    migrated.seed_vault("sub00001", "Sub1Secret01")
    services = migrated.services()
    assert services.rotator.rotate("sub00001", actor="alice").ok
    shown = {
        e.detail.get("vault_fingerprint")
        for e in services.audit.events(api_key="sub00001")
        if e.detail and e.detail.get("vault_fingerprint")
    }
    guess = Secret("Sub1Secret01")  # the seeded secret, which the first inspect fingerprinted
    assert services.vault.fingerprint(guess) in shown
    assert guess.fingerprint(b"rotator") not in shown


def test_internal_records_live_where_no_api_key_can_reach(migrated: World) -> None:
    """Rotator's own records sit in a folder with a dot, which no valid api key contains."""
    vault = VaultStore(migrated.config.vault)
    vault.fingerprint_key()
    path = vault.internal_path(FINGERPRINT_KEY)
    assert path == f"{migrated.prefix}/rotator-state/.rotator/{FINGERPRINT_KEY}"
    assert vault.internal_path(ANCHOR).endswith("/.rotator/audit-anchor")
    assert vault.read_internal(FINGERPRINT_KEY) is not None
