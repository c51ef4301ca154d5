"""Config loading: every field is validated with an error naming it, unknown keys are refused, and
no field can hold a secret value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rotator.config import (
    CONFIG_ENV,
    AppRoleAuth,
    Config,
    KubernetesAuth,
    TokenAuth,
    load_config,
    parse_config,
)
from rotator.durations import format_duration, parse_duration
from rotator.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
MINIMAL: dict[str, Any] = {"vonage": {"primary_api_key": "abcd1234"}}


def with_(section: str, **values: Any) -> dict[str, Any]:
    """The minimal config plus ``values`` in ``section`` (dotted for nesting)."""
    data: dict[str, Any] = {"vonage": {"primary_api_key": "abcd1234"}}
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node.update(values)
    return data


def error_of(data: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "config.yaml")
    return str(caught.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# -- what loads --------------------------------------------------------------------------------


def test_minimal_config_gets_safe_defaults() -> None:
    """Only the primary key is required; the rest defaults as documented."""
    config = parse_config(MINIMAL)
    assert config.vonage.api_url == "https://api.nexmo.com"
    assert config.vonage.rest_url == "https://rest.nexmo.com"
    assert config.vault.mount == "secret"
    assert config.vault.path_prefix == "vonage"
    assert config.database.url == "sqlite:///rotator.db"
    assert config.rotation.secret_length == 25
    assert config.rotation.verify_timeout == timedelta(seconds=60)
    assert config.rotation.grace_period == timedelta(hours=2)
    assert config.rotation.on_unidentified == "error"
    assert isinstance(config.vault.auth, TokenAuth)


def test_the_shipped_example_config_is_valid() -> None:
    """config.example.yaml, which the README points at, loads without change."""
    config = load_config(REPO / "config.example.yaml")
    assert isinstance(config, Config)


def test_issue_example_config_loads(tmp_path: Path) -> None:
    """The config shown in the design issue loads as written."""
    path = write(
        tmp_path,
        """
vonage:
  primary_api_key: abcd1234
  api_url: https://api.nexmo.com
  rest_url: https://rest.nexmo.com
vault:
  url: http://127.0.0.1:8200
  auth: {method: token, token_env: VAULT_TOKEN}
  mount: secret
  path_prefix: vonage
database:
  url: sqlite:///rotator.db
rotation:
  secret_length: 25
  verify_timeout: 60s
  grace_period: 0s
""",
    )
    config = load_config(path)
    assert config.rotation.verify_timeout == timedelta(seconds=60)


def test_urls_lose_a_trailing_slash() -> None:
    """api_url and rest_url are joined with paths, so a trailing slash is dropped."""
    config = parse_config(with_("vonage", api_url="http://localhost:8080/"))
    assert config.vonage.api_url == "http://localhost:8080"


def test_approle_and_kubernetes_auth_are_accepted() -> None:
    """Vault auth is a tagged union chosen by ``method``."""
    approle = parse_config(with_("vault.auth", method="approle", role_id="r"))
    assert isinstance(approle.vault.auth, AppRoleAuth)
    kube = parse_config(with_("vault.auth", method="kubernetes", role="rotator"))
    assert isinstance(kube.vault.auth, KubernetesAuth)


def test_config_path_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --config, $ROTATOR_CONFIG names the file."""
    path = write(tmp_path, "vonage: {primary_api_key: fromenv}\n")
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_config().vonage.primary_api_key == "fromenv"


def test_overrides_are_found_by_api_key() -> None:
    """Per-account overrides apply to their key only."""
    config = parse_config(with_("accounts", overrides=[{"api_key": "sub1", "grace_period": "1h"}]))
    override = config.override_for("sub1")
    assert override is not None
    assert override.grace_period == timedelta(hours=1)
    assert config.override_for("sub2") is None


def test_per_key_settings_come_from_the_keys_override() -> None:
    """A key's override sets its schedule, grace period and secret length."""
    override = {"api_key": "sub1", "grace_period": "1h", "secret_length": 20}
    override["schedule"] = {"interval": "7d"}
    config = parse_config(with_("accounts", overrides=[override]))
    assert config.grace_period_for("sub1") == timedelta(hours=1)
    assert config.secret_length_for("sub1") == 20
    assert config.schedule_for("sub1").interval == timedelta(days=7)


def test_per_key_settings_default_to_the_rotation_section() -> None:
    """A key without an override gets the rotation section's values."""
    config = parse_config(with_("rotation", grace_period="2h", secret_length=24))
    assert config.grace_period_for("sub1") == timedelta(hours=2)
    assert config.secret_length_for("sub1") == 24
    assert config.schedule_for("sub1") == config.rotation.schedule


