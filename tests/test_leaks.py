"""Secret values never appear in logs, CLI output, the audit database, exception messages or
``repr()``s. Every scan looks for the REAL values: the seeded secrets, every secret rotator ever
staged or published (read back from Vault's version history) and the Vault token.

A leak is reported by label ("sub00001 secret <id> in log"), never by value, so a failing test
does not leak either.
"""

from __future__ import annotations

import io
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from rotator import logs
from rotator.audit import RunStatus
from rotator.errors import RotatorError
from rotator.rotation import Outcome
from rotator.secret import MASK, Credentials, Secret, known_values, mask_known
from rotator.vault import CurrentRecord, RotationState, StagedSecret
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World
from tests.logcapture import rotator_logs
from tests.secretscan import database_dump, find, world_secret_values

SUB = "sub00001"
SUB2 = "sub00002"


# -- what to look for --------------------------------------------------------------------------


def secret_values(world: World) -> dict[str, str]:
    """Label -> value of every secret this test's world has known, seeds included."""
    return {
        f"{PRIMARY} seeded secret": PRIMARY_SECRET,
        **{f"{key} seeded secret": value for key, value in SUBACCOUNTS.items()},
        **world_secret_values(world),
    }


def leaks(world: World, places: dict[str, str | bytes]) -> list[str]:
    """Which secret values appear where, by label only."""
    return find(secret_values(world), places)


# -- scenarios ---------------------------------------------------------------------------------


def rotate(world: World, api_key: str) -> Outcome:
    return world.services().rotator.rotate(api_key, actor="leak-test", reason="leaks")


def eventful_history(world: World) -> list[Outcome]:
    """A primary rotation, two subaccount rotations, a rollback and an unidentifiable failure."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    outcomes = [rotate(world, PRIMARY), rotate(world, SUB), rotate(world, SUB)]
    world.configure(rotation={"verify_timeout": "0.5s"})
    world.sim.propagation_delay = 3600
    outcomes.append(rotate(world, SUB))
    world.sim.propagation_delay = 0
    world.sim.add_secret(SUB2, "Another2Secret")
    outcomes.append(rotate(world, SUB2))
    statuses = [o.run.status for o in outcomes]
    assert statuses == [RunStatus.SUCCEEDED] * 3 + [RunStatus.ROLLED_BACK, RunStatus.FAILED]
    return outcomes


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """rotator's own logging set-up (JSON, debug) writing into a buffer; restored afterwards."""
    with rotator_logs("debug") as stream:
        yield stream


SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# -- logs --------------------------------------------------------------------------------------


@SQLITE
def test_logs_hold_no_secret(world: World, log_stream: io.StringIO) -> None:
    """Debug logs of successful, rolled-back and failed rotations name no secret value."""
    eventful_history(world)
    text = log_stream.getvalue()
    assert "rotation_succeeded" in text
    assert "rotation_failed" in text
    assert leaks(world, {"log": text}) == []


@SQLITE
def test_engine_logs_no_secret_even_without_the_redactor(
    world: World, log_stream: io.StringIO
) -> None:
    """The redaction processor is a last line of defence: without it no secret is logged either."""
    config = structlog.get_config()
    processors = [p for p in config["processors"] if p is not logs.redact]
    assert len(processors) == len(config["processors"]) - 1
    structlog.configure(processors=processors)
    eventful_history(world)
    text = log_stream.getvalue()
    assert "rotation_succeeded" in text
    assert leaks(world, {"log": text}) == []


def test_redactor_masks_a_known_value_anywhere_in_an_event(log_stream: io.StringIO) -> None:
    """A secret value slipped into any field or message is masked by the redaction processor."""
    value = Secret("Slipped9ValueXyz").reveal()
    structlog.get_logger("test").info(
        f"oops {value}", nested={"list": [f"x{value}y"]}, api_secret="plain", token=value
    )
    text = log_stream.getvalue()
    assert "Slipped9ValueXyz" not in text
    assert "plain" not in text
    assert MASK in text


def test_masking_finds_every_known_value_whichever_way_it_looks() -> None:
    """``mask_known`` looks a short text's substrings up by length and searches a long text for
    each value (issue 12: a bulk run knows a thousand secrets): both give what searching for
    every known value, longest first, gives, a value inside a longer one included."""
    bulk = [Secret(f"Bulk{n:05d}Masking9Value").reveal() for n in range(300)]
    inner = Secret("Inner7Value").reveal()
    outer = Secret(f"xx{inner}yy").reveal()
    texts = [
        f"short {bulk[7]} and {bulk[123]}",
        f"{outer} holds {inner}; {inner} alone",
        "no secret at all, just words and sub00001",
        " ".join(bulk) + f" {outer} {inner} " + "filler " * 50,  # longer than the bucket
        bulk[299][:-1],  # one character short of a value: nothing to mask
        "",
    ]
    for text in texts:
        expected = text
        for value in sorted(known_values(), key=len, reverse=True):
            expected = expected.replace(value, MASK)
        assert mask_known(text) == expected
    assert MASK in mask_known(texts[0])
    assert bulk[7] not in mask_known(texts[0])
    assert inner not in mask_known(texts[1])


