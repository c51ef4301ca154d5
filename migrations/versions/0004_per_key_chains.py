"""Per-key audit chains (issue 12) and the heads table that replaces the global advisory lock
(issue 11 item 9).

Every event now belongs to a chain: its api key, or "" for events about no key and for the
folds that record every key's head in one global chain (what rotator anchors in Vault). Events
written before this revision form the start of chain "" with ``chain_seq = seq``: their hashes
are unchanged (the hash never covered ``chain``/``chain_seq``; the links and the consecutive
``chain_seq`` of a chain do). An appender locks its chain's row in ``audit_heads``, a table only
the daemon role may write, instead of an advisory lock any login could take.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit_events is append-only"
SEQUENCE = "audit_events_seq_seq"


def _guard(enabled: bool) -> None:
    """Lift the append-only trigger for the one-time backfill (this migration runs as owner)."""
    if op.get_bind().dialect.name == "postgresql":
        verb = "ENABLE" if enabled else "DISABLE"
        op.execute(f"ALTER TABLE audit_events {verb} TRIGGER audit_events_append_only")
    elif enabled:
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )
    else:
        op.execute("DROP TRIGGER audit_events_no_update")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "audit_events", sa.Column("chain", sa.String(64), server_default="", nullable=False)
    )
    op.add_column(
        "audit_events", sa.Column("chain_seq", sa.Integer(), server_default="0", nullable=False)
    )
    _guard(False)
    op.execute("UPDATE audit_events SET chain = '', chain_seq = seq")
    _guard(True)
    op.create_index(
        "uq_audit_events_chain_seq", "audit_events", ["chain", "chain_seq"], unique=True
    )
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("folded_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("txid", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_heads"),
    )
    op.create_index("ix_audit_heads_txid", "audit_heads", ["txid"])
    op.execute(
        "INSERT INTO audit_heads (chain, seq, hash, folded_seq, txid) "
        "SELECT '', seq, hash, 0, seq FROM audit_events "
        "WHERE seq = (SELECT max(seq) FROM audit_events)"
    )
    if postgres:  # concurrent appenders of different keys draw seq from a sequence
        op.execute(f"CREATE SEQUENCE {SEQUENCE} OWNED BY audit_events.seq")
        op.execute(
            f"SELECT setval('{SEQUENCE}', (SELECT coalesce(max(seq), 0) + 1 FROM audit_events), "
            "false)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP SEQUENCE {SEQUENCE}")
    op.drop_index("ix_audit_heads_txid", table_name="audit_heads")
    op.drop_table("audit_heads")
    op.drop_index("uq_audit_events_chain_seq", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("chain_seq")
        batch.drop_column("chain")
