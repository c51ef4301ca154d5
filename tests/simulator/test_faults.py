"""Fault injection: each action acted out on a real socket, and which calls a fault hits."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from rotator.devtools.simulator import Fault


def _wait_until(predicate, timeout=5.0):
    """Synchronise with the server thread (not a timing assumption): poll until true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def _statuses(client, path, n):
    return [client.get(path).status_code for _ in range(n)]


# -- actions ------------------------------------------------------------------------------------


def test_status_fault_answers_with_a_problem_body(sim, api, acct):
    """A "status" fault answers that status with an RFC 7807 body and an X-Request-Id."""
    sim.inject(Fault(action="status", status=503))
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 503
    body = response.json()
    assert body["title"] == "Service Unavailable"
    assert body["instance"] == response.headers["X-Request-Id"]


def test_status_fault_can_add_retry_after(sim, api, acct):
    """``retry_after`` adds a Retry-After header, rounded up to whole seconds."""
    sim.inject(Fault(action="status", status=429, retry_after=2.5))
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["title"] == "Too Many Requests"


def test_status_fault_does_not_apply_the_request(sim, api, acct):
    """A faulted create is not applied."""
    sim.inject(Fault(action="status", status=500, method="POST"))
    api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    assert len(sim.secrets(acct.primary)) == 1


def test_timeout_fault_makes_the_client_time_out(sim, api, acct):
    """A "timeout" fault holds the connection without answering."""
    sim.inject(Fault(action="timeout", delay=10))
    with pytest.raises(httpx.ReadTimeout):
        api.get(f"/accounts/{acct.primary}/secrets", timeout=0.2)


def test_timeout_fault_closes_without_answering_after_delay(sim, api, acct):
    """When the delay is over, the connection is closed with no response."""
    sim.inject(Fault(action="timeout", delay=0.05))
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(f"/accounts/{acct.primary}/secrets")


def test_stop_is_prompt_while_a_timeout_holds_a_connection(make_sim, client_for, acct):
    """``stop()`` cuts a 30 s "timeout" fault short."""
    sim = make_sim()
    fault = sim.inject(Fault(action="timeout"))
    api = client_for(sim.api_url, acct.primary_auth, timeout=30)
    errors: list[Exception] = []

    def call() -> None:
        try:
            api.get(f"/accounts/{acct.primary}/secrets")
        except httpx.TransportError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    _wait_until(lambda: sim.fault_hits(fault) == 1)
    started = time.perf_counter()
    sim.stop()
    assert time.perf_counter() - started < 1.0
    caller.join(5)
    assert not caller.is_alive()
    assert len(errors) == 1


def test_reset_before_apply_is_a_transport_error(sim, api, acct):
    """ "reset_before_apply" resets the connection: the client sees a transport error."""
    sim.inject(Fault(action="reset_before_apply"))
    with pytest.raises(httpx.TransportError) as caught:
        api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    assert not isinstance(caught.value, httpx.TimeoutException)


def test_reset_before_apply_does_not_apply(sim, api, acct):
    """ "reset_before_apply" leaves the state untouched."""
    sim.inject(Fault(action="reset_before_apply"))
    with pytest.raises(httpx.TransportError):
        api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    assert len(sim.secrets(acct.primary)) == 1


def test_reset_is_a_tcp_rst(sim, api, acct):
    """The reset is abrupt (RST, "connection reset"), not an orderly close."""
    sim.inject(Fault(action="reset_before_apply"))
    with pytest.raises(httpx.ReadError) as caught:
        api.get(f"/accounts/{acct.primary}/secrets")
    assert "Connection reset" in str(caught.value)


def test_reset_after_apply_creates_the_secret(sim, api, acct):
    """ "reset_after_apply" creates the secret, yet the client only sees a transport error."""
    sim.inject(Fault(action="reset_after_apply", method="POST"))
    with pytest.raises(httpx.TransportError):
        api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    assert [s.value for s in sim.secrets(acct.primary)] == [acct.primary_secret, "Fresh5Secret"]


def test_reset_after_apply_deletes_the_secret(sim, api, acct):
    """ "reset_after_apply" on DELETE really revokes the secret."""
    new_id = sim.add_secret(acct.primary, "Fresh5Secret")
    sim.inject(Fault(action="reset_after_apply", method="DELETE"))
    with pytest.raises(httpx.TransportError):
        api.delete(f"/accounts/{acct.primary}/secrets/{new_id}")
    assert new_id not in sim.secret_ids(acct.primary)


def test_html_fault_is_an_html_error_page(sim, api, acct):
    """ "html" answers a text/html 502/503 page, as a proxy in front of Vonage would."""
    sim.inject(Fault(action="html", status=502))
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<html>" in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_malformed_json_fault_is_a_200_that_does_not_parse(sim, api, acct):
    """ "malformed_json" answers 200 application/json with a body that is not JSON."""
    sim.inject(Fault(action="malformed_json"))
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_huge_body_fault_is_megabytes_of_json(sim, api, acct):
    """ "huge_body" answers 200 with a multi-megabyte JSON body."""
    sim.inject(Fault(action="huge_body"))
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 200
    assert len(response.content) >= 4 * 1024 * 1024
    assert response.headers["Content-Type"] == "application/json"


def test_faulted_calls_are_in_the_call_log(sim, api, acct):
    """The call log names the fault; calls that got no answer have status None."""
    sim.inject(Fault(action="status", times=1))
    sim.inject(Fault(action="reset_before_apply", times=1))
    api.get(f"/accounts/{acct.primary}/secrets")
    with pytest.raises(httpx.TransportError):
        api.get(f"/accounts/{acct.primary}/secrets")
    api.get(f"/accounts/{acct.primary}/secrets")
    assert [(c.status, c.fault) for c in sim.calls] == [
        (503, "status"),
        (None, "reset_before_apply"),
        (200, None),
    ]


