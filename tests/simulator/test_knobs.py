"""The knobs: propagation delay, rate limit, latency and the injectable clock."""

from __future__ import annotations

import time

import pytest

# -- propagation --------------------------------------------------------------------------------


def test_new_secret_is_refused_before_propagation(make_sim, client_for, clock, acct):
    """Until ``created + propagation_delay`` a new secret gets 401."""
    sim = make_sim(propagation_delay=10)
    api = client_for(sim.api_url, acct.primary_auth)
    assert (
        api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"}).status_code
        == 201
    )
    clock.advance(9.99)
    response = api.get(f"/accounts/{acct.primary}/secrets", auth=(acct.primary, "Fresh5Secret"))
    assert response.status_code == 401


def test_new_secret_authenticates_once_propagated(make_sim, client_for, clock, acct):
    """From ``created + propagation_delay`` on, the new secret works."""
    sim = make_sim(propagation_delay=10)
    api = client_for(sim.api_url, acct.primary_auth)
    api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    clock.advance(10)
    response = api.get(f"/accounts/{acct.primary}/secrets", auth=(acct.primary, "Fresh5Secret"))
    assert response.status_code == 200


def test_seeded_secrets_are_already_propagated(make_sim, client_for, acct):
    """Secrets that exist when the simulator starts authenticate immediately."""
    sim = make_sim(propagation_delay=60)
    api = client_for(sim.api_url)
    assert api.get(f"/accounts/{acct.sub}/secrets", auth=acct.sub_auth).status_code == 200


def test_propagated_at_is_creation_plus_delay(make_sim, clock, acct):
    """SimSecret.propagated_at is the clock reading at creation plus the delay."""
    sim = make_sim(propagation_delay=7)
    sim.add_secret(acct.primary, "Fresh5Secret")
    assert sim.secrets(acct.primary)[-1].propagated_at == clock() + 7


def test_authenticates_follows_propagation(make_sim, clock, acct):
    """The introspection helper applies the same propagation rule as the server."""
    sim = make_sim(propagation_delay=3)
    sim.add_secret(acct.primary, "Fresh5Secret")
    assert not sim.authenticates(acct.primary, "Fresh5Secret")
    clock.advance(3)
    assert sim.authenticates(acct.primary, "Fresh5Secret")


def test_add_secret_can_skip_propagation(make_sim, acct):
    """``add_secret(..., propagated=True)`` makes a secret usable at once."""
    sim = make_sim(propagation_delay=30)
    sim.add_secret(acct.primary, "Fresh5Secret", propagated=True)
    assert sim.authenticates(acct.primary, "Fresh5Secret")


def test_changing_the_delay_affects_only_later_secrets(sim, clock, acct):
    """The delay is fixed when a secret is created."""
    sim.add_secret(acct.primary, "Early5Secret")
    sim.propagation_delay = 100
    sim.add_secret(acct.sub, "Later5Secret")
    assert sim.authenticates(acct.primary, "Early5Secret")
    assert not sim.authenticates(acct.sub, "Later5Secret")


def test_negative_delay_is_rejected(sim):
    """A negative propagation delay makes no sense."""
    with pytest.raises(ValueError, match="propagation_delay"):
        sim.propagation_delay = -1


# -- rate limit ---------------------------------------------------------------------------------


