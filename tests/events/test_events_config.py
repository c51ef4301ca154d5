"""The events section of the config: endpoints named safely, secrets read into ``Secret``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.config import parse_config
from rotator.errors import ConfigError
from rotator.events.deliverer import Endpoint, writer_for
from rotator.events.types import ALL_TYPES, EventType
from tests.events.conftest import WHSEC


def config(*endpoints: dict[str, Any]) -> Any:
    return parse_config(
        {"vonage": {"primary_api_key": "abcd1234"}, "events": {"endpoints": list(endpoints)}}
    )


def test_a_literal_url_with_credentials_or_a_query_is_refused() -> None:
    """Such a URL is a secret: it must come from url_env or url_file, never the file itself."""
    for url in ("https://u:p@hooks.example.com/x", "https://hooks.example.com/x?token=abc"):
        with pytest.raises(ConfigError, match="url_env or url_file") as raised:
            config({"url": url, "secret_env": "S"})
        assert "token=abc" not in str(raised.value)
        assert "u:p@" not in str(raised.value)


def test_an_endpoint_needs_exactly_one_url_and_one_secret_source() -> None:
    """Two URL sources, or none, or no secret, are configuration errors."""
    bad = [
        {"url": "https://a.example/x", "url_env": "U", "secret_env": "S"},
        {"secret_env": "S"},
        {"url": "https://a.example/x"},
    ]
    for endpoint in bad:
        with pytest.raises(ConfigError, match="exactly one"):
            config(endpoint)


def test_types_default_to_all_and_unknown_types_are_refused() -> None:
    """No types: every event; a misspelt type is an error, not a silent filter."""
    endpoint = config({"url": "https://a.example/x", "secret_env": "S"}).events.endpoints[0]
    assert endpoint.event_types == ALL_TYPES
    with pytest.raises(ConfigError, match="types"):
        config({"url": "https://a.example/x", "secret_env": "S", "types": ["secret.rotate"]})


def test_endpoints_are_resolved_from_environment_and_files_into_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """URL and secret come from where they are named; the secret is masked in every repr."""
    (tmp_path / "secret").write_text(WHSEC + "\n")
    monkeypatch.setenv("ROTATOR_TEST_HOOK", "https://u:p@hooks.example.com/x?token=abc")
    cfg = config({"url_env": "ROTATOR_TEST_HOOK", "secret_file": str(tmp_path / "secret"),
                  "types": ["secret.rotated"]})  # fmt: skip
    [endpoint] = Endpoint.from_config(cfg.events)
    assert (endpoint.label, endpoint.types) == ("$ROTATOR_TEST_HOOK", {EventType.SECRET_ROTATED})
    assert endpoint.secret.reveal() == WHSEC
    assert "token=abc" not in repr(endpoint)
    assert WHSEC not in repr(endpoint)


def test_a_missing_or_malformed_secret_names_the_endpoint_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Start-up fails naming the endpoint and variable; nothing secret is in the message."""
    cfg = config({"url": "https://a.example/x", "secret_env": "ROTATOR_TEST_NO_SUCH"})
    with pytest.raises(ConfigError, match=r"https://a\.example/x: secret_env"):
        Endpoint.from_config(cfg.events)
    monkeypatch.setenv("ROTATOR_TEST_NO_SUCH", "not-a-whsec-secret!")
    with pytest.raises(ConfigError, match="not a Standard Webhooks secret") as raised:
        Endpoint.from_config(cfg.events)
    assert "not-a-whsec-secret!" not in str(raised.value)


def test_without_endpoints_the_audit_log_gets_no_writer() -> None:
    """No events configured: nothing changes for the audit log."""
    assert writer_for(config()) is None


def test_delivered_rows_are_kept_for_ever_unless_a_keep_of_an_hour_or_more_is_given() -> None:
    """keep_delivered: none by default (the delivery log stays); a keep shorter than an hour
    is refused (it would drop rows a slow consumer's operator may still want to look at)."""
    base = {"vonage": {"primary_api_key": "abcd1234"}}
    assert parse_config(base).events.keep_delivered is None
    kept = parse_config({**base, "events": {"keep_delivered": "30d"}})
    assert kept.events.keep_delivered == timedelta(days=30)
    with pytest.raises(ConfigError, match="keep_delivered"):
        parse_config({**base, "events": {"keep_delivered": "5m"}})
