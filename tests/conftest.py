"""Real servers for the suite: an OpenBao dev server, SQLite and PostgreSQL databases, and the
Vonage simulator (the only double). Every test gets its own Vault paths and its own database."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from rotator import db
from rotator.config import Config, parse_config
from rotator.devtools.devserver import OpenBaoDevServer
from rotator.devtools.postgres import throwaway_database
from rotator.devtools.simulator import VonageSimulator
from rotator.devtools.stackconfig import merge, stack_config
from rotator.secret import known_values
from rotator.services import Services, build
from tests import forkserver
from tests.secretscan import SecretLedger, database_dump, world_secret_values

LEDGER = SecretLedger()
LEDGER_KEY = "rotator_secret_ledger"  # a worker's ledger in xdist's workeroutput


@dataclass
class Xdist:
    """This process's part under pytest-xdist, and the workers whose ledger never arrived."""

    worker: bool = False
    without_ledger: list[str] = field(default_factory=list)


XDIST = Xdist()


def pytest_configure(config: pytest.Config) -> None:
    XDIST.worker = hasattr(config, "workerinput")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Every test's captured output and failure text goes to the secret ledger (under xdist,
    the controller's: it receives every worker's reports, sections and failure texts included)."""
    if XDIST.worker:
        return
    for title, content in report.sections:
        LEDGER.add_place(f"{report.nodeid} {title}", content)
    if report.longrepr is not None:
        LEDGER.add_place(f"{report.nodeid} {report.when} failure", str(report.longrepr))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """An xdist worker finished: take over its ledger (values, CLI outputs, database hits)."""
    exported = getattr(node, "workeroutput", {}).get(LEDGER_KEY)
    if exported is None:
        XDIST.without_ledger.append(node.gateway.id)
    else:
        LEDGER.merge(exported, node.gateway.id)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan everything the suite captured for every secret value it generated: 0 hits. A
    worker hands its ledger to the controller instead, which scans the union."""
    LEDGER.add_values({f"in-process {n}": v for n, v in enumerate(known_values())}, "registry")
    LEDGER.add_values({"simulator seed": PRIMARY_SECRET, **SUBACCOUNTS}, "seeds")
    if XDIST.worker:
        session.config.workeroutput[LEDGER_KEY] = LEDGER.export()  # type: ignore[attr-defined]
        return
    hits = LEDGER.scan()
    lost = XDIST.without_ledger
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"secret scan: {len(LEDGER.values)} secret values against {len(LEDGER.places)} captured "
        f"outputs, CLI outputs and failure texts, and every database: {len(hits)} hits"
    )
    if lost:
        line += f"; INCOMPLETE: no ledger from worker(s) {', '.join(lost)}"
    if reporter is not None:
        if reporter._tw.width_of_current_line:  # -q leaves it after the last progress dots
            reporter.write("\n")
        reporter.write_line(line)
        for hit in hits[:50]:
            reporter.write_line(f"  LEAK: {hit}")
    if hits or lost:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


PG_ADMIN_DSN = os.environ.get("ROTATOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
TOKEN_ENV = "ROTATOR_TEST_VAULT_TOKEN"
PRIMARY = "abcd1234"
PRIMARY_SECRET = "Primary1Secret"  # the simulator's seeded secret: known to tests only
SUBACCOUNTS = {"sub00001": "Sub1Secret01", "sub00002": "Sub2Secret02"}


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoDevServer]:
    log = tmp_path_factory.mktemp("openbao") / "bao.log"
    with OpenBaoDevServer(log_path=log) as server:
        os.environ[TOKEN_ENV] = server.root_token.reveal()
        yield server


@pytest.fixture(scope="session")
def vault_admin(openbao: OpenBaoDevServer) -> hvac.Client:
    """A root client, as an operator would use ``bao kv put``."""
    return hvac.Client(url=openbao.url, token=openbao.root_token.reveal())


def pg_database(template: str | None = None) -> AbstractContextManager[str]:
    """A PostgreSQL database of its own (empty, or a copy of ``template``), dropped after."""
    return throwaway_database(PG_ADMIN_DSN, prefix="rotator_t_", template=template)


def ensure_migrated(engine: Engine) -> None:
    """The schema at head: usually there already (a template copy); migrated otherwise."""
    if not db.at_head(engine):
        db.upgrade(engine)


@pytest.fixture
def migrated_schema() -> None:
    """Asked for by the fixtures that migrate the test's database (``migrated``, ``engine``...):
    ``database_url``, ``sqlite_url`` and ``postgres_url`` then start it as a copy of a database
    migrated once per test process (what ``db.upgrade`` makes), instead of empty. Tests of
    migrating itself ask for none of those fixtures and keep getting empty databases."""


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "rotator.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    sidecars = list(path.parent.glob(path.name + "-*"))
    assert sidecars == [], f"the template was not closed cleanly: {sidecars}"
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    with pg_database() as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it without connections
        yield str(sa.make_url(url).database)


def sqlite_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    path = tmp_path / "rotator.db"
    if "migrated_schema" in request.fixturenames:
        shutil.copy(request.getfixturevalue("sqlite_template"), path)  # keeps its 0600 mode
    return f"sqlite:///{path}"


