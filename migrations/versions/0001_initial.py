"""Initial schema: rotation runs, the hash-chained audit events, key leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rotation_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("api_key", sa.String(64), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("emergency", sa.Integer(), nullable=False),
        sa.Column("old_secret_id", sa.String(64), nullable=True),
        sa.Column("new_secret_id", sa.String(64), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("revoke_after", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rotation_runs"),
    )
    op.create_index("ix_rotation_runs_api_key", "rotation_runs", ["api_key"])
    op.create_index("ix_rotation_runs_status", "rotation_runs", ["status"])
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.Column("api_key", sa.String(64), nullable=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=True),
        sa.Column("secret_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("vault_version", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
        sa.UniqueConstraint("hash", name="uq_audit_events_hash"),
    )
    op.create_index("ix_audit_events_run_id", "audit_events", ["run_id"])
    op.create_index("ix_audit_events_api_key", "audit_events", ["api_key"])
    op.create_table(
        "key_leases",
        sa.Column("api_key", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("token", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("api_key", name="pk_key_leases"),
    )


def downgrade() -> None:
    op.drop_table("key_leases")
    op.drop_index("ix_audit_events_api_key", table_name="audit_events")
    op.drop_index("ix_audit_events_run_id", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_rotation_runs_status", table_name="rotation_runs")
    op.drop_index("ix_rotation_runs_api_key", table_name="rotation_runs")
    op.drop_table("rotation_runs")
