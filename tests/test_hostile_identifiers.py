"""Identifiers parsed once at the boundary: API keys and secret ids from the config, the command
line, the database and Vonage, against hostile values."""

from __future__ import annotations

from typing import Any

import pytest

from rotator.config import parse_config
from rotator.errors import ConfigError, InvalidIdentifierError
from rotator.identifiers import parse_api_key, parse_secret_id, path_segment
from rotator.redact import safe_url

HOSTILE = ["zz/../subnew01", "..", "sub%2e%2e", "sub\x1b[31m01", "sub 01", "a:b", "x" * 65, ""]


@pytest.mark.parametrize("key", ["abcd1234", "bbe6222f", "test_api_key", "sub-0001"])
def test_real_and_sdk_api_keys_parse(key: str) -> None:
    """Keys shaped as Vonage and its SDK fixtures show them are accepted unchanged."""
    assert parse_api_key(key) == key


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_api_keys_are_refused_as_bad_input(key: str) -> None:
    """Slashes, dots, escapes, spaces, colons and huge keys raise InvalidIdentifierError."""
    with pytest.raises(InvalidIdentifierError) as caught:
        parse_api_key(key, source="argument API_KEY")
    assert isinstance(caught.value, ConfigError)
    assert "\x1b" not in str(caught.value)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "secret_id",
    ["ad6dc56f-07b5-46e1-a527-85530e625800", "1b1b1b1b-1b1b-1b-1b1b-1b1b1b1b1b1b"],
)
def test_uuid_shaped_secret_ids_parse(secret_id: str) -> None:
    """A UUID, and the looser hex-group shape an SDK fixture records, are secret ids."""
    assert parse_secret_id(secret_id) == secret_id


@pytest.mark.parametrize("secret_id", ["../../sub00001/secrets/x", "ad6dc56f/..", "%2e", "g-1"])
def test_non_uuid_secret_ids_are_refused(secret_id: str) -> None:
    """Anything but hex groups joined by '-' is refused."""
    with pytest.raises(InvalidIdentifierError, match="not a valid Vonage secret id"):
        parse_secret_id(secret_id)


def test_a_path_segment_cannot_climb() -> None:
    """Encoding a segment turns '/' and '.' sequences into one inert segment."""
    assert "/" not in path_segment("../../sub00001")


def config(**vonage: Any) -> dict[str, Any]:
    return {"vonage": {"primary_api_key": "abcd1234", **vonage}}


@pytest.mark.parametrize("key", ["abcd1234\n", "zz/../subnew01", "sub\x0001"])
def test_the_config_refuses_a_hostile_primary_key(key: str) -> None:
    """vonage.primary_api_key goes through parse_api_key."""
    with pytest.raises(ConfigError, match=r"vonage\.primary_api_key"):
        parse_config(config(primary_api_key=key))


def test_the_config_refuses_a_hostile_override_key() -> None:
    """accounts.overrides[].api_key goes through parse_api_key too."""
    data = {**config(), "accounts": {"overrides": [{"api_key": "zz/../subnew01"}]}}
    with pytest.raises(ConfigError, match=r"accounts\.overrides\.0\.api_key"):
        parse_config(data)


def test_max_retry_after_defaults_to_five_minutes_and_must_be_positive() -> None:
    """vonage.max_retry_after is 5 minutes unless set, and 0 is refused."""
    assert parse_config(config()).vonage.max_retry_after.total_seconds() == 300
    with pytest.raises(ConfigError, match="max_retry_after"):
        parse_config(config(max_retry_after="0s"))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:hunter2@hooks.example.com/x?token=abc#f", "https://hooks.example.com/x"),
        ("http://[::1]:8080/p?q=1", "http://[::1]:8080/p"),
        ("http://[bad", "<unparseable URL>"),
    ],
)
def test_safe_url_drops_credentials_and_query(url: str, shown: str) -> None:
    """safe_url keeps scheme, host, port and path: no userinfo, query or fragment."""
    assert safe_url(url) == shown
