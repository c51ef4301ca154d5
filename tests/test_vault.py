"""VaultStore against a real OpenBao: the state record's read-modify-write; the proxy the
environment names."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from rotator.errors import VaultConflictError, VaultError
from rotator.vault import VaultStore
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


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that refuses everything, noting what it was asked for."""

    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_vault_calls_go_through_the_proxy_the_environment_names(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY (read once, when the store is made) routes Vault calls through the proxy."""
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        vault = VaultStore(world.config.vault)
        with pytest.raises(VaultError):
            vault.read_state(SUB)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert any(world.config.vault.url in asked for asked in _Proxy.asked)
