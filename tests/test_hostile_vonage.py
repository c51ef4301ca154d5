"""Vonage answering as a compromised or spoofed upstream would (the simulator's "body" fault):
malformed identifiers, echoed secrets, day-long Retry-After, undocumented limit errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from rotator.config import VonageConfig
from rotator.devtools.simulator import Fault, VonageSimulator
from rotator.errors import (
    InvalidIdentifierError,
    VonageError,
    VonageInvalidIdentifierError,
    VonageRateLimitError,
    VonageSecretLimitError,
    VonageValidationError,
)
from rotator.ratelimit import RateLimiter
from rotator.secret import Credentials, Secret
from rotator.vonage import VonageClient
from tests.conftest import PRIMARY, PRIMARY_SECRET, SUBACCOUNTS, World

XSS = "subxss01"
XSS_SECRET = "Subxss1Secret01"  # a fixture of the simulated account, not a real secret
ADMIN = Credentials(PRIMARY, Secret(PRIMARY_SECRET))


class Recorder:
    """A VonageClient on the simulator that records sleeps instead of sleeping."""

    def __init__(self, sim: VonageSimulator, **config: Any) -> None:
        self.sleeps: list[float] = []
        self.limiter_sleeps: list[float] = []
        settings = {"primary_api_key": PRIMARY, "api_url": sim.api_url, "rest_url": sim.rest_url}
        self.vonage = VonageClient(
            VonageConfig(**{**settings, **config}),
            limiter=RateLimiter(1000, sleep=self.limiter_sleeps.append),
            sleep=self.sleeps.append,
        )


@pytest.fixture
def recorder(sim: VonageSimulator) -> Iterator[Recorder]:
    made = Recorder(sim)
    yield made
    made.vonage.close()


def listing(api_key: str, *ids: str, created: str = "2026-01-01T10:00:00Z") -> str:
    items = [{"id": i, "created_at": created, "_links": {"self": {"href": "/x"}}} for i in ids]
    return json.dumps({"_embedded": {"secrets": items}, "_links": {"self": {"href": "/x"}}})


def spoof(sim: VonageSimulator, path: str, body: str, status: int = 200) -> Fault:
    return sim.inject(
        Fault(action="body", method="GET", path=path, status=status, body=body, times=None)
    )


@pytest.mark.parametrize(
    "bad_id",
    [
        "../../sub00001/secrets/{id}",
        "%2e%2e%2fsub00001",
        "ad6dc56f\x1b[31m",
        "a" * 5000,
        "ad6dc56f-",
    ],
    ids=["traversal", "encoded", "control", "huge", "dangling-dash"],
)
def test_a_listing_with_a_malformed_secret_id_is_refused(
    sim: VonageSimulator, recorder: Recorder, bad_id: str
) -> None:
    """A secret id that is not a UUID makes the whole listing a VonageInvalidIdentifierError."""
    bad = bad_id.format(id=sim.secret_ids("sub00001")[0])
    spoof(sim, f"/accounts/{XSS}/secrets", listing(XSS, bad))
    sim.add_subaccount(XSS, XSS_SECRET)
    with pytest.raises(VonageInvalidIdentifierError, match="not a valid Vonage secret id"):
        recorder.vonage.list_secrets(ADMIN, XSS)


def test_a_created_answer_with_a_malformed_id_is_refused(
    sim: VonageSimulator, recorder: Recorder
) -> None:
    """A 201 naming a traversal id is refused before anyone records or deletes it."""
    body = json.dumps({"id": "../sub00001", "created_at": "2026-01-01T10:00:00Z"})
    sim.inject(Fault(action="body", method="POST", path="*/secrets", status=201, body=body))
    with pytest.raises(VonageInvalidIdentifierError):
        recorder.vonage.create_secret(ADMIN, "sub00001", Secret("Created1Secret99"))


def test_a_malformed_subaccount_key_is_refused_alone_and_the_rest_kept(
    sim: VonageSimulator, recorder: Recorder
) -> None:
    """A subaccount key with a control character is refused (sanitised); the others stand."""
    subs = [
        {"api_key": "sub\n0001", "name": "x", "suspended": False},
        {"api_key": "sub00002", "name": "y", "suspended": False},
    ]
    spoof(sim, f"/accounts/{PRIMARY}/subaccounts", json.dumps({"_embedded": {"subaccounts": subs}}))
    reply = recorder.vonage.list_subaccounts(ADMIN)
    assert [s.api_key for s in reply.subaccounts] == ["sub00002"]
    assert reply.refused == ["'sub?0001'"]


def test_revoke_never_climbs_out_of_the_named_key(sim: VonageSimulator, recorder: Recorder) -> None:
    """A traversal id handed to revoke_secret touches no other key's secrets."""
    sim.add_subaccount(XSS, XSS_SECRET)
    sim.add_secret("sub00001", "Sub1Extra00001", propagated=True)
    before = sim.secret_ids("sub00001")
    with pytest.raises(InvalidIdentifierError):
        recorder.vonage.revoke_secret(ADMIN, XSS, f"../../sub00001/secrets/{before[0]}")
    assert sim.secret_ids("sub00001") == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_spoofed_listing_cannot_make_rotate_revoke_another_key(
    world: World, run_cli: Any
) -> None:
    """`rotate subxss01` fed a listing whose id climbs into sub00001 leaves sub00001 as it was."""
    sim = world.sim
    world.seed_primary()
    world.configure(rotation={"on_unidentified": "revoke_older"})
    sim.add_subaccount(XSS, XSS_SECRET)
    sim.add_secret("sub00001", "Sub1Extra00001", propagated=True)
    target = sim.secret_ids("sub00001")[0]
    real = sim.secret_ids(XSS)[0]
    spoofed = listing(XSS, f"../../sub00001/secrets/{target}", created="2020-01-01T00:00:00Z")
    body = json.loads(spoofed)
    body["_embedded"]["secrets"].append(
        {"id": real, "created_at": "2026-01-01T10:00:00Z", "_links": {"self": {"href": "/x"}}}
    )
    spoof(sim, f"/accounts/{XSS}/secrets", json.dumps(body))
    result = run_cli("rotate", XSS, "--reason", "hostile listing test")
    assert result.returncode != 0
    assert sim.authenticates("sub00001", SUBACCOUNTS["sub00001"])
    assert target in sim.secret_ids("sub00001")
    assert "not a valid Vonage secret id" in result.stdout + result.stderr


