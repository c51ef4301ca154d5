"""Grace periods are honoured: a non-emergency rotation never revokes a previous secret early."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rotator.audit import RunStatus
from rotator.checks import grace_warnings
from rotator.config import parse_config
from rotator.errors import ConfigError, GracePeriodActiveError
from rotator.protocol import GraceNotOver, Observed, grace_until, identify, make_room, plan
from tests.conftest import SUBACCOUNTS, World

SUB = "sub00001"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def seen_in_grace(until: datetime) -> Observed:
    return Observed(
        vonage_ids=("old", "cur"),
        record_exists=True,
        record_secret_id="cur",
        previous_id="old",
        previous_revoke_after=until,
    )


def rotate(world: World, api_key: str, **kwargs: Any) -> Any:
    services = world.services()
    return services.rotator.rotate(api_key, actor="tester", reason="test", **kwargs), services


def test_make_room_refuses_a_previous_secret_inside_its_grace() -> None:
    """The protocol will not revoke the previous secret before its revoke_after."""
    seen = seen_in_grace(NOW + timedelta(minutes=5))
    with pytest.raises(GraceNotOver) as caught:
        make_room(seen, identify(seen), revoke_older_if_unidentified=False, now=NOW)
    assert caught.value.until == NOW + timedelta(minutes=5)


def test_make_room_of_an_emergency_cuts_the_grace_and_says_so() -> None:
    """An emergency revokes it anyway and the decision names the grace it cut."""
    seen = seen_in_grace(NOW + timedelta(minutes=5))
    room = make_room(
        seen, identify(seen), revoke_older_if_unidentified=False, now=NOW, emergency=True
    )
    assert room.revoke == ("old",)
    assert room.cut_grace == NOW + timedelta(minutes=5)


def test_make_room_after_the_grace_revokes_the_previous() -> None:
    """Once revoke_after has passed, the previous secret makes room as before."""
    seen = seen_in_grace(NOW - timedelta(seconds=1))
    room = make_room(seen, identify(seen), revoke_older_if_unidentified=False, now=NOW)
    assert room.revoke == ("old",)
    assert room.cut_grace is None


def test_plan_names_the_time_a_rotation_can_run() -> None:
    """plan shows that the rotation waits for the grace period to end."""
    until = NOW + timedelta(minutes=5)
    decided = plan(
        seen_in_grace(until),
        emergency=False,
        grace_period=timedelta(hours=1),
        revoke_older_if_unidentified=False,
        now=NOW,
    )
    assert decided.waits_until == until
    assert decided.actions[0].startswith("wait until 2026-01-01T00:05:00")


def test_a_second_rotation_inside_the_grace_is_refused_and_changes_nothing(world: World) -> None:
    """Two rotations in a row: the second refuses, naming the time; the previous secret lives."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(rotation={"grace_period": "1h"})
    first, _ = rotate(world, SUB)
    assert first.run.status == RunStatus.AWAITING_REVOKE
    with pytest.raises(GracePeriodActiveError) as caught:
        rotate(world, SUB)
    assert first.run.old_secret_id in world.sim.secret_ids(SUB)
    assert world.seeded_authenticates(SUB)
    assert first.run.revoke_after is not None
    assert abs((caught.value.until - first.run.revoke_after).total_seconds()) < 1
    services = world.services()
    assert services.audit.get_run(first.run.id).status == RunStatus.AWAITING_REVOKE
    assert len(services.audit.runs(api_key=SUB)) == 1


def test_an_emergency_cuts_the_grace_short_and_the_audit_log_says_so(world: World) -> None:
    """--emergency revokes the previous secret at once; make_room's event names the cut grace."""
    world.seed_primary()
    world.seed_vault(SUB, SUBACCOUNTS[SUB], world.sim.secret_ids(SUB)[0])
    world.configure(rotation={"grace_period": "1h"})
    first, _ = rotate(world, SUB)
    second, services = rotate(world, SUB, emergency=True)
    assert second.run.status == RunStatus.SUCCEEDED
    event = next(e for e in services.audit.events(run_id=second.run.id) if e.step == "make_room")
    assert event.detail is not None
    assert event.detail["cut_grace"]["secret_id"] == first.run.old_secret_id
    assert not world.seeded_authenticates(SUB)


