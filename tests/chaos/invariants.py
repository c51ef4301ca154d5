"""rotator's promises about every key, checked against the real servers (no ``World`` needed).

The same rules as ``tests/invariants.py``, taking the simulator, a root Vault client and the audit
log directly, so ``scripts/chaos`` can check them outside pytest. Messages name ids, never values.
"""

from __future__ import annotations

from typing import Any

import hvac
import hvac.exceptions

from rotator.audit import AuditLog, RunStatus
from rotator.devtools.simulator import VonageSimulator

MOUNT = "secret"
PATH_PREFIX = "vonage"  # the defaults, which deploy/vault/rotator-policy.hcl names
STATE_PREFIX = "rotator-state"


def vault_record(vault: hvac.Client, path: str) -> dict[str, Any] | None:
    try:
        response = vault.secrets.kv.v2.read_secret_version(
            path=path, mount_point=MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    data: dict[str, Any] = response["data"]["data"]
    return data


def key_violations(sim: VonageSimulator, vault: hvac.Client, api_key: str) -> list[str]:
    """Empty when: ≥1 secret on Vonage authenticates and is current in Vault; every secret on
    Vonage has its value in Vault (current, pending or previous); at most two secrets."""
    found: list[str] = []
    record = vault_record(vault, f"{PATH_PREFIX}/{api_key}")
    secrets = sim.secrets(api_key)
    ids = {s.id for s in secrets}
    if not 1 <= len(secrets) <= 2:
        found.append(f"{api_key}: {len(secrets)} secrets on Vonage")
    held: set[str] = set()
    if record is None:
        found.append(f"{api_key}: no current record in Vault")
    else:
        held.add(record["api_secret"])
        if record.get("secret_id") not in ids:
            found.append(
                f"{api_key}: Vault's current secret id {record.get('secret_id')} is not on Vonage"
            )
        if not sim.authenticates(api_key, record["api_secret"]):
            found.append(f"{api_key}: Vault's current secret does not authenticate (lock-out)")
    state = vault_record(vault, f"{STATE_PREFIX}/{api_key}") or {}
    for slot in ("pending", "previous"):
        if state.get(slot):
            held.add(state[slot]["secret"])
    for secret in secrets:
        if secret.value not in held:
            found.append(f"{api_key}: secret {secret.id} on Vonage has no value in Vault (lost)")
    return found


def settled_violations(
    sim: VonageSimulator, vault: hvac.Client, api_key: str, audit: AuditLog
) -> list[str]:
    """After a successful rotation with no grace period, nothing else is left: the key has one
    secret on Vonage, the current one; Vault holds no pending or previous secret; and the audit
    log names the run that made it current as succeeded (no orphan, nothing unrecorded)."""
    found: list[str] = []
    record = vault_record(vault, f"{PATH_PREFIX}/{api_key}") or {}
    current = record.get("secret_id")
    orphans = [s.id for s in sim.secrets(api_key) if s.id != current]
    if orphans:
        found.append(f"{api_key}: orphan secrets {orphans} left on Vonage")
    state = vault_record(vault, f"{STATE_PREFIX}/{api_key}") or {}
    for slot in ("pending", "previous"):
        if state.get(slot):
            found.append(f"{api_key}: a {slot} secret is left in Vault's rotator state")
    run_id = record.get("run_id")
    run = next((r for r in audit.runs(api_key=api_key) if r.id == run_id), None)
    if run is None or run.status != RunStatus.SUCCEEDED or run.new_secret_id != current:
        found.append(
            f"{api_key}: current secret {current} was not made by a run the audit log shows "
            f"succeeded (run {run_id}: {run.status if run else 'not found'})"
        )
    return found


def audit_violations(audit: AuditLog) -> list[str]:
    """Empty when every run reached a terminal state and the hash chain verifies."""
    open_runs = audit.runs(statuses=[s for s in RunStatus if not s.terminal])
    found = [f"{run.api_key}: run {run.id} is {run.status}, not terminal" for run in open_runs]
    report = audit.verify_chain()
    if not report.ok:
        found.append(f"audit chain broken at seq {report.first_bad_seq}: {report.problem}")
    return found


def violations(
    sim: VonageSimulator, vault: hvac.Client, keys: list[str], audit: AuditLog
) -> list[str]:
    """Every promise, for every key, once every key has been rotated successfully since the
    last fault (recovery): the quiet-time promises, nothing left over, the audit log complete."""
    found = [v for key in keys for v in key_violations(sim, vault, key)]
    found += [v for key in keys for v in settled_violations(sim, vault, key, audit)]
    return found + audit_violations(audit)
