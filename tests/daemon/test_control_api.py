"""The control API over real HTTP to a real `rotator run`, authorised by the real OpenBao with the
callers' own tokens (policies from deploy/vault/), rotating through the simulator."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import pytest

from rotator.audit import AuditLog, Event, RunStatus
from rotator.devtools.devserver import OpenBaoDevServer
from tests.conftest import PRIMARY, SUBACCOUNTS, World
from tests.daemon.conftest import (
    DaemonProcess,
    open_audit,
    own_world,
    runs_of,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.postgres

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "vault"
SUB = next(iter(SUBACCOUNTS))
OTHER = list(SUBACCOUNTS)[1]
MAX_BODY = 512
RATE = 20
DONE = {RunStatus.SUCCEEDED, RunStatus.AWAITING_REVOKE}


class Control:
    """One daemon session with the control API on, and tokens minted by the real OpenBao."""

    def __init__(self, world: World, daemon: DaemonProcess, vault_admin: hvac.Client) -> None:
        self.world = world
        self.daemon = daemon
        self.admin = vault_admin
        self.audit: AuditLog = open_audit(world)
        suffix = uuid.uuid4().hex[:8]
        self.oncall_policy = f"oncall-{suffix}"
        self.breakglass_policy = f"breakglass-{suffix}"
        self.admin.sys.create_or_update_policy(
            name=self.oncall_policy, policy=(DEPLOY / "control-oncall-policy.hcl").read_text()
        )
        self.admin.sys.create_or_update_policy(
            name=self.breakglass_policy,
            policy=(DEPLOY / "control-breakglass-policy.hcl").read_text(),
        )

    def token(self, name: str, *policies: str) -> str:
        created = self.admin.auth.token.create(
            policies=list(policies) or ["default"], display_name=name, ttl="10m"
        )
        token: str = created["auth"]["client_token"]
        return token

    def oncall(self, name: str = "oncall-alice") -> str:
        return self.token(name, self.oncall_policy)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.daemon.port}{path}"

    def post(
        self, path: str, token: str | None, body: Any = None, **options: Any
    ) -> httpx.Response:
        headers = {"X-Vault-Token": token} if token else {}
        return httpx.post(self.url(path), headers=headers, json=body, timeout=30, **options)

    def get(self, path: str, token: str) -> httpx.Response:
        return httpx.get(self.url(path), headers={"X-Vault-Token": token}, timeout=30)

    def refusals(self) -> list[Event]:
        return [e for e in self.audit.events() if e.step == "control" and e.outcome == "refused"]

    def settled(self, key: str) -> bool:
        """The key's last run is over, its grace period too: a plain rotation may start."""
        runs = self.audit.runs(api_key=key, limit=1)
        return bool(runs) and runs[0].status == RunStatus.SUCCEEDED

    def wait_settled(self, key: str) -> None:
        wait_for(lambda: self.settled(key), timeout=60, what=f"{key}'s grace period to end")

    def finished(self, run_id: str, token: str) -> dict[str, Any]:
        """The run as GET /v1/runs/{id} shows it once it has ended (polled in the database,
        so the polling does not count against the caller's rate)."""
        wait_for(
            lambda: self.audit.get_run(run_id).status != RunStatus.RUNNING,
            timeout=60,
            what=f"run {run_id} to end",
        )
        run: dict[str, Any] = self.get(f"/v1/runs/{run_id}", token).json()
        return run