# -- which calls --------------------------------------------------------------------------------


def test_default_fault_hits_the_next_call_once(sim, api, acct):
    """By default a fault affects exactly one call: the next matching one."""
    sim.inject(Fault(action="status"))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 3) == [503, 200, 200]


def test_nth_skips_earlier_matching_calls(sim, api, acct):
    """``nth=2`` lets the first matching call through and hits the second."""
    sim.inject(Fault(action="status", nth=2))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 3) == [200, 503, 200]


def test_nth_counts_from_injection(sim, api, acct):
    """Calls made before the fault was injected do not count toward ``nth``."""
    api.get(f"/accounts/{acct.primary}/secrets")
    sim.inject(Fault(action="status", nth=1))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 2) == [503, 200]


def test_times_limits_how_many_calls_are_hit(sim, api, acct):
    """``times=2`` starting at ``nth=2`` hits the second and third calls."""
    sim.inject(Fault(action="status", nth=2, times=2))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 4) == [200, 503, 503, 200]


def test_times_none_hits_forever(sim, api, acct):
    """``times=None`` never wears out."""
    sim.inject(Fault(action="status", times=None))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 5) == [503] * 5


def test_method_filter(sim, api, acct):
    """A method-specific fault ignores other methods."""
    sim.inject(Fault(action="status", method="POST"))
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    assert response.status_code == 503


def test_path_glob_filter(sim, api, acct):
    """The path glob only matches the paths it describes."""
    sim.inject(Fault(action="status", path="/accounts/*/secrets/*"))
    secret_id = sim.secret_ids(acct.primary)[0]
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    assert api.get(f"/accounts/{acct.primary}/secrets/{secret_id}").status_code == 503


def test_host_filter(sim, api, rest, acct):
    """A rest-host fault leaves the api host alone."""
    sim.inject(Fault(action="status", host="rest"))
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    assert rest.get("/account/get-balance", auth=acct.primary_auth).status_code == 503


def test_first_injected_fault_wins(sim, api, acct):
    """When two faults match one call the earlier injection takes it; the other waits its turn."""
    sim.inject(Fault(action="status", status=500))
    sim.inject(Fault(action="status", status=502))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 3) == [500, 502, 200]


def test_nth_counts_calls_taken_by_other_faults(sim, api, acct):
    """``nth`` counts every matching call, so faults can be lined up call by call."""
    sim.inject(Fault(action="status", status=500, nth=1))
    sim.inject(Fault(action="status", status=502, nth=2))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 3) == [500, 502, 200]


def test_fault_hits_counts_affected_calls(sim, api, acct):
    """``fault_hits`` reports how many calls the fault affected."""
    fault = sim.inject(Fault(action="status", times=2))
    _statuses(api, f"/accounts/{acct.primary}/secrets", 4)
    assert sim.fault_hits(fault) == 2


def test_clear_faults_disarms_but_keeps_hits(sim, api, acct):
    """After ``clear_faults`` nothing is hit, and past hits stay readable."""
    fault = sim.inject(Fault(action="status", times=None))
    api.get(f"/accounts/{acct.primary}/secrets")
    sim.clear_faults()
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    assert sim.fault_hits(fault) == 1


def test_fault_hits_of_an_unknown_fault_is_an_error(sim):
    """Asking about a fault that was never injected is a KeyError, not a silent 0."""
    with pytest.raises(KeyError):
        sim.fault_hits(Fault(action="status"))


def test_probability_is_reproducible_with_a_seed(make_sim, client_for, acct):
    """Two simulators with the same seed fail the same calls."""
    patterns = []
    for _ in range(2):
        sim = make_sim(seed=1234)
        sim.inject(Fault(action="status", times=None, probability=0.5))
        api = client_for(sim.api_url, acct.primary_auth)
        patterns.append(_statuses(api, f"/accounts/{acct.primary}/secrets", 20))
    assert patterns[0] == patterns[1]
    assert 0 < patterns[0].count(503) < 20


def test_probability_zero_never_fires(sim, api, acct):
    """``probability=0`` never affects a call."""
    fault = sim.inject(Fault(action="status", times=None, probability=0.0))
    assert _statuses(api, f"/accounts/{acct.primary}/secrets", 5) == [200] * 5
    assert sim.fault_hits(fault) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"action": "explode"}, "unknown fault action"),
        ({"action": "status", "nth": 0}, "nth"),
        ({"action": "status", "times": 0}, "times"),
        ({"action": "status", "probability": 1.5}, "probability"),
        ({"action": "status", "status": 200}, "status"),
        ({"action": "status", "host": "www"}, "host"),
        ({"action": "status", "method": "FETCH"}, "method"),
        ({"action": "timeout", "delay": -1}, "delay"),
        ({"action": "status", "retry_after": -1}, "retry_after"),
    ],
)
def test_invalid_faults_are_rejected(kwargs, message):
    """Nonsense faults fail at construction, not silently at call time."""
    with pytest.raises(ValueError, match=message):
        Fault(**kwargs)


def test_fault_is_frozen_and_keyword_only():
    """Faults are immutable values built with keywords."""
    fault = Fault(action="status")
    with pytest.raises(AttributeError):
        fault.status = 500  # type: ignore[misc]
    with pytest.raises(TypeError):
        Fault("status")  # type: ignore[misc]
