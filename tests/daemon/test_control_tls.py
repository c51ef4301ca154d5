"""The control API over TLS: with tls_cert/tls_key the listener speaks only HTTPS."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import World
from tests.daemon.conftest import DaemonProcess, wait_for

pytestmark = pytest.mark.postgres


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_control_api_answers_over_tls_only(
    pg_world: World, daemons: Callable[..., DaemonProcess], tmp_path: Path
) -> None:
    """With a certificate pair the API answers over HTTPS, and a plain-HTTP request gets none."""
    cert, key = self_signed(tmp_path)
    control = {"enabled": True, "tls_cert": str(cert), "tls_key": str(key)}
    pg_world.seed_primary()
    pg_world.configure(http={"listen": "127.0.0.1:0", "control": control})
    daemon = daemons(pg_world)
    url = f"https://127.0.0.1:{daemon.port}/v1/keys"
    token = pg_world.openbao.root_token.reveal()
    trust = ssl.create_default_context(cafile=str(cert))

    def keys() -> httpx.Response | None:
        try:
            got = httpx.get(url, headers={"X-Vault-Token": token}, verify=trust, timeout=10)
        except httpx.TransportError:
            return None
        return got if got.status_code == 200 and got.json()["keys"] else None

    answer = wait_for(keys, timeout=60, what="the keys over https")
    assert {k["api_key"] for k in answer.json()["keys"]} >= {"abcd1234"}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{daemon.port}/healthz", timeout=10)