def test_requests_over_the_limit_get_429(make_sim, client_for, acct):
    """With a frozen clock, the (limit + 1)th request is refused with 429."""
    sim = make_sim(rate_limit=2)
    api = client_for(sim.api_url, acct.primary_auth)
    statuses = [api.get(f"/accounts/{acct.primary}/secrets").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_429_has_retry_after_and_a_problem_body(make_sim, client_for, acct):
    """The 429 carries an integer Retry-After >= 1 and an RFC 7807 body."""
    sim = make_sim(rate_limit=1)
    api = client_for(sim.api_url, acct.primary_auth)
    api.get(f"/accounts/{acct.primary}/secrets")
    response = api.get(f"/accounts/{acct.primary}/secrets")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert {"type", "title", "detail", "instance"} <= set(body)
    assert body["title"] == "Too Many Requests"


def test_retry_after_reflects_a_slow_rate(make_sim, client_for, acct):
    """At half a request per second the next token is two seconds away."""
    sim = make_sim(rate_limit=0.5)
    api = client_for(sim.api_url, acct.primary_auth)
    api.get(f"/accounts/{acct.primary}/secrets")
    assert api.get(f"/accounts/{acct.primary}/secrets").headers["Retry-After"] == "2"


def test_limit_refills_as_the_clock_advances(make_sim, client_for, clock, acct):
    """After Retry-After seconds of clock time, requests are accepted again."""
    sim = make_sim(rate_limit=1)
    api = client_for(sim.api_url, acct.primary_auth)
    api.get(f"/accounts/{acct.primary}/secrets")
    retry_after = int(api.get(f"/accounts/{acct.primary}/secrets").headers["Retry-After"])
    clock.advance(retry_after)
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200


def test_limit_is_shared_by_both_hosts(make_sim, client_for, acct):
    """The rate limit counts api and rest calls together."""
    sim = make_sim(rate_limit=1)
    api = client_for(sim.api_url, acct.primary_auth)
    rest = client_for(sim.rest_url, acct.primary_auth)
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200
    assert rest.get("/account/get-balance").status_code == 429


def test_throttled_requests_are_not_applied(make_sim, client_for, acct):
    """A 429'd create does not create anything."""
    sim = make_sim(rate_limit=1)
    api = client_for(sim.api_url, acct.primary_auth)
    api.get(f"/accounts/{acct.primary}/secrets")
    response = api.post(f"/accounts/{acct.primary}/secrets", json={"secret": "Fresh5Secret"})
    assert response.status_code == 429
    assert len(sim.secrets(acct.primary)) == 1


def test_429s_are_in_the_call_log(make_sim, client_for, acct):
    """Throttled calls are recorded with status 429."""
    sim = make_sim(rate_limit=1)
    api = client_for(sim.api_url, acct.primary_auth)
    for _ in range(3):
        api.get(f"/accounts/{acct.primary}/secrets")
    assert [call.status for call in sim.calls] == [200, 429, 429]


def test_rate_limit_can_be_enabled_and_lifted_at_runtime(sim, api, acct):
    """Setting ``rate_limit`` on a running simulator takes effect on the next request."""
    sim.rate_limit = 1
    api.get(f"/accounts/{acct.primary}/secrets")
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 429
    sim.rate_limit = None
    assert api.get(f"/accounts/{acct.primary}/secrets").status_code == 200


@pytest.mark.parametrize("rate", [0, -1])
def test_non_positive_rate_limit_is_rejected(sim, rate):
    """A rate limit must be positive (use None for unlimited)."""
    with pytest.raises(ValueError, match="rate_limit"):
        sim.rate_limit = rate


# -- latency ------------------------------------------------------------------------------------


def test_latency_delays_every_response(make_sim, client_for, acct):
    """Each response takes at least the configured latency."""
    sim = make_sim(latency=0.15)
    rest = client_for(sim.rest_url, acct.primary_auth)
    started = time.perf_counter()
    assert rest.get("/account/get-balance").status_code == 200
    assert time.perf_counter() - started >= 0.15


def test_latency_can_change_at_runtime(sim, api, acct):
    """Setting ``latency`` on a running simulator slows the next response."""
    sim.latency = 0.1
    started = time.perf_counter()
    api.get(f"/accounts/{acct.primary}/secrets")
    assert time.perf_counter() - started >= 0.1


def test_negative_latency_is_rejected(sim):
    """Latency cannot be negative."""
    with pytest.raises(ValueError, match="latency"):
        sim.latency = -0.1


# -- clock ----------------------------------------------------------------------------------------


def test_call_log_times_come_from_the_clock(sim, api, clock, acct):
    """``started``/``finished`` are readings of the injected clock."""
    api.get(f"/accounts/{acct.primary}/secrets")
    [call] = sim.calls
    assert call.started == call.finished == clock()


def test_clock_can_be_replaced_at_runtime(sim, acct):
    """Swapping the clock moves propagation onto the new time source."""
    sim.propagation_delay = 5
    sim.add_secret(acct.primary, "Fresh5Secret")
    sim.clock = lambda: 10_000.0
    assert sim.authenticates(acct.primary, "Fresh5Secret")