# -- every field validated, the error naming it -------------------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "vonage: Field required"),
        (with_("vonage", primary_api_key=""), "vonage.primary_api_key"),
        (with_("vonage", primary_api_key="has space"), "vonage.primary_api_key"),
        (with_("vonage", api_url="ftp://x"), "vonage.api_url: Value error, must start with http"),
        (with_("vonage", rest_url="rest.nexmo.com"), "vonage.rest_url"),
        (with_("vonage", timeout="soon"), "vonage.timeout"),
        (with_("vonage", max_calls_per_second=0), "vonage.max_calls_per_second"),
        (with_("vonage", max_retries=21), "vonage.max_retries"),
        (with_("vonage", verify_tls="maybe"), "vonage.verify_tls"),
        (with_("vault", url=5), "vault.url"),
        (with_("vault.auth", method="password"), "vault.auth"),
        (with_("vault.auth", method="approle"), "vault.auth.approle.role_id"),
        (with_("vault", mount="/"), "vault.mount"),
        (with_("vault", path_prefix="a/../b"), "vault.path_prefix"),
        (with_("vault", path_prefix="x", state_prefix="x"), "path_prefix and state_prefix"),
        (with_("vault", timeout="-1"), "vault.timeout"),
        (with_("database", url="mysql://db"), "database.url"),
        (with_("rotation", secret_length=7), "rotation.secret_length"),
        (with_("rotation", secret_length=26), "rotation.secret_length"),
        (with_("rotation", verify_timeout="1 fortnight"), "rotation.verify_timeout"),
        (with_("rotation", grace_period=True), "rotation.grace_period"),
        (with_("rotation", on_unidentified="guess"), "rotation.on_unidentified"),
        (with_("rotation", lease_ttl="x"), "rotation.lease_ttl"),
        (with_("rotation", lock_wait="x"), "rotation.lock_wait"),
        (with_("rotation.schedule", interval="1d", cron="0 3 * * *"), "rotation.schedule"),
        (with_("rotation.schedule", cron="every tuesday"), "invalid cron expression"),
        (with_("rotation.schedule", interval="0s"), "interval must be positive"),
        (with_("accounts", include="*"), "accounts.include"),
        (with_("accounts", overrides=[{"grace_period": "1h"}]), "accounts.overrides.0.api_key"),
        (with_("accounts", overrides=[{"api_key": "s", "secret_length": 5}]),
         "accounts.overrides.0.secret_length"),
        (with_("http", listen="localhost"), "http.listen"),
        (with_("http", listen="127.0.0.1:99999"), "http.listen"),
        (with_("notify", dedup_window="x"), "notify.dedup_window"),
        (with_("notify.sms", to="+447700900000"), "notify.sms.to"),
        (with_("logging", level="verbose"), "logging.level"),
        (with_("logging", format="xml"), "logging.format"),
    ],
)  # fmt: skip
def test_invalid_field_is_named_in_the_error(data: dict[str, Any], field: str) -> None:
    """A wrong value is refused with a message naming the field (and the file)."""
    message = error_of(data)
    assert message.startswith("config.yaml is invalid:")
    assert field in message


def test_all_problems_are_reported_at_once() -> None:
    """Several wrong fields give one error listing each, so one edit fixes them all."""
    data = with_("rotation", secret_length=3, verify_timeout="x")
    data["logging"] = {"level": "loud"}
    message = error_of(data)
    for field in ("rotation.secret_length", "rotation.verify_timeout", "logging.level"):
        assert field in message


def test_top_level_must_be_a_mapping() -> None:
    """A YAML list or scalar is not a config."""
    assert "expected a mapping at the top level" in error_of(["vonage"])


# -- unknown keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({**MINIMAL, "vonnage": {}}, "vonnage: unknown key"),
        (with_("vonage", apiurl="http://x"), "vonage.apiurl: unknown key"),
        (with_("rotation", grace="1h"), "rotation.grace: unknown key"),
        (with_("vault.auth", method="token", tokenenv="X"), "vault.auth.token.tokenenv"),
        (with_("accounts", overrides=[{"api_key": "s", "graceperiod": "1h"}]),
         "accounts.overrides.0.graceperiod: unknown key"),
    ],
)  # fmt: skip
def test_unknown_keys_are_refused(data: dict[str, Any], where: str) -> None:
    """A misspelt key is an error, so a typo cannot silently disable a setting."""
    assert where in error_of(data)


@pytest.mark.parametrize(
    "data",
    [
        with_("vault", token="s.SuperSecretToken1"),
        with_("vault.auth", method="token", token="s.SuperSecretToken1"),
        with_("vault.auth", method="approle", role_id="r", secret_id="s.SuperSecretToken1"),
        with_("vonage", api_secret="s.SuperSecretToken1"),
        with_("notify", webhook_secret="s.SuperSecretToken1"),
    ],
    ids=["vault.token", "vault.auth.token", "approle.secret_id", "vonage.api_secret", "webhook"],
)
def test_no_field_can_hold_a_secret_value(data: dict[str, Any]) -> None:
    """Secrets come from the environment or a file: a value in the config is refused, unechoed."""
    message = error_of(data)
    assert "unknown key" in message
    assert "SuperSecretToken1" not in message


