"""The promises rotator makes about every key, checked against the real servers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.audit import AuditLog, RunStatus

if TYPE_CHECKING:
    from tests.conftest import World


def violations(world: World, api_key: str, audit: AuditLog | None = None) -> list[str]:
    """Empty when: ≥1 secret on Vonage authenticates and is current in Vault; every secret on
    Vonage has its value in Vault; at most two secrets; every run ended (or awaits revocation)."""
    found: list[str] = []
    record = world.vault_record(api_key)
    secrets = world.sim.secrets(api_key)
    if not 1 <= len(secrets) <= 2:
        found.append(f"{api_key}: {len(secrets)} secrets on Vonage")
    if record is None:
        found.append(f"{api_key}: no current record in Vault")
    else:
        if record.get("secret_id") not in {s.id for s in secrets}:
            found.append(f"{api_key}: Vault's current secret id is not on Vonage")
        if not world.sim.authenticates(api_key, record["api_secret"]):
            found.append(f"{api_key}: Vault's current secret does not authenticate")
    held = set()
    if record is not None:
        held.add(record["api_secret"])
    state = world.vault_record(api_key, kind="rotator-state") or {}
    for slot in ("pending", "previous"):
        if state.get(slot):
            held.add(state[slot]["secret"])
    for secret in secrets:
        if secret.value not in held:
            found.append(f"{api_key}: secret {secret.id} on Vonage has no value in Vault")
    if audit is not None:
        for run in audit.runs(api_key=api_key):
            if run.status == RunStatus.RUNNING:
                found.append(f"{api_key}: run {run.id} never finished")
    return found
