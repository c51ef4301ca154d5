"""`rotator check`: one actionable line per broken piece of config or connectivity."""

from __future__ import annotations

from typing import Any

import hvac
import pytest

from rotator import db
from rotator.devtools.devserver import free_port
from tests.conftest import World

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def lines(result: Any) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.strip()]


def failures(result: Any) -> list[str]:
    return [line for line in lines(result) if line.startswith("FAIL")]


def test_a_sound_setup_passes_every_check(migrated: World, run_cli: Any) -> None:
    """With everything in place, every line is ok and the exit code is 0."""
    migrated.seed_primary()
    migrated.configure(rotation={"grace_period": "1m"})  # 0s (the stack's) draws a warning
    result = run_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert failures(result) == []
    assert {line.split()[1] for line in lines(result)} == {
        "config:", "database:", "vault:", "vonage:"
    }  # fmt: skip


def test_an_unknown_config_key_is_named(world: World, run_cli: Any) -> None:
    """A misspelt key fails the config check with its dotted path."""
    world.configure(rotation={"grace_perod": "1h"})
    result = run_cli("check")
    assert result.returncode == 2
    assert "rotation.grace_perod: unknown key" in result.stdout


def test_an_unmigrated_database_says_to_upgrade(world: World, run_cli: Any) -> None:
    """A database without rotator's schema fails with the command that fixes it."""
    world.seed_primary()
    result = run_cli("check")
    assert result.returncode == 1
    assert failures(result) == [
        "FAIL database: database schema is at revision none, "
        f"rotator needs {db.SCHEMA_HEAD} "
        "(run `rotator db upgrade`)"
    ]


def test_an_unreachable_database_is_reported(migrated: World, run_cli: Any) -> None:
    """A PostgreSQL URL nobody listens on fails the database check, password masked."""
    migrated.seed_primary()
    port = free_port()
    migrated.configure(database={"url": f"postgresql+psycopg://u:hunter2@127.0.0.1:{port}/x"})
    result = run_cli("check")
    assert result.returncode == 1
    [line] = failures(result)
    assert line.startswith("FAIL database: cannot read the schema version: database at")
    assert "hunter2" not in result.stdout


def test_a_missing_token_variable_is_named(migrated: World, run_cli: Any) -> None:
    """A token variable that is not set fails the Vault check naming the variable."""
    migrated.configure(vault={"auth": {"method": "token", "token_env": "NO_SUCH_TOKEN_VAR"}})
    result = run_cli("check")
    assert result.returncode == 1
    assert (
        "FAIL vault: vault.auth.token_env: environment variable NO_SUCH_TOKEN_VAR is not set"
        in (result.stdout)
    )
    assert "FAIL vonage: not checked: needs Vault for the primary" in result.stdout


def test_an_unreachable_vault_is_reported(migrated: World, run_cli: Any) -> None:
    """A Vault URL nobody listens on fails the Vault check saying it is unreachable."""
    migrated.configure(vault={"url": f"http://127.0.0.1:{free_port()}"})
    result = run_cli("check")
    assert result.returncode == 1
    assert "unreachable" in failures(result)[0]


def test_a_token_without_the_policy_is_told_what_it_lacks(
    migrated: World, run_cli: Any, vault_admin: hvac.Client
) -> None:
    """A token that may only read lacks create/update: the check names the paths and the fix."""
    migrated.seed_primary()
    prefix = migrated.prefix
    vault_admin.sys.create_or_update_policy(
        name=f"readonly-{prefix}",
        policy=f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}\n',
    )
    token = vault_admin.auth.token.create(policies=[f"readonly-{prefix}"], ttl="10m")
    migrated.configure(vault={"auth": {"method": "token", "token_env": "LIMITED_TOKEN"}})
    result = run_cli("check", env={"LIMITED_TOKEN": token["auth"]["client_token"]})
    assert result.returncode == 1
    [line] = [f for f in failures(result) if f.startswith("FAIL vault")]
    assert f"secret/data/{prefix}/vonage/*: create, update" in line
    assert "deploy/vault/rotator-policy.hcl" in line
    assert token["auth"]["client_token"] not in result.stdout + result.stderr


def test_a_missing_primary_record_says_where_to_put_it(migrated: World, run_cli: Any) -> None:
    """Without the primary's secret in Vault the Vonage check names the Vault path."""
    result = run_cli("check")
    assert result.returncode == 1
    [line] = failures(result)
    assert f"secret/{migrated.prefix}/vonage/abcd1234" in line


def test_a_wrong_primary_secret_is_refused_by_vonage(migrated: World, run_cli: Any) -> None:
    """A primary secret Vonage refuses fails the Vonage check with the 401."""
    migrated.seed_vault("abcd1234", "Wrong1Secret99")
    result = run_cli("check")
    assert result.returncode == 1
    [line] = failures(result)
    assert line.startswith("FAIL vonage:")
    assert "401" in line
    assert "Wrong1Secret99" not in result.stdout + result.stderr


def test_a_group_readable_config_file_is_warned_about(migrated: World, run_cli: Any) -> None:
    """A config file others can read gets a WARN line saying chmod 600; the exit code stays 0."""
    migrated.seed_primary()
    migrated.config_file().chmod(0o644)
    result = run_cli("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(line.startswith("WARN config:") and "chmod 600" in line for line in lines(result)), (
        result.stdout
    )