# -- YAML and the file -------------------------------------------------------------------------


def test_bad_yaml_reports_line_and_column(tmp_path: Path) -> None:
    """Broken YAML is reported with where it broke, not a traceback."""
    path = write(tmp_path, "vonage:\n  primary_api_key: abcd1234\nrotation: [unclosed\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line 4, column 1"):
        load_config(path)


def test_bad_yaml_error_does_not_quote_the_file(tmp_path: Path) -> None:
    """The YAML error names a position only: the file's text (maybe a secret) is not echoed."""
    path = write(tmp_path, "vonage: {primary_api_key: abcd1234\n  note: TopSecret9Value\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "TopSecret9Value" not in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A config path that does not exist says so."""
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_no_config_at_all_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither --config nor $ROTATOR_CONFIG: the error names both."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"pass --config or set {CONFIG_ENV}"):
        load_config(None)


def test_empty_file_is_not_a_config(tmp_path: Path) -> None:
    """An empty YAML document is refused as not a mapping."""
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, ""))


# -- tokens from the environment or a file -----------------------------------------------------


def test_missing_token_env_var_names_the_field_and_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token variable that is unset is a config error naming both."""
    monkeypatch.delenv("ROTATOR_NO_SUCH_TOKEN", raising=False)
    auth = TokenAuth(token_env="ROTATOR_NO_SUCH_TOKEN")
    with pytest.raises(
        ConfigError, match=r"vault.auth.token_env: environment variable ROTATOR_NO_SUCH_TOKEN"
    ):
        auth.token()


def test_token_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is the named variable's value, wrapped so it cannot be printed."""
    monkeypatch.setenv("ROTATOR_T_TOKEN", "s.EnvToken123")
    token = TokenAuth(token_env="ROTATOR_T_TOKEN").token()
    assert token.reveal() == "s.EnvToken123"
    assert "EnvToken123" not in repr(token)


def test_token_file_is_read_and_stripped(tmp_path: Path) -> None:
    """A token file (e.g. a mounted secret) is read, whitespace trimmed."""
    path = tmp_path / "token"
    path.write_text("s.FileToken123\n")
    assert TokenAuth(token_file=path).token().reveal() == "s.FileToken123"


def test_unreadable_or_empty_token_file_names_the_field(tmp_path: Path) -> None:
    """A missing or empty token file is a config error naming vault.auth.token_file."""
    with pytest.raises(ConfigError, match=r"vault.auth.token_file: cannot read"):
        TokenAuth(token_file=tmp_path / "nope").token()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match=r"vault.auth.token_file: .* is empty"):
        TokenAuth(token_file=empty).token()


def test_approle_secret_id_missing_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppRole's secret-id comes from its own variable; unset, the error says which."""
    monkeypatch.delenv("ROTATOR_NO_SECRET_ID", raising=False)
    auth = AppRoleAuth(method="approle", role_id="r", secret_id_env="ROTATOR_NO_SECRET_ID")
    with pytest.raises(ConfigError, match=r"vault.auth.secret_id_env"):
        auth.secret_id()


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1h30m", 5400), ("30d", 2592000), ("2w", 1209600), ("250ms", 0.25),
     ("90", 90), (45, 45), ("1.5h", 5400), (" 10 s ", 10)],
)  # fmt: skip
def test_durations_parse(text: object, seconds: float) -> None:
    """Durations accept seconds or unit strings, combined."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["", "soon", "10x", "1h 30", "-5", -5, True, "h1", None, 8.64e13, float("nan"), "99999999999w"],
)
def test_bad_durations_are_refused(text: object) -> None:
    """Anything else is refused with a hint of the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_durations_format_shortly() -> None:
    """Durations print as their two largest units."""
    assert format_duration(timedelta(days=2, hours=3, minutes=4)) == "2d3h"
    assert format_duration(timedelta(seconds=45)) == "45s"
    assert format_duration(timedelta(0)) == "0s"


@pytest.mark.parametrize("path", ["../sys", "a/../../b", "/", ""])
def test_control_vault_path_cannot_climb_or_be_empty(path: str) -> None:
    """An http.control.vault_path that climbs out of its subtree, or names none, is refused."""
    assert "http.control.vault_path" in error_of(with_("http.control", vault_path=path))


def test_vault_paths_drop_their_slashes() -> None:
    """Vault paths of every section lose leading and trailing '/' the same way."""
    data = with_("vault", mount="/kv/", state_prefix="/state/")
    data["http"] = {"control": {"vault_path": "/ctl/"}}
    config = parse_config(data)
    assert (config.vault.mount, config.vault.state_prefix) == ("kv", "state")
    assert config.http.control.vault_path == "ctl"
