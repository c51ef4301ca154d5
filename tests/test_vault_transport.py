"""VaultStore's own HTTP client (``rotator.vault_http``, which replaced hvac for start-up speed,
issue 12) against a real OpenBao: AppRole login, TLS with a CA of its own, and servers that
refuse, fail or lie."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rotator.config import parse_config
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.errors import (
    ConfigError,
    VaultDataError,
    VaultError,
    VaultPermissionError,
    VaultUnavailableError,
)
from rotator.secret import Secret
from rotator.vault import VaultStore
from tests.conftest import SUBACCOUNTS, World

SUB = "sub00001"
SECRET_ID_ENV = "ROTATOR_TEST_APPROLE_SECRET_ID"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: these tests are about Vault."""
    return sqlite_url


def store(world: World, *, auth: dict[str, str] | None = None, **vault: Any) -> VaultStore:
    """A VaultStore for the world's config changed by ``vault`` (``auth`` replaced whole)."""
    world.configure(vault=vault)
    if auth is not None:
        world.data["vault"]["auth"] = auth
    return VaultStore(parse_config(world.data).vault)


@pytest.fixture
def approle(world: World, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An AppRole at a mount of this test's own whose policy reaches only the world's paths."""
    admin, mount = world.vault_admin, f"approle-{world.prefix}"
    admin.sys.enable_auth_method("approle", path=mount)
    rules = "".join(
        f'path "secret/data/{world.prefix}/{kind}/*" {{ capabilities = ["create", "read", '
        f'"update"] }}\n'
        for kind in ("vonage", "rotator-state")
    )
    admin.sys.create_or_update_policy(name=world.prefix, policy=rules)
    admin.auth.approle.create_or_update_approle(
        role_name="rotator", token_policies=[world.prefix], mount_point=mount
    )
    role_id = admin.auth.approle.read_role_id("rotator", mount_point=mount)["data"]["role_id"]
    secret = admin.auth.approle.generate_secret_id("rotator", mount_point=mount)
    monkeypatch.setenv(SECRET_ID_ENV, Secret(secret["data"]["secret_id"]).reveal())
    return {"method": "approle", "role_id": role_id, "secret_id_env": SECRET_ID_ENV,
            "mount_point": mount}  # fmt: skip


def test_an_approle_login_reads_and_writes_the_keys_records(
    world: World, approle: dict[str, str]
) -> None:
    """With AppRole auth rotator logs in, then writes and reads a key's record with that token."""
    vault = store(world, auth=approle)
    vault.health()
    vault.write_current(SUB, Secret(SUBACCOUNTS[SUB]), "id-1", cas=0, run_id=None)
    record = vault.read_current(SUB)
    assert record is not None
    assert (record.secret_id, record.version) == ("id-1", 1)


def test_a_wrong_approle_secret_id_is_refused_without_echoing_it(
    world: World, approle: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret-id Vault does not know is refused (a Vault error: exit 3), and the error's text
    does not hold it."""
    wrong = Secret("not-the-secret-id-" + world.prefix)
    monkeypatch.setenv(SECRET_ID_ENV, wrong.reveal())
    with pytest.raises(VaultError, match="invalid role or secret ID") as refused:
        store(world, auth=approle).health()
    assert wrong.reveal() not in str(refused.value)


def test_a_token_vault_does_not_know_fails_the_start_up_check(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before a rotation (health, then one token lookup) refuses an unknown token."""
    monkeypatch.setenv("ROTATOR_TEST_UNKNOWN_TOKEN", Secret("hvs.x-" + world.prefix).reveal())
    vault = store(world, auth={"method": "token", "token_env": "ROTATOR_TEST_UNKNOWN_TOKEN"})
    with pytest.raises(VaultPermissionError, match="permission denied"):
        vault.health()


@pytest.fixture(scope="module")
def tls_bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoDevServer]:
    log = tmp_path_factory.mktemp("tls-bao") / "bao.log"
    with OpenBaoDevServer(log_path=log, tls=True) as server:
        yield server


def test_a_certificate_from_an_unknown_ca_is_refused(
    world: World, tls_bao: OpenBaoDevServer
) -> None:
    """HTTPS to a Vault whose CA rotator was not given fails TLS verification, and says how to
    fix it."""
    with pytest.raises(VaultUnavailableError, match="TLS verification") as refused:
        store(world, url=tls_bao.url).health()
    assert "vault.ca_cert" in str(refused.value)


def test_vault_ca_cert_lets_rotator_verify_vaults_certificate(
    world: World, tls_bao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``vault.ca_cert`` naming the CA, the same server is reached over verified TLS."""
    monkeypatch.setenv("ROTATOR_TEST_TLS_TOKEN", tls_bao.root_token.reveal())
    auth = {"method": "token", "token_env": "ROTATOR_TEST_TLS_TOKEN"}
    vault = store(world, url=tls_bao.url, ca_cert=str(tls_bao.ca_cert), auth=auth)
    vault.health()
    assert vault.read_current(SUB) is None


def test_an_unreadable_ca_cert_is_a_configuration_error(world: World, tmp_path: Path) -> None:
    """A ``vault.ca_cert`` that is not a PEM file stops rotator at start (exit 2), not at the
    first request."""
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"vault\.ca_cert"):
        store(world, url="https://127.0.0.1:1", ca_cert=str(bogus))


class _Impostor(http.server.BaseHTTPRequestHandler):
    """A server in Vault's place: every answer is ``self.server.answer`` (status, body);
    records each request's path and headers."""

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers)))  # type: ignore[attr-defined]
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_LIST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def impostor() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Impostor)
    server.seen = []  # type: ignore[attr-defined]
    server.answer = (200, b"{}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _at(world: World, server: http.server.HTTPServer, **vault: Any) -> VaultStore:
    return store(world, url=f"http://127.0.0.1:{server.server_address[1]}", **vault)


def test_a_proxy_error_page_is_vault_unavailable(
    world: World, impostor: http.server.HTTPServer
) -> None:
    """An HTML 502 from a proxy in front of Vault is 'unavailable' (exit 3), not a crash."""
    impostor.answer = (502, b"<html>Bad Gateway</html>")  # type: ignore[attr-defined]
    with pytest.raises(VaultUnavailableError, match="Vault failed"):
        _at(world, impostor).read_current(SUB)


def test_an_answer_that_is_not_a_record_is_refused(
    world: World, impostor: http.server.HTTPServer
) -> None:
    """A 200 whose body is not a KV record (here a JSON list) is a data error, not a record."""
    impostor.answer = (200, json.dumps(["api_secret", "x"]).encode())  # type: ignore[attr-defined]
    with pytest.raises(VaultDataError):
        _at(world, impostor).read_current(SUB)


def test_the_token_travels_in_a_header_never_in_the_url(
    world: World, impostor: http.server.HTTPServer
) -> None:
    """Every request carries the token in X-Vault-Token (and the namespace header when set);
    no URL holds it."""
    body = {"data": {"data": {"api_key": SUB, "api_secret": "x" * 12}, "metadata": {"version": 3}}}
    impostor.answer = (200, json.dumps(body).encode())  # type: ignore[attr-defined]
    vault = _at(world, impostor, namespace="team-a")
    vault.read_current(SUB)
    token = parse_config(world.data).vault.auth.token().reveal()  # type: ignore[union-attr]
    seen = impostor.seen  # type: ignore[attr-defined]
    assert [(m, p) for m, p, _ in seen] == [
        ("GET", "/v1/auth/token/lookup-self"),
        ("GET", f"/v1/secret/data/{world.prefix}/vonage/{SUB}"),
    ]
    assert all(h.get("X-Vault-Token") == token and token not in p for _, p, h in seen)
    assert all(h.get("X-Vault-Namespace") == "team-a" for _, _, h in seen)