def test_cli_refuses_with_exit_4_naming_the_time(world: World, run_cli: Any) -> None:
    """`rotator rotate KEY` inside a grace period exits 4 and says when it can run."""
    world.seed_primary()
    world.configure(rotation={"grace_period": "1h"})
    assert run_cli("rotate", SUB).returncode == 0
    done = run_cli("rotate", SUB)
    assert done.returncode == 4, done.stderr[-2000:]
    assert "grace period until" in done.stderr


def test_cli_with_a_negative_wait_still_refuses(world: World, run_cli: Any) -> None:
    """A hostile --wait (negative) never turns into cutting the grace period short."""
    world.seed_primary()
    world.configure(rotation={"grace_period": "1h"})
    assert run_cli("rotate", SUB).returncode == 0
    done = run_cli("rotate", SUB, "--wait", "-100000")
    assert done.returncode == 4, done.stderr[-2000:]
    assert world.seeded_authenticates(SUB)


def base_config(**rotation: Any) -> dict[str, Any]:
    return {"vonage": {"primary_api_key": "abcd1234"}, "rotation": rotation}


def test_a_grace_not_shorter_than_the_interval_is_a_config_error() -> None:
    """grace_period >= the schedule's interval is refused, naming where."""
    with pytest.raises(ConfigError, match="every key"):
        parse_config(base_config(grace_period="1d", schedule={"interval": "1d"}))


def test_a_grace_not_shorter_than_an_override_cron_gap_names_the_key() -> None:
    """An override's cron with a gap shorter than the grace is refused, naming the key."""
    data = base_config()
    data["accounts"] = {
        "overrides": [
            {"api_key": "sub00042", "grace_period": "3h", "schedule": {"cron": "0 */2 * * *"}}
        ]
    }
    with pytest.raises(ConfigError, match="sub00042"):
        parse_config(data)


def test_the_default_grace_is_hours_and_fits_the_default_schedule() -> None:
    """The default grace period covers an hourly External Secrets refresh."""
    config = parse_config(base_config())
    assert timedelta(hours=1) < config.rotation.grace_period < config.rotation.schedule.interval  # type: ignore[operator]


def test_check_warns_about_a_zero_grace() -> None:
    """0s stays possible, with a warning from `rotator check`."""
    warnings = grace_warnings(parse_config(base_config(grace_period="0s")))
    assert len(warnings) == 1
    assert "0s" in warnings[0].message


def test_plan_and_status_show_the_postponement(world: World, run_cli: Any) -> None:
    """`plan` says the rotation waits and until when; `status --json` names grace_until."""
    world.seed_primary()
    world.configure(rotation={"grace_period": "1h"})
    assert run_cli("rotate", SUB).returncode == 0
    planned = run_cli("plan", SUB)
    assert "in grace until" in planned.stdout
    assert "wait until" in planned.stdout
    status = json.loads(run_cli("status", "--json").stdout)
    assert next(k for k in status if k["api_key"] == SUB)["grace_until"] is not None


def test_check_refuses_a_grace_as_long_as_the_schedule(world: World, run_cli: Any) -> None:
    """`rotator check` reports the config error (exit 2), naming the key."""
    override = {"api_key": SUB, "grace_period": "7d", "schedule": {"interval": "7d"}}
    world.configure(accounts={"overrides": [override]})
    done = run_cli("check")
    assert done.returncode == 2
    assert SUB in done.stdout
    assert "grace_period" in done.stdout


def test_a_promise_without_a_vault_previous_still_postpones() -> None:
    """A run awaiting revocation of a secret Vault never held still holds back a rotation."""
    seen = Observed(
        vonage_ids=("old", "cur"), record_exists=True, record_secret_id="cur",
        promised_until=NOW + timedelta(minutes=1),
    )  # fmt: skip
    assert grace_until(seen, now=NOW, emergency=False) == NOW + timedelta(minutes=1)
    assert grace_until(seen, now=NOW, emergency=True) is None
