"""The consumer event types: a contract with every receiver, so names never change."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    # secret.rotated: a new secret is current in Vault. secret.revoked: a secret no longer
    # authenticates on Vonage. rotation.failed: a run ended with nothing changed.
    # rotation.rolled_back: a run undid its new secret. secret.drift: Vonage shows a
    # secret rotator did not create, or lost the current one (the daemon's drift watch).
    # The values are names, not passwords (hence the noqa).
    SECRET_ROTATED = "secret.rotated"  # nosec B105  # noqa: S105
    SECRET_REVOKED = "secret.revoked"  # nosec B105  # noqa: S105
    ROTATION_FAILED = "rotation.failed"
    ROTATION_ROLLED_BACK = "rotation.rolled_back"
    SECRET_DRIFT = "secret.drift"  # nosec B105  # noqa: S105


ALL_TYPES: frozenset[EventType] = frozenset(EventType)
