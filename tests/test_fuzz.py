"""Bad input never crashes rotator: fuzzed config files and command lines end in a clear
ConfigError / usage error, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rotator.cli import app
from rotator.config import Config, load_config, parse_config
from rotator.errors import ConfigError

SECTIONS = ["vonage", "vault", "database", "rotation", "accounts", "http", "notify", "logging"]
FIELDS = ["primary_api_key", "api_url", "url", "auth", "method", "token_env", "mount",
          "path_prefix", "secret_length", "verify_timeout", "grace_period", "schedule",
          "interval", "cron", "jitter", "listen", "include", "overrides", "api_key", "level",
          "format", "max_calls_per_second", "timeout", "sms", "to", "from"]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["30d", "1h30m", "0s", "-5s", "* * * * *", "0 3 * * 1", "http://x", "9x"]),
)
keys = st.one_of(st.sampled_from(SECTIONS + FIELDS), st.text(max_size=12))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
near_valid = st.fixed_dictionaries(
    {"vonage": st.fixed_dictionaries({"primary_api_key": st.just("abcd1234")})},
    optional={section: documents for section in SECTIONS[1:]},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(documents, near_valid))
def test_any_config_document_is_accepted_or_refused_clearly(data: Any) -> None:
    """Whatever the document, parse_config returns a Config or raises ConfigError."""
    try:
        outcome: object = parse_config(data, "fuzz.yaml")
    except ConfigError as exc:
        outcome = str(exc)
    assert isinstance(outcome, Config) or str(outcome).startswith("fuzz.yaml")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.text(max_size=200), documents.map(yaml.safe_dump)))
def test_any_config_file_text_is_accepted_or_refused_clearly(tmp_path: Path, text: str) -> None:
    """Arbitrary bytes in the config file give a ConfigError naming the file, never a crash."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    try:
        outcome: object = load_config(path)
    except ConfigError as exc:
        outcome = str(exc)
    assert isinstance(outcome, Config) or str(path) in str(outcome)


SAFE_COMMANDS = [["rotate"], ["plan"], ["status"], ["audit"], ["audit", "show"],
                 ["audit", "verify"], ["adopt"], ["check"], ["db", "upgrade"]]  # fmt: skip
tokens = st.one_of(
    st.text(max_size=15),
    st.sampled_from(["--json", "--all", "--emergency", "--reason", "--dry-run", "--wait", "-1",
                     "--since", "7d", "--format", "csv", "--secret-id", "--outcome", "nope",
                     "--config", "/nonexistent.yaml", "--limit", "x", "--", "abcd1234"]),
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(command=st.sampled_from(SAFE_COMMANDS), args=st.lists(tokens, max_size=6))
def test_any_command_line_ends_in_a_clean_exit(command: list[str], args: list[str]) -> None:
    """Random arguments end with a usage or configuration error code, not a traceback."""
    result = CliRunner().invoke(
        app, ["--config", "/nonexistent/rotator.yaml", *command, *args], catch_exceptions=True
    )
    assert result.exit_code in {0, 1, 2}, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
