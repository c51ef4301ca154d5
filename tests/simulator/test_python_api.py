"""The test-only Python API: introspection, lifecycle, and keeping secrets out of output."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rotator.devtools.simulator import CallRecord, SimSecret, VonageSimulator

# -- secrets stay out of output -------------------------------------------------------------------


def test_sim_secret_repr_masks_the_value(sim, acct):
    """``repr``/``str``/f-strings of a SimSecret never show the value."""
    [secret] = sim.secrets(acct.primary)
    assert secret.value == acct.primary_secret
    for text in (repr(secret), str(secret), f"{secret}", repr(sim.secrets(acct.primary))):
        assert acct.primary_secret not in text
        assert "********" in text


def test_call_log_never_holds_secret_values(sim, api, rest, acct):
    """Query strings, Authorization headers and bodies never reach the call log."""
    rest.get(
        "/account/get-balance", params={"api_key": acct.primary, "api_secret": acct.primary_secret}
    )
    api.post(f"/accounts/{acct.sub}/secrets", json={"secret": "Fresh5Secret"})
    rest.post(
        "/sms/json",
        data={
            "api_key": acct.sub,
            "api_secret": acct.sub_secret,
            "from": "A",
            "to": "4477009000",
            "text": "x",
        },
    )
    text = repr(sim.calls)
    for secret in (acct.primary_secret, acct.sub_secret, "Fresh5Secret"):
        assert secret not in text
    assert sim.calls[0].path == "/account/get-balance"


def test_server_writes_nothing_to_stdout_or_stderr(sim, api, acct, capfd):
    """No request lines, errors or tracebacks are printed, even for garbage requests."""
    api.get(
        "/account/get-balance", params={"api_key": acct.primary, "api_secret": acct.primary_secret}
    )
    api.get(f"/accounts/{acct.primary}/secrets", auth=None)
    host, port = sim.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"GARBAGE / HTTP/9.9\r\n\r\n")
        raw.recv(4096)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


# -- call log -------------------------------------------------------------------------------------


def test_call_record_describes_the_call(sim, api, acct):
    """A CallRecord names method, host, path, status, presented key and request id."""
    response = api.get(f"/accounts/{acct.sub}/secrets")
    assert sim.calls == [
        CallRecord(
            method="GET",
            host="api",
            path=f"/accounts/{acct.sub}/secrets",
            status=200,
            auth_key=acct.primary,
            request_id=response.headers["X-Request-Id"],
            fault=None,
            started=sim.calls[0].started,
            finished=sim.calls[0].finished,
        )
    ]


def test_call_log_records_the_presented_key_even_when_refused(sim, api, acct):
    """A refused call is still attributed to the key the caller claimed."""
    api.get(f"/accounts/{acct.primary}/secrets", auth=(acct.sub, "Wrong1Secret"))
    assert [(c.auth_key, c.status) for c in sim.calls] == [(acct.sub, 401)]


def test_calls_is_a_copy(sim, api, acct):
    """Mutating the returned list does not change the log."""
    api.get(f"/accounts/{acct.primary}/secrets")
    sim.calls.clear()
    assert len(sim.calls) == 1


def test_reset_calls_empties_the_log(sim, api, acct):
    """``reset_calls`` starts a fresh log."""
    api.get(f"/accounts/{acct.primary}/secrets")
    sim.reset_calls()
    assert sim.calls == []


# -- accounts and secrets -------------------------------------------------------------------------


def test_accounts_lists_the_primary_first(sim, acct):
    """``accounts()`` starts with the primary, then subaccounts in creation order."""
    sim.add_subaccount("sub00009", "Late9Secret", name="Late", suspended=True)
    assert sim.accounts() == [acct.primary, acct.sub, acct.sibling, "sub00009"]


def test_add_secret_returns_the_new_id(sim, acct):
    """``add_secret`` returns the id of the secret it created."""
    new_id = sim.add_secret(acct.sub, "Fresh5Secret")
    assert sim.secret_ids(acct.sub)[-1] == new_id


def test_add_secret_enforces_the_limit(sim, acct):
    """A third secret is a ValueError even without HTTP."""
    sim.add_secret(acct.sub, "Fresh5Secret")
    with pytest.raises(ValueError, match="maximum"):
        sim.add_secret(acct.sub, "Third3Secret")


def test_add_secret_enforces_validity_without_echoing_the_value(sim, acct):
    """An invalid secret is a ValueError whose message does not contain the value."""
    with pytest.raises(ValueError, match="upper case") as caught:
        sim.add_secret(acct.sub, "nouppercase1")
    assert "nouppercase1" not in str(caught.value)


def test_unknown_account_is_a_key_error(sim):
    """Introspecting an account that does not exist is a KeyError."""
    with pytest.raises(KeyError):
        sim.secrets("nosuchkey")


def test_duplicate_subaccount_is_rejected(sim, acct):
    """API keys are unique."""
    with pytest.raises(ValueError, match="already exists"):
        sim.add_subaccount(acct.sub, "Other1Secret")


def test_primary_cannot_be_suspended(sim, acct):
    """Only subaccounts can be suspended."""
    with pytest.raises(ValueError, match="primary"):
        sim.set_suspended(acct.primary, True)


def test_seed_subaccount_with_unknown_field_is_rejected():
    """Typos in subaccount seeds fail loudly."""
    with pytest.raises(ValueError, match="unknown fields"):
        VonageSimulator(subaccounts=[{"api_key": "sub1", "secret": "Sub1Secret01", "nmae": "x"}])


def test_seed_with_invalid_secret_is_rejected():
    """Seeded secrets follow the same rules as created ones."""
    with pytest.raises(ValueError, match="digit"):
        VonageSimulator(primary_secret="NoDigitsHere")


def test_concurrent_creates_respect_the_limit(sim, client_for, acct):
    """Racing creates on one account never exceed two secrets."""
    clients = [client_for(sim.api_url, acct.primary_auth) for _ in range(8)]

    def create(i: int) -> int:
        body = {"secret": f"Race{i}Secret"}
        return clients[i].post(f"/accounts/{acct.primary}/secrets", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert sorted(statuses) == [201] + [403] * 7
    assert len(sim.secrets(acct.primary)) == 2


# -- lifecycle ------------------------------------------------------------------------------------


def test_urls_have_no_trailing_slash(sim):
    """Both base URLs are plain loopback URLs without a trailing slash."""
    for url in (sim.api_url, sim.rest_url):
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith("/")
    assert sim.api_url != sim.rest_url


def test_explicit_ports_are_used(make_sim):
    """``api_port``/``rest_port`` choose the ports."""
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        ports = a.getsockname()[1], b.getsockname()[1]
    sim = make_sim(api_port=ports[0], rest_port=ports[1])
    assert sim.api_url.endswith(f":{ports[0]}")
    assert sim.rest_url.endswith(f":{ports[1]}")


def test_urls_need_a_running_simulator():
    """Asking for a URL before ``start()`` is an error, not a wrong port."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = VonageSimulator().api_url


