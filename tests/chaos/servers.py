"""Real servers the chaos harness breaks and mends.

- ``OpenBaoServer``: a non-dev OpenBao whose data lives on disk (integrated "raft" storage: OpenBao
  2.x no longer ships the "file" backend), so it can be sealed, killed and restarted without losing
  anything. Rotator gets a least-privilege token (deploy/vault/rotator-policy.hcl) from a file the
  harness can revoke and replace.
- ``VaultProxy``: a loopback HTTP proxy in front of it that answers 503 while ``failing`` is set.
- ``PostgresCluster``: a private PostgreSQL cluster (initdb into a temp dir, its own port and socket
  dir), so stopping it never disturbs the shared server other tests use.

Every server is started and stopped by the harness itself and only listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import hvac
import psycopg

from rotator.devtools.devserver import find_bao, free_port
from rotator.devtools.polling import wait_until
from rotator.devtools.processes import stop_process
from rotator.secret import Secret

REPO = Path(__file__).resolve().parents[2]
POLICY_FILE = REPO / "deploy" / "vault" / "rotator-policy.hcl"


class ServerError(RuntimeError):
    """A server the harness needs did not start or answer as expected."""


def _wait(condition: Any, *, timeout: float, what: str, poll: float = 0.05) -> Any:
    try:
        return wait_until(condition, timeout=timeout, what=what, poll=poll)
    except TimeoutError as exc:
        raise ServerError(str(exc)) from None


# -- OpenBao -----------------------------------------------------------------------------------


class OpenBaoServer:
    """``bao server`` with on-disk storage: init once, then seal/unseal, kill/restart at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.cluster_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = workdir / "rotator-token"
        self._config = workdir / "bao.hcl"
        self._log_path = workdir / "bao.log"
        self._root: Secret | None = None
        self._unseal_key: Secret | None = None
        self._rotator_token: Secret | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def __repr__(self) -> str:
        return f"OpenBaoServer(url={self.url!r})"

    # lifecycle

    def start(self) -> OpenBaoServer:
        """First start: write the config, launch, initialise, unseal, mount KV v2, make a token."""
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        self._config.write_text(
            f"""
storage "raft" {{
  path = "{self.workdir / "data"}"
  node_id = "chaos"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{self.port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_disable = true
}}
api_addr = "{self.url}"
cluster_addr = "http://127.0.0.1:{self.cluster_port}"
log_level = "warn"
"""
        )
        self._launch()
        answer = self._sys("PUT", "/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1})
        self._unseal_key = Secret(answer["keys_base64"][0])
        self._root = Secret(answer["root_token"])
        self.unseal()
        kv = {"type": "kv", "options": {"version": "2"}}
        self._sys("POST", "/v1/sys/mounts/secret", token=True, json=kv)
        policy = {"policy": POLICY_FILE.read_text()}
        self._sys("PUT", "/v1/sys/policies/acl/rotator", token=True, json=policy)
        self.new_token()
        return self

    def _launch(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in {"VAULT_TOKEN", "BAO_TOKEN"}}
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [find_bao(), "server", f"-config={self._config}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _wait(self._answers, timeout=30, what="OpenBao to listen")

    def _answers(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise ServerError(
                f"OpenBao exited with {self._process.returncode}: see {self._log_path}"
            )
        try:
            self._http.get("/v1/sys/health")
        except httpx.TransportError:
            return False
        return True

    def _active(self) -> bool:
        try:
            return self._http.get("/v1/sys/health").status_code == 200
        except httpx.TransportError:
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Stop it dead (SIGKILL): Vault unreachable until ``restart``."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=30)

    def restart(self) -> None:
        """Launch again on the same port and data, and unseal."""
        if not self.running:
            self._launch()
        self.unseal()

    def seal(self) -> None:
        self._sys("PUT", "/v1/sys/seal", token=True)

    def unseal(self) -> None:
        assert self._unseal_key is not None
        self._sys("PUT", "/v1/sys/unseal", json={"key": self._unseal_key.reveal()})
        _wait(self._active, timeout=30, what="OpenBao to become active after unsealing")

    def sealed(self) -> bool:
        answer = self._sys("GET", "/v1/sys/seal-status")
        return bool(answer.get("sealed"))

    def close(self) -> None:
        if self._process is not None:
            stop_process(self._process)
        self._http.close()

    # tokens

    def new_token(self) -> None:
        """A fresh least-privilege token for rotator, written (atomically) to ``token_file``."""
        answer = self._sys(
            "POST",
            "/v1/auth/token/create",
            token=True,
            json={"policies": ["rotator"], "ttl": "720h", "display_name": "chaos-rotator"},
        )
        self._rotator_token = Secret(answer["auth"]["client_token"])
        partial = self.token_file.with_suffix(".tmp")
        partial.write_text(self._rotator_token.reveal())
        partial.chmod(0o600)
        partial.replace(self.token_file)

    def revoke_token(self) -> None:
        """Revoke rotator's token: every call it makes is refused with 403 from now on."""
        assert self._rotator_token is not None
        self._sys(
            "POST",
            "/v1/auth/token/revoke",
            token=True,
            json={"token": self._rotator_token.reveal()},
        )

    def admin(self) -> hvac.Client:
        """A root client, as an operator would use ``bao kv``."""
        assert self._root is not None
        return hvac.Client(url=self.url, token=self._root.reveal(), timeout=10)

    def _sys(
        self, method: str, path: str, *, token: bool = False, json: object = None
    ) -> dict[str, Any]:
        headers = {"X-Vault-Token": self._root.reveal()} if token and self._root else {}
        response = self._http.request(method, path, headers=headers, json=json)
        if response.status_code >= 400:
            raise ServerError(f"OpenBao {method} {path}: HTTP {response.status_code}")
        if response.status_code == 204 or not response.content:
            return {}
        body: dict[str, Any] = response.json()
        return body


# -- a proxy that can answer 503 ----------------------------------------------------------------

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server.proxy
        self.close_connection = True
        failing = proxy.failing
        if failing == "before_apply":
            self._fail()
            return
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        except OSError:
            return  # upstream down: hang up without an answer, as the server itself would
        finally:
            upstream.close()
        if failing == "after_apply":  # Vault did it; the client hears otherwise
            self._fail()
            return
        self._reply(response.status, response.getheaders(), data)

    def _fail(self) -> None:
        self.server.proxy.count_503()
        self._reply(503, [("Content-Type", "application/json")], b'{"errors":["chaos 503"]}')

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_LIST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        return


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    proxy: VaultProxy


class VaultProxy:
    """Forwards to OpenBao. While ``failing`` is ``"before_apply"`` every request gets 503 without
    reaching Vault; with ``"after_apply"`` Vault does the request and the client still gets 503
    (an ambiguous write, as behind a failing load balancer)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.failing: str | None = None
        self.answered_503 = 0
        self._lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.proxy = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> VaultProxy:
        self._thread.start()
        return self

    def count_503(self) -> None:
        with self._lock:
            self.answered_503 += 1

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- PostgreSQL --------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout, then PATH)."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresCluster:
    """A private PostgreSQL: initdb into a temp dir, pg_ctl start/stop on a free loopback port.

    As root the server runs as the ``postgres`` OS user (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise ServerError("PostgreSQL's initdb/pg_ctl were not found")
        self.bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp_path: that is 0700 root and the postgres user must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="rotator-chaos-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/chaos"
        self._initialised = False

    def __repr__(self) -> str:
        return f"PostgresCluster(port={self.port})"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [*self._as_postgres, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ServerError(
                f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr[-500:]}"
            )

    def start(self) -> PostgresCluster:
        if not self._initialised:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            )
        # fsync/full_page_writes off only risk data on an OS crash, which never happens here;
        # synchronous_commit stays on: an "immediate" stop must not lose committed transactions.
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )
        if not self._initialised:
            admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("CREATE DATABASE chaos")
            self._initialised = True
        return self

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash (no checkpoint; recovery at next start); ``fast`` is clean."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        with contextlib.suppress(ServerError, subprocess.TimeoutExpired, OSError):
            if self.running:
                self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
