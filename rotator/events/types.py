"""The consumer event types: a contract with every receiver, so names never change."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    SECRET_ROTATED = "secret.rotated"  # noqa: S105 - a new secret is current in Vault
    SECRET_REVOKED = "secret.revoked"  # noqa: S105 - a secret no longer authenticates on Vonage
    ROTATION_FAILED = "rotation.failed"  # a run ended with nothing changed
    ROTATION_ROLLED_BACK = "rotation.rolled_back"  # a run undid its new secret
    SECRET_DRIFT = "secret.drift"  # noqa: S105 - reserved: Vault and Vonage disagree (emitted elsewhere)


ALL_TYPES: frozenset[EventType] = frozenset(EventType)
