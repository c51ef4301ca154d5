"""The audit chain's head, kept outside the database: in Vault, at a path only rotator's policy
reaches (``<mount>/<state_prefix>/.rotator/audit-anchor``), written check-and-set.

Anyone who can write the database can delete the newest events or recompute every hash; nobody
but rotator can move the anchor, so ``audit verify`` comparing the log with it catches both. The
anchor only moves forward: a writer that finds a newer head there leaves it.
"""

from __future__ import annotations

import threading

from rotator.audit import Head
from rotator.errors import VaultConflictError, VaultDataError
from rotator.vault import VaultStore

ANCHOR = "audit-anchor"
ATTEMPTS = 3


class VaultAnchor:
    """``AuditLog(anchor=VaultAnchor(vault))``: called with the folded head after every run."""

    def __init__(self, vault: VaultStore) -> None:
        self._vault = vault
        self._lock = threading.Lock()  # the daemon's workers anchor one at a time
        self._version: int | None = None  # the version this process last wrote or read
        self._head = Head(0, "")  # the newest head this process anchored

    def read(self) -> Head | None:
        found = self._vault.read_internal(ANCHOR)
        if found is None:
            return None
        data, self._version = found
        seq, hash_ = data.get("chain_seq"), data.get("hash")
        if not isinstance(seq, int) or not isinstance(hash_, str):
            raise VaultDataError(f"{self._vault.internal_path(ANCHOR)} is not an audit anchor")
        return Head(seq, hash_)

    def __call__(self, head: Head) -> None:
        with self._lock:
            if head.chain_seq <= self._head.chain_seq:
                return  # a worker that folded later has anchored further already
            for _ in range(ATTEMPTS):
                if self._version is None:
                    stored = self.read()
                    if stored is not None and stored.chain_seq >= head.chain_seq:
                        return  # someone anchored this far already
                try:
                    cas = self._version or 0
                    self._version = self._vault.write_internal(ANCHOR, head.to_data(), cas=cas)
                    self._head = head
                    return
                except VaultConflictError:
                    self._version = None  # another process moved it: read and compare
            raise VaultConflictError("cannot anchor the audit head: the anchor keeps changing")
