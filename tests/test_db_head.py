"""``db.SCHEMA_HEAD`` (the fast start-up check that skips Alembic) names Alembic's newest
migration, so a new migration cannot be skipped by it."""

from rotator import db


def test_schema_head_is_alembics_head() -> None:
    """The revision the one-query check expects is the head of migrations/versions."""
    assert db.head_revision() == db.SCHEMA_HEAD