@pytest.fixture(scope="module")
def control(
    openbao: OpenBaoDevServer, vault_admin: hvac.Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Control]:
    tmp = tmp_path_factory.mktemp("control")
    sections: dict[str, Any] = {
        "rotation": {"schedule": {"interval": "1h", "jitter": "0s"}, "grace_period": "2s"},
        # OTHER keeps its first rotation's previous secret for the rollback test
        "accounts": {"overrides": [{"api_key": OTHER, "grace_period": "30m"}]},
        "http": {
            "listen": "127.0.0.1:0",
            "control": {"enabled": True, "max_body": MAX_BODY, "rate_per_minute": RATE},
        },
    }
    with own_world(openbao, vault_admin, tmp, **sections) as world:
        world.seed_primary()
        # with its secret id known, OTHER's first rotation keeps a previous secret to go back to
        world.seed_vault(OTHER, SUBACCOUNTS[OTHER], world.sim.secret_ids(OTHER)[0])
        daemon = start_daemon(world, directory=tmp)
        try:
            daemon.wait_running()
            session = Control(world, daemon, vault_admin)
            wait_for(
                lambda: (
                    all(session.settled(k) for k in [PRIMARY, SUB])
                    and any(r.status in DONE for r in runs_of(session.audit, OTHER))
                ),
                timeout=60,
                what="the first rotation of every key",
            )
            yield session
        finally:
            daemon.terminate()
            daemon.close()


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_no_token_is_401(control: Control) -> None:
    """A request without X-Vault-Token is refused 401 and audited."""
    before = len(control.refusals())
    answer = control.post(f"/v1/keys/{SUB}/rotate", None, {"reason": "no token"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "X-Vault-Token"
    assert len(control.refusals()) == before + 1


def test_token_without_capability_is_403_and_audited(control: Control) -> None:
    """A valid token whose policies grant nothing on the path is refused 403, audited by name."""
    token = control.token("intruder")
    runs = len(runs_of(control.audit, SUB))
    answer = control.post(f"/v1/keys/{SUB}/rotate", token, {"reason": "let me in"})
    assert answer.status_code == 403
    refusal = control.refusals()[-1]
    assert refusal.actor == "vault:token-intruder"
    assert refusal.api_key == SUB
    assert refusal.detail is not None
    assert refusal.detail["path"] == f"/v1/keys/{SUB}/rotate"
    assert refusal.detail["status"] == 403
    assert token not in str(refusal.to_json())
    assert token not in control.daemon.output()
    assert len(runs_of(control.audit, SUB)) == runs


def test_unknown_token_is_403(control: Control) -> None:
    """A token Vault does not know (forged) is refused 403."""
    answer = control.post(f"/v1/keys/{SUB}/rotate", "s.forged0token0000000000", {})
    assert answer.status_code == 403


def test_emergency_is_refused_to_an_update_only_token(control: Control) -> None:
    """The on-call policy (update, no sudo) may not ask for an emergency rotation."""
    runs = len(runs_of(control.audit, SUB))
    answer = control.post(f"/v1/keys/{SUB}/rotate", control.oncall(), {"emergency": True})
    assert answer.status_code == 403
    assert "sudo" in answer.json()["error"]
    assert len(runs_of(control.audit, SUB)) == runs


def test_rotate_with_the_oncall_token(control: Control) -> None:
    """202 with the run id; the run succeeds and the audit log's actor is Vault's name for it."""
    token = control.oncall("oncall-bob")
    control.wait_settled(SUB)
    answer = control.post(f"/v1/keys/{SUB}/rotate", token, {"reason": "INC-42 leaked in a log"})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    assert answer.headers["Location"] == f"/v1/runs/{run_id}"
    run = control.finished(run_id, token)
    assert run["status"] in DONE
    stored = control.audit.get_run(run_id)
    assert stored.actor == "vault:token-oncall-bob"
    assert stored.reason == "INC-42 leaked in a log"
    assert control.world.current_authenticates(SUB)


def test_rollback_with_the_oncall_token(control: Control) -> None:
    """Inside the grace period a rollback makes the previous secret current again (200)."""
    token = control.oncall("oncall-erin")
    answer = control.post(f"/v1/keys/{OTHER}/rollback", token, {"reason": "bad deploy"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "rolled_back"
    events = control.audit.events(run_id=answer.json()["run_id"])
    assert "vault:token-oncall-erin" in {e.actor for e in events}
    assert control.world.current_authenticates(OTHER)


def test_rollback_without_a_previous_secret_is_409(control: Control) -> None:
    """Nothing left to roll back to is a conflict, not a server error."""
    answer = control.post(f"/v1/keys/{OTHER}/rollback", control.oncall(), {"reason": "again"})
    assert answer.status_code == 409


def test_emergency_with_the_breakglass_token(control: Control) -> None:
    """A token with sudo on the rotate path gets an emergency run."""
    token = control.token("breakglass-carol", control.oncall_policy, control.breakglass_policy)
    answer = control.post(f"/v1/keys/{OTHER}/rotate", token, {"emergency": True, "reason": "x"})
    assert answer.status_code == 202, answer.text
    run = control.finished(answer.json()["run_id"], token)
    assert run["emergency"] is True
    assert run["actor"] == "vault:token-breakglass-carol"


def test_oversize_body_is_413(control: Control) -> None:
    """A body over http.control.max_body is refused unread with 413 (and audited)."""
    before = len(control.refusals())
    body = {"reason": "x" * (MAX_BODY + 1)}
    answer = control.post(f"/v1/keys/{SUB}/rotate", control.oncall(), body)
    assert answer.status_code == 413
    assert control.refusals()[-1].detail["status"] == 413  # type: ignore[index]
    assert len(control.refusals()) == before + 1


def test_chunked_body_is_refused(control: Control) -> None:
    """Transfer-Encoding is refused (400): a body is read only to its Content-Length."""
    request = (
        f"POST /v1/keys/{SUB}/rotate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"X-Vault-Token: {control.oncall()}\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    ).encode()
    assert raw_request(control.daemon.port, request).startswith(b"HTTP/1.1 400")


def test_too_many_requests_is_429(control: Control) -> None:
    """A caller over rate_per_minute gets 429 with Retry-After; another caller is unaffected."""
    token = control.oncall("oncall-hasty")
    statuses = [control.get("/v1/keys", token).status_code for _ in range(RATE)]
    assert statuses == [200] * RATE
    answer = control.get("/v1/keys", token)
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) >= 1
    assert control.get("/v1/keys", control.oncall("oncall-calm")).status_code == 200


@pytest.mark.parametrize(
    "path", ["..%2f..%2fsys%2fseal", "%2e%2e", "abc%0d%0aX-Evil:%201", "ab%00cd", "a" * 65]
)
def test_bad_api_key_in_the_path_is_400(control: Control, path: str) -> None:
    """A hostile key in the path is refused 400 before Vault or any key is touched."""
    runs = len(control.audit.runs())
    answer = control.post(f"/v1/keys/{path}/rotate", control.oncall(), {})
    assert answer.status_code == 400
    assert "not a valid Vonage API key" in answer.json()["error"]
    assert len(control.audit.runs()) == runs


def test_control_character_in_the_request_line_is_400(control: Control) -> None:
    """A raw control character in the key is refused like an encoded one."""
    request = b"POST /v1/keys/ab\x01cd/rotate HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    assert raw_request(control.daemon.port, request).startswith(b"HTTP/1.1 400")


def test_unmanaged_key_is_404(control: Control) -> None:
    """A well-formed key the daemon does not manage is 404."""
    answer = control.post("/v1/keys/nosuchkey/rotate", control.oncall(), {})
    assert answer.status_code == 404


def test_unknown_field_is_400(control: Control) -> None:
    """A misspelt field (``emergancy``) is refused, never ignored."""
    answer = control.post(f"/v1/keys/{SUB}/rotate", control.oncall(), {"emergancy": True})
    assert answer.status_code == 400


def test_rotation_inside_the_grace_period_is_409(control: Control) -> None:
    """A plain rotation that would cut a grace period short is refused with Retry-After."""
    token = control.oncall("oncall-frank")
    control.wait_settled(SUB)
    first = control.post(f"/v1/keys/{SUB}/rotate", token, {"reason": "one"})
    assert first.status_code == 202
    control.finished(first.json()["run_id"], token)
    if control.settled(SUB):
        pytest.skip("the grace period ended before the second request (a very slow machine)")
    second = control.post(f"/v1/keys/{SUB}/rotate", token, {"reason": "two"})
    assert second.status_code == 409
    assert int(second.headers["Retry-After"]) >= 1


def test_pause_holds_rotations_until_resumed(control: Control) -> None:
    """A paused key refuses a plain rotation (409) until resumed over the API."""
    token = control.oncall()
    control.wait_settled(PRIMARY)
    paused = control.post(f"/v1/keys/{PRIMARY}/pause", token, {"reason": "change freeze"})
    assert paused.status_code == 200
    assert paused.json()["paused"]["actor"] == "vault:token-oncall-alice"
    assert control.post(f"/v1/keys/{PRIMARY}/rotate", token, {}).status_code == 409
    assert control.post(f"/v1/keys/{PRIMARY}/resume", token, {}).status_code == 200
    answer = control.post(f"/v1/keys/{PRIMARY}/rotate", token, {})
    assert answer.status_code == 202
    assert control.finished(answer.json()["run_id"], token)["status"] in DONE


def test_pause_until_the_past_is_400(control: Control) -> None:
    """A pause whose "until" has passed is refused 400 and nothing is held."""

    def pauses() -> int:
        return len([e for e in control.audit.events(api_key=OTHER) if e.step == "pause"])

    before = pauses()
    answer = control.post(
        f"/v1/keys/{OTHER}/pause", control.oncall(), {"reason": "r", "until": "2001-01-01T00:00Z"}
    )
    assert answer.status_code == 400
    assert pauses() == before


def test_get_keys_lists_the_managed_keys(control: Control) -> None:
    """GET /v1/keys with read lists every managed key."""
    answer = control.get("/v1/keys", control.oncall())
    assert answer.status_code == 200
    assert {k["api_key"] for k in answer.json()["keys"]} == {PRIMARY, *SUBACCOUNTS}


def test_application_never_fails_during_control_rotations(control: Control) -> None:
    """An app reading Vault on every use authenticates every time while the API rotates."""
    world, stop, results = control.world, threading.Event(), []

    def application() -> None:
        while not stop.is_set():
            results.append(world.current_authenticates(SUB))

    reader = threading.Thread(target=application, daemon=True)
    reader.start()
    token = control.oncall("oncall-dave")
    try:
        for n in range(3):
            control.wait_settled(SUB)
            answer = control.post(f"/v1/keys/{SUB}/rotate", token, {"reason": f"drill {n}"})
            assert answer.status_code == 202, answer.text
            assert control.finished(answer.json()["run_id"], token)["status"] in DONE
        wait_for(lambda: len(results) > 10, what="the application to read a few times")
    finally:
        stop.set()
        reader.join(10)
    assert all(results), f"{results.count(False)} of {len(results)} reads failed to authenticate"