# -- CLI ---------------------------------------------------------------------------------------


@SQLITE
def test_cli_output_holds_no_secret(world: World, run_cli: Any) -> None:
    """Everything `rotator` prints (stdout and its debug logs on stderr) names no secret value."""
    world.seed_primary()
    outputs: dict[str, str | bytes] = {}
    for args in (
        ["rotate", PRIMARY, "--json"],
        ["rotate", SUB],
        ["rotate", "nosuchkey"],
        ["audit", "--json"],
    ):
        done = run_cli(*args)
        outputs[f"`rotator {' '.join(args)}` stdout"] = done.stdout
        outputs[f"`rotator {' '.join(args)}` stderr"] = done.stderr
    assert '"status": "succeeded"' in outputs[f"`rotator rotate {PRIMARY} --json` stdout"]
    assert leaks(world, outputs) == []


# -- the database ------------------------------------------------------------------------------


def test_database_holds_no_secret(world: World) -> None:
    """The audit database (runs, events with errors and details, leases) holds no secret value."""
    outcomes = eventful_history(world)
    # The scan covers 3 seeded secrets, the token and all 4 generated ones (1 rolled back).
    distinct = len(set(secret_values(world).values()))  # counted outside the assert: no values
    assert distinct == 9  # printed if it fails (+1: the secret added to sub00002 by hand)
    dump = database_dump(world.database_url)
    assert any(o.run.id.encode() in d if isinstance(d, bytes) else o.run.id in d
               for o in outcomes for d in dump.values())  # fmt: skip
    assert leaks(world, dump) == []


# -- exception messages ------------------------------------------------------------------------


def rendered(exc: BaseException) -> str:
    """What an operator could see of an error: str, repr and the full printed traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@SQLITE
def test_exception_messages_hold_no_secret(world: World) -> None:
    """Errors raised with secrets in hand (refused, invalid, conflicting) do not carry them."""
    world.seed_primary()
    services = world.services()
    admin = Credentials(PRIMARY, Secret(PRIMARY_SECRET))
    wrong = Secret("Wrong1SecretValue")
    invalid = Secret("alllowercaseletters")
    third = Secret("Third3SecretValue")
    world.sim.add_secret(SUB, "Second2SecretVal")
    attempts: dict[str, Callable[[], object]] = {
        "refused credentials": lambda: services.vonage.get_balance(Credentials(SUB, wrong)),
        "invalid new secret": lambda: services.vonage.create_secret(admin, SUB, invalid),
        "third secret": lambda: services.vonage.create_secret(admin, SUB, third),
        "stale Vault write": lambda: services.vault.write_current(
            PRIMARY, third, "some-id", cas=99, run_id=None
        ),
        "admin refused": lambda: services.vonage.list_secrets(Credentials(PRIMARY, wrong), SUB),
    }
    places: dict[str, str | bytes] = {}
    for name, attempt in attempts.items():
        with pytest.raises(RotatorError) as caught:
            attempt()
        places[f"error from {name}"] = rendered(caught.value)
    secrets = {"wrong": wrong, "invalid": invalid, "third": third}
    found = [
        f"{label} secret in {where}"
        for label, secret in secrets.items()
        for where, text in places.items()
        if isinstance(text, str) and secret.reveal() in text
    ]
    assert found == []
    assert leaks(world, places) == []


@SQLITE
def test_run_errors_hold_no_secret(world: World) -> None:
    """The error text recorded for failed and rolled-back runs names no secret value."""
    outcomes = eventful_history(world)
    errors: dict[str, str | bytes] = {
        f"error of run {o.run.id}": o.run.error or "" for o in outcomes
    }
    assert sum(1 for e in errors.values() if e) == 2
    assert leaks(world, errors) == []


# -- repr() ------------------------------------------------------------------------------------


@SQLITE
def test_reprs_hold_no_secret(world: World) -> None:
    """repr() and str() of every object that carries a secret show a mask instead."""
    world.seed_primary(with_id=True)
    services = world.services()
    value = Secret("Repr1SecretValueX")
    staged = StagedSecret(secret=value, secret_id="id-1", run_id="run-1", staged_at="now")
    objects: dict[str, object] = {
        "Config": services.config,
        "VaultStore": services.vault,
        "VonageClient": services.vonage,
        "Credentials": Credentials(PRIMARY, value),
        "Secret": value,
        "CurrentRecord": services.vault.read_current(PRIMARY),
        "CurrentRecord (built)": CurrentRecord(
            api_key=SUB, api_secret=value, secret_id="id-1", version=1
        ),
        "StagedSecret": staged,
        "RotationState": RotationState(pending=staged, previous=staged, version=2),
        "OpenBaoDevServer": world.openbao,
        "Outcome": rotate(world, SUB),
        "simulator secrets": world.sim.secrets(SUB),
    }
    places: dict[str, str | bytes] = {}
    for name, obj in objects.items():
        places[f"repr({name})"] = repr(obj)
        places[f"str({name})"] = str(obj)
        places[f"f-string of {name}"] = f"{obj}"
    assert not [where for where, text in places.items() if value.reveal() in str(text)]
    assert leaks(world, places) == []