def test_works_without_a_with_block(tls, acct):
    """``start()`` and ``stop()`` can be called directly."""
    sim = VonageSimulator(*acct.primary_auth).start()
    try:
        with httpx.Client(verify=tls) as client:
            response = client.get(f"{sim.rest_url}/account/get-balance", auth=acct.primary_auth)
        assert response.status_code == 200
    finally:
        sim.stop()


def test_stop_is_idempotent_and_final(sim):
    """Stopping twice is fine; restarting a stopped simulator is refused."""
    sim.stop()
    sim.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        sim.start()


def test_start_twice_is_refused(sim):
    """A running simulator cannot be started again."""
    with pytest.raises(RuntimeError, match="already running"):
        sim.start()


def test_stop_closes_the_listening_sockets(sim, client_for):
    """After ``stop()`` new connections are refused."""
    api_url = sim.api_url
    sim.stop()
    with pytest.raises(httpx.ConnectError):
        client_for(api_url).get("/accounts")


def test_stop_cuts_kept_alive_connections(sim, api, acct):
    """A connection kept alive before ``stop()`` is not served afterwards."""
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    sim.stop()
    with pytest.raises(httpx.TransportError):
        api.get(f"/accounts/{acct.primary}/secrets")


def test_sim_secret_is_a_frozen_value(sim, acct):
    """SimSecret records cannot be edited to fake state."""
    [secret] = sim.secrets(acct.primary)
    assert isinstance(secret, SimSecret)
    with pytest.raises(AttributeError):
        secret.value = "Other1Secret"  # type: ignore[misc]