def test_a_secret_echoed_in_an_error_body_never_reaches_the_message(
    sim: VonageSimulator, recorder: Recorder
) -> None:
    """A 400 whose detail repeats the new secret raises an error whose text masks it."""
    value = "Echoed1SecretValue"
    body = json.dumps({"type": "x#validation", "title": "Bad", "detail": f"secret {value} bad"})
    sim.inject(Fault(action="body", method="POST", path="*/secrets", status=400, body=body))
    with pytest.raises(VonageValidationError) as caught:
        recorder.vonage.create_secret(ADMIN, "sub00001", Secret(value))
    assert value not in f"{caught.value} {caught.value!r}"
    assert "********" in str(caught.value)


def test_a_day_long_retry_after_fails_the_call_instead_of_sleeping(
    sim: VonageSimulator, recorder: Recorder
) -> None:
    """Retry-After: 86400 beyond vonage.max_retry_after raises at once and freezes nobody."""
    sim.inject(Fault(action="status", status=429, retry_after=86400, times=1))
    with pytest.raises(VonageRateLimitError, match="max_retry_after"):
        recorder.vonage.list_secrets(ADMIN, "sub00001")
    recorder.vonage.list_secrets(ADMIN, "sub00002")
    assert recorder.sleeps == []
    assert max(recorder.limiter_sleeps, default=0.0) <= 300.0


def test_max_retry_after_is_configurable(sim: VonageSimulator) -> None:
    """A Retry-After within a raised vonage.max_retry_after is waited in full, then retried."""
    made = Recorder(sim, max_retry_after="2h")
    try:
        sim.inject(Fault(action="status", status=429, retry_after=3600, times=1))
        made.vonage.list_secrets(ADMIN, "sub00001")
        assert made.sleeps == [3600.0]
    finally:
        made.vonage.close()


def test_the_older_maximum_secrets_allowed_403_is_the_secret_limit(
    sim: VonageSimulator, recorder: Recorder
) -> None:
    """The SDK-recorded 403 maximum-secrets-allowed maps to VonageSecretLimitError."""
    body = json.dumps(
        {
            "type": "https://developer.nexmo.com/api-errors/account/secret-management"
            "#maximum-secrets-allowed",
            "title": "Maxmimum number of secrets already met",
            "detail": "This account has reached maximum number of '2' allowed secrets",
            "instance": "797a8f199c45014ab7b08bfe9cc1c12c",
        }
    )
    sim.inject(Fault(action="body", method="POST", path="*/secrets", status=403, body=body))
    with pytest.raises(VonageSecretLimitError):
        recorder.vonage.create_secret(ADMIN, "sub00001", Secret("Third1SecretValue"))


def test_millisecond_timestamps_parse(sim: VonageSimulator, recorder: Recorder) -> None:
    """created_at with milliseconds (2024-01-01T10:00:00.123Z) is read to the millisecond."""
    real = sim.secret_ids("sub00001")[0]
    spoof(
        sim,
        "/accounts/sub00001/secrets",
        listing("sub00001", real, created="2024-01-01T10:00:00.123Z"),
    )
    [info] = recorder.vonage.list_secrets(ADMIN, "sub00001").secrets
    assert info.created_at.microsecond == 123000
    assert info.created_at.utcoffset() == timedelta(0)


def test_spoofed_sms_refusal_echoing_the_secret_is_scrubbed(
    sim: VonageSimulator, recorder: Recorder
) -> None:
    """An SMS refusal whose error text echoes the sender's secret never repeats the secret."""
    refusal = {"status": "4", "error-text": f"bad credentials {PRIMARY_SECRET}\x1b[31m"}
    body = json.dumps({"message-count": "1", "messages": [refusal]})
    sim.inject(Fault(action="body", method="POST", path="*/sms/json", status=200, body=body))
    with pytest.raises(VonageError) as caught:
        recorder.vonage.send_sms(ADMIN, sender="Rotator", to="447700900001", text="hello")
    assert "refused: status 4" in str(caught.value)
    assert PRIMARY_SECRET not in str(caught.value)