def postgres_database(request: pytest.FixtureRequest) -> AbstractContextManager[str]:
    if "migrated_schema" in request.fixturenames:
        return pg_database(template=request.getfixturevalue("pg_template"))
    return pg_database()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One database per test, on SQLite and on PostgreSQL: empty, or migrated for a test that
    asks for ``migrated_schema``."""
    if request.param == "sqlite":
        yield sqlite_database(request, tmp_path)
    else:
        with postgres_database(request) as url:
            yield url


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return sqlite_database(request, tmp_path)


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with postgres_database(request) as url:
        yield url


@pytest.fixture
def sim() -> Iterator[VonageSimulator]:
    with VonageSimulator(
        primary_api_key=PRIMARY,
        primary_secret=PRIMARY_SECRET,
        subaccounts=[
            {"api_key": key, "secret": secret, "name": f"Dept {key[-1]}"}
            for key, secret in SUBACCOUNTS.items()
        ],
    ) as simulator:
        yield simulator


def config_data(
    sim: VonageSimulator, openbao: OpenBaoDevServer, database_url: str, prefix: str
) -> dict[str, Any]:
    base = stack_config(
        sim,
        vault_url=openbao.url,
        vault_auth={"method": "token", "token_env": TOKEN_ENV},
        database_url=database_url,
        path_prefix=f"{prefix}/vonage",
        state_prefix=f"{prefix}/rotator-state",
    )
    return merge(
        base,
        {
            # generous: a loaded CI machine must not turn into a fault test
            "vonage": {"timeout": "10s", "max_calls_per_second": 1000},
            "rotation": {"verify_timeout": "10s", "lease_ttl": "30s"},
            "logging": {"format": "json", "level": "debug"},
        },
    )


class World:
    """One test's rotator set-up: simulator, Vault paths, database, config and services."""

    def __init__(
        self,
        sim: VonageSimulator,
        openbao: OpenBaoDevServer,
        vault_admin: hvac.Client,
        database_url: str,
        tmp_path: Path,
    ) -> None:
        self.sim = sim
        self.openbao = openbao
        self.vault_admin = vault_admin
        self.database_url = database_url
        self.tmp_path = tmp_path
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.data = config_data(sim, openbao, database_url, self.prefix)
        self._services: list[Services] = []

    @property
    def config(self) -> Config:
        return parse_config(self.data)

    def configure(self, **sections: dict[str, Any]) -> World:
        self.data = merge(self.data, sections)
        return self

    def config_file(self) -> Path:
        path = self.tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(self.data))
        return path

    def services(self, **options: Any) -> Services:
        services = build(self.config, **options)
        self._services.append(services)
        return services

    def seed_vault(self, api_key: str, secret: str, secret_id: str | None = None) -> None:
        """Write a key's record as an operator would (``bao kv put``), optionally with its id."""
        data = {"api_key": api_key, "api_secret": secret}
        if secret_id is not None:
            data["secret_id"] = secret_id
        self.vault_admin.secrets.kv.v2.create_or_update_secret(
            path=f"{self.prefix}/vonage/{api_key}", secret=data, mount_point="secret"
        )

    def seed_primary(self, *, with_id: bool = False) -> None:
        secret_id = self.sim.secret_ids(PRIMARY)[0] if with_id else None
        self.seed_vault(PRIMARY, PRIMARY_SECRET, secret_id)

    def current_authenticates(self, api_key: str) -> bool:
        """Vault's current secret for the key works on Vonage (no value ever reaches an assert
        message this way)."""
        record = self.vault_record(api_key)
        return record is not None and self.sim.authenticates(api_key, record["api_secret"])

    def seeded_authenticates(self, api_key: str) -> bool:
        """The simulator's seeded secret for the key still works."""
        seeded = PRIMARY_SECRET if api_key == PRIMARY else SUBACCOUNTS[api_key]
        return self.sim.authenticates(api_key, seeded)

    def vault_record(self, api_key: str, kind: str = "vonage") -> dict[str, Any] | None:
        try:
            response = self.vault_admin.secrets.kv.v2.read_secret_version(
                path=f"{self.prefix}/{kind}/{api_key}",
                mount_point="secret",
                raise_on_deleted_version=True,
            )
        except hvac.exceptions.InvalidPath:
            return None
        data: dict[str, Any] = response["data"]["data"]
        return data

    def close(self) -> None:
        for services in self._services:
            services.close()
        values = world_secret_values(self)
        LEDGER.add_values(values, self.prefix)
        LEDGER.check_now(values, database_dump(self.database_url))


@pytest.fixture
def world(
    sim: VonageSimulator,
    openbao: OpenBaoDevServer,
    vault_admin: hvac.Client,
    database_url: str,
    tmp_path: Path,
) -> Iterator[World]:
    w = World(sim, openbao, vault_admin, database_url, tmp_path)
    yield w
    w.close()


@pytest.fixture
def migrated(world: World, migrated_schema: None) -> World:
    engine = db.make_engine(world.database_url)
    ensure_migrated(engine)
    engine.dispose()
    return world


@pytest.fixture
def run_cli(world: World) -> Callable[..., Any]:
    """Run ``rotator`` in a real subprocess with the world's config; returns CompletedProcess.
    The process is forked from a warm interpreter (tests/forkserver.py): the same
    ``python -m rotator`` run, its imports already done."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
        result = forkserver.shared().run(
            ["--config", str(world.config_file()), *args],
            env={**os.environ, **(env or {})},
            timeout=timeout,
        )
        LEDGER.add_place(f"rotator {' '.join(args)} stdout", result.stdout)
        LEDGER.add_place(f"rotator {' '.join(args)} stderr", result.stderr)
        return result

    return run
