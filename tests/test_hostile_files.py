"""What `rotator check` warns about in the config and on disk, and the SQLite file's mode."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from rotator import db
from rotator.checks import security_warnings
from rotator.config import parse_config


def config(**sections: Any) -> Any:
    return parse_config({"vonage": {"primary_api_key": "abcd1234"}, **sections})


def warned(results: list[Any]) -> list[str]:
    return [f"{r.area}: {r.message}" for r in results if r.warning]


def test_a_readable_token_file_is_warned_about(tmp_path: Path) -> None:
    """vault.auth.token_file readable by others is named with the mode to fix."""
    token = tmp_path / "token"
    token.write_text("not-a-real-token")
    token.chmod(0o640)
    found = warned(
        security_warnings(config(vault={"auth": {"method": "token", "token_file": str(token)}}))
    )
    assert found == [f"vault: vault.auth.token_file {token} is readable by group or others "
                     "(0640): chmod 600"]  # fmt: skip


def test_a_private_config_file_is_not_warned_about(tmp_path: Path) -> None:
    """A 0600 config file and loopback http:// URLs give no warning at all."""
    path = tmp_path / "config.yaml"
    path.write_text("x")
    path.chmod(0o600)
    assert warned(security_warnings(config(), path)) == []


def test_a_password_in_the_database_url_is_warned_about_without_showing_it() -> None:
    """database.url with a password warns, pointing at $PGPASSWORD, and never echoes it."""
    found = warned(security_warnings(config(database={"url": "postgresql://u:hunter2@db/x"})))
    assert len(found) == 1
    assert "$PGPASSWORD" in found[0]
    assert "hunter2" not in found[0]


def test_credentials_in_the_webhook_url_are_warned_about_without_showing_them() -> None:
    """notify.webhook_url with user:pass@ and a query warns and shows neither."""
    url = "https://bot:hunter2@hooks.example.com/h?token=t0ps3cret"
    found = warned(security_warnings(config(notify={"webhook_url": url})))
    assert found == [
        "notify: notify.webhook_url (https://hooks.example.com/h) holds credentials "
        "(user:pass@): they end up in logs"
    ]


@pytest.mark.parametrize(
    ("section", "field"),
    [("vault", "url"), ("vonage", "api_url"), ("vonage", "rest_url")],
)
def test_plain_http_to_a_remote_host_is_warned_about(section: str, field: str) -> None:
    """http:// to a non-loopback Vault or Vonage is named; https:// would fix it."""
    data: dict[str, Any] = {"vonage": {"primary_api_key": "abcd1234"}}
    data.setdefault(section, {})[field] = "http://vault.example.com:8200"
    found = warned(security_warnings(parse_config(data)))
    assert found == [
        f"{section}: {section}.{field} http://vault.example.com:8200 is plain http:// to a remote "
        "host: use https://"
    ]


def test_a_new_sqlite_database_is_created_private(tmp_path: Path) -> None:
    """The SQLite audit database rotator creates is mode 0600, whatever the umask."""
    path = tmp_path / "rotator.db"
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        db.upgrade(engine)
    finally:
        engine.dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
