"""Fixtures for the simulator's own tests: a fake clock, running simulators and HTTP clients."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from rotator.devtools.simulator import VonageSimulator


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Seeded:
    """The accounts every ``sim`` starts with."""

    primary: str = "abcd1234"
    primary_secret: str = "Primary1Secret"
    sub: str = "sub00001"
    sub_secret: str = "Sub1Secret01"
    sibling: str = "sub00002"
    sibling_secret: str = "Sub2Secret02"

    @property
    def primary_auth(self) -> tuple[str, str]:
        return self.primary, self.primary_secret

    @property
    def sub_auth(self) -> tuple[str, str]:
        return self.sub, self.sub_secret

    @property
    def sibling_auth(self) -> tuple[str, str]:
        return self.sibling, self.sibling_secret


SEEDED = Seeded()


@pytest.fixture(scope="session")
def tls() -> ssl.SSLContext:
    """One SSL context for every client: httpx builds a new one (~50 ms) per client otherwise."""
    return ssl.create_default_context()


@pytest.fixture
def acct() -> Seeded:
    return SEEDED


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sim(clock: FakeClock) -> Iterator[Callable[..., VonageSimulator]]:
    """Start simulators with the seeded accounts and any knob overridden; all stopped after."""
    started: list[VonageSimulator] = []

    def make(**overrides: Any) -> VonageSimulator:
        kwargs: dict[str, Any] = {
            "primary_api_key": SEEDED.primary,
            "primary_secret": SEEDED.primary_secret,
            "subaccounts": [
                {"api_key": SEEDED.sub, "secret": SEEDED.sub_secret, "name": "Dept A"},
                {"api_key": SEEDED.sibling, "secret": SEEDED.sibling_secret, "name": "Dept B"},
            ],
            "clock": clock,
        }
        kwargs.update(overrides)
        sim = VonageSimulator(**kwargs).start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()
    for sim in started:
        assert sim.errors == [], "the simulator raised internally (answered 500)"


@pytest.fixture
def sim(make_sim: Callable[..., VonageSimulator]) -> VonageSimulator:
    return make_sim()


@pytest.fixture
def api(sim: VonageSimulator, client_for: Callable[..., httpx.Client]) -> httpx.Client:
    """A client for the api host, authenticated as the primary account."""
    return client_for(sim.api_url, SEEDED.primary_auth)


@pytest.fixture
def rest(sim: VonageSimulator, client_for: Callable[..., httpx.Client]) -> httpx.Client:
    """A client for the rest host, with no credentials of its own."""
    return client_for(sim.rest_url)


@pytest.fixture
def client_for(tls: ssl.SSLContext) -> Iterator[Callable[..., httpx.Client]]:
    """Open extra clients (for simulators made with ``make_sim``); all closed after the test."""
    opened: list[httpx.Client] = []

    def make(base_url: str, auth: tuple[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 5.0)
        client = httpx.Client(base_url=base_url, auth=auth, verify=tls, **kwargs)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()
