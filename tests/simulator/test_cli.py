"""Seed files and the ``simulate`` command."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from rotator.devtools.simulate import simulate
from rotator.devtools.simulator import DEFAULT_SEED, VonageSimulator, load_seed
from rotator.devtools.simulator.seed import seed_kwargs
from rotator.errors import ConfigError

SEED = """\
primary: {api_key: abcd1234, secret: Primary1Secret}
subaccounts:
  - {api_key: sub00001, secret: Sub1Secret01, name: Dept A, suspended: false}
  - {api_key: sub00002, secret: Sub2Secret02, suspended: true}
excess_secret_status: 400
propagation_delay: 2
rate_limit: null
latency: 0
"""


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed.yml"
    path.write_text(SEED)
    return path


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "seed.yml"
    path.write_text(text)
    return path


# -- load_seed ------------------------------------------------------------------------------------


def test_load_seed_returns_simulator_kwargs(seed_file):
    """A seed file becomes keyword arguments for VonageSimulator."""
    kwargs = load_seed(seed_file)
    assert kwargs == {
        "primary_api_key": "abcd1234",
        "primary_secret": "Primary1Secret",
        "subaccounts": [
            {"api_key": "sub00001", "secret": "Sub1Secret01", "name": "Dept A", "suspended": False},
            {"api_key": "sub00002", "secret": "Sub2Secret02", "name": None, "suspended": True},
        ],
        "excess_secret_status": 400,
        "propagation_delay": 2.0,
        "rate_limit": None,
        "latency": 0.0,
    }


def test_seed_kwargs_build_a_simulator(seed_file):
    """The kwargs are accepted by the simulator as they are."""
    sim = VonageSimulator(**load_seed(seed_file))
    assert sim.accounts() == ["abcd1234", "sub00001", "sub00002"]
    assert sim.excess_secret_status == 400
    assert not sim.authenticates("sub00002", "Sub2Secret02")


def test_minimal_seed_needs_only_a_primary(tmp_path):
    """Everything but the primary is optional."""
    kwargs = load_seed(_write(tmp_path, "primary: {api_key: abcd1234, secret: Primary1Secret}\n"))
    assert kwargs["subaccounts"] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "top level must be a mapping"),
        ("subaccounts: []\n", "'primary' is required"),
        ("primary: {api_key: abcd1234, secret: Primary1Secret}\nlatncy: 1\n", "unknown keys"),
        ("primary: {api_key: abcd1234}\n", "primary.secret is required"),
        ("primary: {api_key: abcd1234, secret: 12345678}\n", "must be a string"),
        ("primary: {api_key: 'a/b', secret: Primary1Secret}\n", "primary.api_key"),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\nexcess_secret_status: 409\n",
            "400 or 403",
        ),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\nlatency: -1\n",
            "'latency' must be >= 0",
        ),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\nrate_limit: 0\n",
            "'rate_limit' must be > 0",
        ),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\nrate_limit: fast\n",
            "requests per second",
        ),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\nsubaccounts: {a: 1}\n",
            "must be a list",
        ),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\n"
            "subaccounts: [{api_key: abcd1234, secret: Other1Secret}]\n",
            "duplicate api_key",
        ),
        (
            "primary: {api_key: abcd1234, secret: Primary1Secret}\n"
            "subaccounts: [{api_key: s1, secret: Other1Secret, suspended: maybe}]\n",
            "suspended must be true or false",
        ),
        ("primary: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_seed_is_a_clear_config_error(tmp_path, text, message):
    """Each mistake in a seed file is reported with the field at fault."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_seed(_write(tmp_path, text))


def test_invalid_secret_error_does_not_echo_the_secret(tmp_path):
    """A weak seeded secret is reported by rule, without repeating the value."""
    path = _write(tmp_path, "primary: {api_key: abcd1234, secret: weakling}\n")
    with pytest.raises(ConfigError, match="upper case") as caught:
        load_seed(path)
    assert "weakling" not in str(caught.value)


def test_missing_seed_file_is_a_config_error(tmp_path):
    """A seed path that does not exist is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_seed(tmp_path / "absent.yml")


def test_default_seed_has_a_primary_and_three_subaccounts():
    """Without a seed file the simulator has something to rotate."""
    sim = VonageSimulator(**seed_kwargs(DEFAULT_SEED))
    assert len(sim.accounts()) == 4


# -- the command ----------------------------------------------------------------------------------


@pytest.fixture
def app() -> typer.Typer:
    """``simulate`` registered the way the main CLI registers it."""
    app = typer.Typer()
    app.command("simulate")(simulate)
    app.command("noop")(lambda: None)  # two commands, so "simulate" is a subcommand
    return app


def test_cli_rejects_an_invalid_seed_with_exit_2(app, tmp_path):
    """A bad seed stops the command before it binds anything."""
    path = _write(tmp_path, "primary: {api_key: abcd1234, secret: weakling}\n")
    result = CliRunner().invoke(app, ["simulate", "--seed", str(path)])
    assert result.exit_code == 2
    assert "upper case" in result.output
    assert "weakling" not in result.output


def test_cli_reports_a_busy_port_with_exit_1(app):
    """A port already in use is a one-line error, exit code 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["simulate", "--port", str(port), "--rest-port", "0"])
    assert result.exit_code == 1
    assert "cannot listen" in result.output


def _read_until(proc: subprocess.Popen[bytes], marker: str, timeout: float = 15.0) -> str:
    """Read the child's stdout until ``marker`` appears (a readiness handshake, not a sleep)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while marker.encode() not in data:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"simulator did not print {marker!r}; got {data!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"simulator exited early; got {data!r}")
            data += chunk
    return data.decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_python_m_serves_until_signalled(seed_file, tls, signum):
    """``python -m rotator.devtools.simulator`` prints URLs and keys (no secrets), stops cleanly."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rotator.devtools.simulator",
            "--port",
            "0",
            "--seed",
            str(seed_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        banner = _read_until(proc, "Press Ctrl+C")
        rest_url = re.search(r"rest: (http://\S+)", banner).group(1)
        with httpx.Client(verify=tls) as client:
            response = client.get(
                f"{rest_url}/account/get-balance", auth=("abcd1234", "Primary1Secret")
            )
        assert response.status_code == 200
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    output = banner + out.decode() + err.decode()
    assert proc.returncode == 0
    assert "api:  http://127.0.0.1:" in banner
    assert "primary api key: abcd1234" in banner
    assert "subaccounts: sub00001, sub00002" in banner
    assert b"stopped" in out
    for secret in ("Primary1Secret", "Sub1Secret01", "Sub2Secret02"):
        assert secret not in output
