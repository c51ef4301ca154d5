"""Key holds: operator pauses (``rotator pause``) and the clearing of a stuck key's failure count
(``rotator resume``), read by every replica at decision time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_holds",
        sa.Column("api_key", sa.String(64), nullable=False),
        sa.Column("paused", sa.Integer(), nullable=False),
        sa.Column("paused_until", sa.DateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("api_key", name="pk_key_holds"),
    )


def downgrade() -> None:
    op.drop_table("key_holds")
