"""What rotator prints, exports and stores, played by an attacker (issue 11 items 4, 5, 13, 16):
hostile names and reasons, a secret echoed by Vonage, a core dump, a sealed Vault, a missing token.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rotator import db
from rotator.audit import AuditLog, RunStatus
from rotator.clock import utcnow
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.simulator import Fault
from rotator.secret import MASK, Secret
from tests.conftest import PRIMARY_SECRET, SUBACCOUNTS, TOKEN_ENV, World
from tests.secretscan import database_dump

SUB = "sub00001"
EVIL_ACTOR = "\x1b[31m[link=http://evil.example]mallory[/link]\x1b]8;;http://evil.example\x1b\\"
EVIL_REASON = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite only: these tests are about output, not the database."""
    return sqlite_url


def seeded(world: World) -> World:
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    return world


def count_runs(world: World) -> int:
    engine = db.make_engine(world.database_url)
    try:
        with engine.connect() as conn:
            if "rotation_runs" not in sa.inspect(conn).get_table_names():
                return 0
            return int(conn.execute(sa.text("SELECT count(*) FROM rotation_runs")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def hostile_run(world: World, run_cli: Any) -> World:
    """One rotation of SUB by an actor and reason an attacker chose."""
    seeded(world)
    done = run_cli("rotate", SUB, "--actor", EVIL_ACTOR, "--reason", EVIL_REASON)
    assert done.returncode == 0, done.stderr[-2000:]
    return world


def test_audit_table_shows_markup_and_escapes_as_text(hostile_run: World, run_cli: Any) -> None:
    """`rotator audit` prints no escape character and shows rich markup literally."""
    done = run_cli("audit")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\x1b" not in done.stdout
    assert "[link=http://evil.example]" in done.stdout.replace("\n", "").replace(" ", "")


def test_audit_show_prints_no_escape_character(hostile_run: World, run_cli: Any) -> None:
    """`rotator audit show RUN` names the actor with its escapes visible, not acted on."""
    run_id = json.loads(run_cli("audit", "--json").stdout.splitlines()[0])["run_id"]
    done = run_cli("audit", "show", run_id)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "\x1b" not in done.stdout
    assert "\\x1b[31m[link=http://evil.example]mallory[/link]" in done.stdout


def test_audit_csv_neutralises_a_formula(hostile_run: World, run_cli: Any) -> None:
    """`audit --format csv` writes the =HYPERLINK reason as text a spreadsheet won't evaluate."""
    done = run_cli("audit", "--format", "csv")
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = list(csv.DictReader(io.StringIO(done.stdout)))
    assert row["reason"] == "'" + EVIL_REASON
    assert "\x1b" not in done.stdout


def test_a_secret_echoed_by_vonage_reaches_no_output_and_no_table(
    world: World, run_cli: Any
) -> None:
    """A Vonage error body repeating the primary's secret leaves it out of stdout, --json, CSV,
    stderr and every database table."""
    seeded(world)
    body = json.dumps({"type": "x#validation", "title": "Bad", "detail": f"{PRIMARY_SECRET} no"})
    world.sim.inject(Fault(action="body", method="POST", path="*/secrets", status=400, body=body))
    texts = [run_cli("rotate", SUB, "--reason", "echo test")]
    world.sim.inject(Fault(action="body", method="POST", path="*/secrets", status=400, body=body))
    texts.append(run_cli("rotate", SUB, "--json"))
    assert [t.returncode for t in texts] == [1, 1]
    assert MASK in texts[1].stdout
    for command in (("audit", "--format", "csv"), ("audit", "--json"), ("audit",)):
        texts.append(run_cli(*command))
    outputs = "".join(t.stdout + t.stderr for t in texts)
    assert PRIMARY_SECRET not in outputs
    dump = database_dump(world.database_url)
    assert all(PRIMARY_SECRET.encode() not in bytes(v) for v in dump.values())  # type: ignore[arg-type]


def test_the_audit_log_scrubs_every_error_it_stores(world: World) -> None:
    """record, update_run and finish_run mask a known secret value in an error text."""
    services = world.services()
    audit: AuditLog = services.audit
    leaked = Secret("Leaked1SecretValue").reveal()
    run = audit.start_run(api_key=SUB, trigger="manual", actor="t", owner="t")
    audit.record(step="create", outcome="failed", started_at=utcnow(), error=f"x {leaked}")
    audit.update_run(run.id, error=f"y {leaked}")
    audit.finish_run(run.id, RunStatus.FAILED, error=f"z {leaked}")
    stored = [e.error or "" for e in audit.events()] + [audit.get_run(run.id).error or ""]
    assert not [text for text in stored if leaked in text]
    assert sum(MASK in text for text in stored) == 3


PROBE = """
import contextlib, ctypes, io, json, resource, sys
from rotator.cli import app
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        app(sys.argv[1:], prog_name="rotator")
    except SystemExit:
        pass
libc = ctypes.CDLL(None)
print(json.dumps({"core": resource.getrlimit(resource.RLIMIT_CORE), "dumpable": libc.prctl(3)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux")
def test_every_command_runs_without_core_dumps_and_non_dumpable(tmp_path: Path) -> None:
    """A rotator command (here `check` with no config) runs with RLIMIT_CORE 0 and dumpable 0."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(tmp_path / "none.yaml"), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == {"core": [0, 0], "dumpable": 0}


def test_a_sealed_vault_at_start_exits_3_and_records_no_run(
    world: World, run_cli: Any, tmp_path: Path
) -> None:
    """`rotate` against a sealed Vault exits 3 (unavailable), says so, and records no run."""
    seeded(world)
    with OpenBaoDevServer(log_path=tmp_path / "sealed-bao.log") as sealed:
        sealed.seal()
        world.configure(vault={"url": sealed.url})
        done = run_cli("rotate", SUB)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "sealed" in done.stderr
    assert count_runs(world) == 0


def test_a_token_vault_refuses_at_start_exits_3_and_records_no_run(
    world: World, run_cli: Any
) -> None:
    """`rotate` with a token Vault does not know exits 3 (the one token check before the run,
    made by logging in), says permission was denied, and records no run."""
    seeded(world)
    unknown = Secret("hvs.unknown-" + world.prefix)
    done = run_cli("rotate", SUB, "--emergency", "--reason", "x", env={TOKEN_ENV: unknown.reveal()})
    assert done.returncode == 3, done.stderr[-2000:]
    assert "permission denied" in done.stderr
    assert count_runs(world) == 0


def test_a_missing_vault_token_exits_2_and_records_no_run(world: World, run_cli: Any) -> None:
    """With the token variable unset, `rotate` exits 2 naming it, and records no run."""
    seeded(world)
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "rotator", "--config", str(world.config_file()), "rotate", SUB],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert TOKEN_ENV in done.stderr
    assert count_runs(world) == 0


def test_a_port_in_use_exits_2_with_one_clear_line(world: World, run_cli: Any) -> None:
    """`rotator run` whose http.listen port is taken says so and exits 2, with no traceback."""
    seeded(world)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        world.configure(http={"listen": f"127.0.0.1:{taken.getsockname()[1]}"})
        done = run_cli("run", timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "rotator: error: http.listen: cannot listen on 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", [["rotate", SUB], ["check"]], ids=["rotate", "check"])
def test_an_error_naming_hostile_text_shows_its_escapes(tmp_path: Path, command: list[str]) -> None:
    """An error quoting a path with an ANSI escape prints the escape as text (a terminal would
    act on it; click strips it only when piped)."""
    config = tmp_path / "\x1b[2Jnone.yaml"
    args = [sys.executable, "-m", "rotator", "--config", str(config), *command]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "\\x1b[2Jnone.yaml" in done.stdout + done.stderr
