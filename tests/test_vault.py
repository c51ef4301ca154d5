"""VaultStore against a real OpenBao: the state record's read-modify-write."""

from __future__ import annotations

import pytest

from rotator.errors import VaultConflictError
from tests.conftest import World

SUB = "sub00001"


def test_update_state_keeps_the_fields_it_does_not_name(world: World) -> None:
    """Changing one field of the state record leaves adopted_id as it was."""
    vault = world.services().vault
    adopted = vault.update_state(SUB, cas=0, adopted_id="secret-a")
    vault.update_state(SUB, cas=adopted.version, previous=None)
    assert vault.read_state(SUB).adopted_id == "secret-a"


def test_update_state_clears_a_field_named_as_none(world: World) -> None:
    """A field passed as None is cleared in Vault."""
    vault = world.services().vault
    adopted = vault.update_state(SUB, cas=0, adopted_id="secret-a")
    vault.update_state(SUB, cas=adopted.version, adopted_id=None)
    assert vault.read_state(SUB).adopted_id is None


def test_update_state_refuses_a_stale_version(world: World) -> None:
    """A write based on a version Vault no longer holds is a conflict, not a silent overwrite."""
    vault = world.services().vault
    vault.update_state(SUB, cas=0, adopted_id="secret-a")
    with pytest.raises(VaultConflictError):
        vault.update_state(SUB, cas=0, adopted_id="secret-b")
