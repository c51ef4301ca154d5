"""The control API's pure rules: routes, request bodies and per-caller limits."""

from __future__ import annotations

import pytest

from rotator.control.bodies import BodyError, parse_body
from rotator.control.limits import WINDOW, CallerLimits
from rotator.control.routes import RouteError, match


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "path", ["/v1/keys/..%2f..%2fsys/rotate", "/v1/keys/%2e%2e/rotate", "/v1/keys/a%0ab/rotate"]
)
def test_hostile_keys_are_refused_400(path: str) -> None:
    """A key that decodes to anything but the API key pattern is a 400."""
    with pytest.raises(RouteError) as caught:
        match("POST", path)
    assert caught.value.status == 400


def test_an_encoded_slash_cannot_add_a_segment() -> None:
    """``%2f`` stays inside its segment: the route keeps its three parts."""
    with pytest.raises(RouteError) as caught:
        match("POST", "/v1/keys/abc%2frotate/pause")
    assert caught.value.status == 400


def test_wrong_method_is_405_with_allow() -> None:
    """GET on a write route is 405 and names the method to use."""
    with pytest.raises(RouteError) as caught:
        match("GET", "/v1/keys/abcd1234/rotate")
    assert (caught.value.status, caught.value.allow) == (405, "POST")


def test_capability_path_names_key_and_action() -> None:
    """Vault is asked about <vault_path>/<api_key>/<action>."""
    route = match("POST", "/v1/keys/abcd1234/pause")
    assert route.capability_path("rotator-control") == "rotator-control/abcd1234/pause"


def test_unknown_field_is_refused() -> None:
    """A misspelt field is an error, not a plain rotation."""
    with pytest.raises(BodyError):
        parse_body("rotate", b'{"emergancy": true}')


def test_emergency_must_be_a_boolean() -> None:
    """``"emergency": "yes"`` is refused (no truthiness games)."""
    with pytest.raises(BodyError):
        parse_body("rotate", b'{"emergency": "yes"}')


def test_reason_with_control_characters_is_refused() -> None:
    """A reason that could forge log lines is refused."""
    with pytest.raises(BodyError):
        parse_body("rotate", b'{"reason": "ok\\n2026 rotation succeeded"}')


def test_pause_needs_a_reason() -> None:
    """A pause without a reason is refused (it goes in the audit log)."""
    with pytest.raises(BodyError):
        parse_body("pause", b'{"until": "2h"}')


def test_limit_refuses_over_budget_and_says_when() -> None:
    """The request over budget is refused with the seconds until the window frees a slot."""
    clock = Clock()
    limits = CallerLimits(2, clock=clock)
    assert [limits.take("a"), limits.take("a")] == [None, None]
    clock.now += 10
    assert limits.take("a") == int(WINDOW) - 10
    assert limits.take("b") is None


def test_limit_frees_slots_as_the_window_slides() -> None:
    """A minute after its requests a caller may call again."""
    clock = Clock()
    limits = CallerLimits(1, clock=clock)
    limits.take("a")
    clock.now += WINDOW
    assert limits.take("a") is None
