"""Reload recipe, proven for real: `bao agent` renders the key into a file and runs a command on
change; an application reading that file sees no 401 across rotations, because the grace period
is longer than the agent's render interval."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from rotator.clock import utcnow
from rotator.devtools.devserver import find_bao
from rotator.devtools.polling import wait_until
from tests.conftest import SUBACCOUNTS, World
from tests.consumers import Application

SUB = "sub00001"
ROTATIONS = 3
RENDER_INTERVAL = "1s"
GRACE = "3s"  # longer than the render interval, with margin for a loaded machine


def agent_config(world: World, tmp_path: Path) -> Path:
    token = tmp_path / "token"
    token.write_text(world.openbao.root_token.reveal())
    token.chmod(0o600)
    secret_path = f"secret/data/{world.prefix}/vonage/{SUB}"
    hcl = f"""
vault {{ address = "{world.openbao.url}" }}
auto_auth {{
  method "token_file" {{
    config = {{ token_file_path = "{token}" }}
  }}
}}
template_config {{ static_secret_render_interval = "{RENDER_INTERVAL}" }}
template {{
  contents = "{{{{ with secret \\"{secret_path}\\" }}}}{{{{ .Data.data.api_secret }}}}{{{{ end }}}}"
  destination = "{tmp_path / "vonage-secret"}"
  perms = "0600"
  exec {{ command = ["sh", "-c", "echo reload >> {tmp_path / "reloads"}"] }}
}}
"""
    path = tmp_path / "agent.hcl"
    path.write_text(hcl)
    return path


@pytest.fixture
def agent(world: World, tmp_path: Path) -> Iterator[Path]:
    """A running `bao agent` rendering the subaccount's secret; yields the rendered file."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    log = (tmp_path / "agent.log").open("w")
    process = subprocess.Popen(
        [find_bao(), "agent", f"-config={agent_config(world, tmp_path)}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    rendered = tmp_path / "vonage-secret"
    try:
        wait_until(rendered.exists, timeout=30, what="bao agent's first render")
        yield rendered
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_an_application_fed_by_bao_agent_sees_no_401(world: World, agent: Path) -> None:
    """Rotations with propagation delay and deferred revocation: zero refused calls."""
    world.sim.propagation_delay = 0.5
    world.configure(rotation={"grace_period": GRACE})
    services = world.services()
    app = Application(world.sim.rest_url, SUB, lambda: agent.read_text() or None, cache_for=0.0)
    app.start()
    try:
        for number in range(1, ROTATIONS + 1):
            outcome = services.rotator.rotate(
                SUB, actor="tester", reason="agent test", grace_wait=timedelta(seconds=30)
            )
            assert outcome.ok
            wait_until(lambda n=number: len(app.seen) > n, timeout=30, what="the app's new secret")
        last = services.audit.get_run(outcome.run.id)
        assert last.revoke_after is not None
        wait_until(lambda: utcnow() >= last.revoke_after, timeout=30, what="the grace's end")  # type: ignore[operator]
        services.rotator.complete_revocation(last)
        calls = app.calls
        wait_until(lambda: app.calls > calls + 10, timeout=30, what="calls after revocation")
    finally:
        app.stop()
    assert app.refused == []
    assert len((agent.parent / "reloads").read_text().splitlines()) >= ROTATIONS
