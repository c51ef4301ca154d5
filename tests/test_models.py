"""The table classes (``rotator.models``, Core tables spelled as classes): what the code relies on
from them now that they are not ORM models (issue 12)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from rotator.models import LeaseRow, RunRow


def test_a_row_made_without_a_column_reads_it_as_none() -> None:
    """A detached row reads a column it was not given as None (as an ORM instance did)."""
    assert RunRow(id="r1", api_key="k1").error is None


def test_a_row_refuses_a_column_its_table_does_not_have() -> None:
    """A misspelt column is an error, not a silently ignored value."""
    with pytest.raises(TypeError, match="no column 'api_kye'"):
        RunRow(id="r1", api_kye="k1")


def test_the_class_stands_for_its_table_in_statements() -> None:
    """`select(LeaseRow)` selects the table's columns, and `LeaseRow.token` is its column."""
    query = sa.select(LeaseRow).where(LeaseRow.token > 3)
    assert [c.name for c in query.selected_columns] == [c.name for c in LeaseRow.__table__.c]
    assert "key_leases.token >" in str(query)
