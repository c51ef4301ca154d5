"""rotator's one error hierarchy.

Library errors (httpx, SQLAlchemy) and Vault's error answers are translated to these once, in the
adapter that calls the library, and chained with ``from``. Messages never contain a secret value.

    RotatorError
    ├── ConfigError                  the config file or environment is wrong
    │   └── InvalidIdentifierError   an API key or secret id that fails its strict pattern
    ├── DatabaseError                the audit database is unreachable or not migrated
    ├── LeaseHeldError               another rotation holds this key's lease
    ├── GracePeriodActiveError       a rotation would revoke a previous secret inside its grace
    ├── RunNotFoundError             no run with that id in the audit log
    ├── VaultError
    │   ├── VaultUnavailableError    unreachable, sealed or 5xx
    │   ├── VaultPermissionError     403: the token's policy does not allow it
    │   ├── VaultConflictError       check-and-set lost: somebody else wrote
    │   └── VaultDataError           a record that is not what rotator wrote
    ├── VonageError                  (messages: secret values scrubbed, URLs without credentials)
    │   ├── VonageAuthError          401: credentials refused
    │   ├── VonageForbiddenError     403 not covered below
    │   ├── VonageNotFoundError      404: unknown API key or secret id
    │   ├── VonageSecretLimitError   a third secret refused (400, or 403 add-excess-secret or
    │   │                            maximum-secrets-allowed)
    │   ├── VonageLastSecretError    403 delete-last-secret
    │   ├── VonageValidationError    400 validation
    │   ├── VonageRateLimitError     429 (``retry_after`` in seconds), or a wait beyond the cap
    │   ├── VonageServerError        5xx
    │   ├── VonageTransportError     timeout, reset, refused (``maybe_applied`` for writes)
    │   └── VonageProtocolError      a response that is not the documented shape
    │       └── VonageInvalidIdentifierError  an answer naming a malformed API key or secret id
    └── RotationError
        ├── UnidentifiedSecretError  two secrets and no record of which one is current
        ├── VerificationFailedError  the new secret never authenticated
        ├── NothingToRollBackError   no previous secret left on Vonage to go back to
        └── NoWorkingSecretError     nothing rotator holds authenticates any more
"""

from __future__ import annotations

from datetime import datetime


class RotatorError(Exception):
    """Base of every error rotator raises on purpose.

    ``hint`` is one line telling the operator what to do about it.
    """

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} ({self.hint})" if self.hint else message


class ConfigError(RotatorError):
    hint = "fix the configuration file or environment and retry"


class InvalidIdentifierError(ConfigError):
    """An API key or secret id from the config, the command line or the database was refused
    by ``rotator.identifiers`` (exit 2, like any bad input)."""

    hint = "API keys are 1-64 letters, digits, '_' or '-'; secret ids are UUIDs"


class DatabaseError(RotatorError):
    hint = "check database.url and that the database is up; run `rotator db upgrade`"


class RunNotFoundError(RotatorError):
    hint = "check the run id; `rotator audit` lists the runs"


class KeyHeldError(RotatorError):
    hint = "`rotator resume API_KEY` lifts it; an emergency rotation (--emergency) still runs"


class LeaseHeldError(RotatorError):
    hint = "another rotation of this key is in progress; retry when it has finished"


class GracePeriodActiveError(RotatorError):
    """A non-emergency rotation would revoke the previous secret before its ``revoke_after``:
    applications that cached it may still use it. ``until`` is when the key may rotate again."""

    hint = "retry then, pass --wait SECONDS, or --emergency --reason TEXT to cut it short"

    def __init__(self, message: str, *, until: datetime, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.until = until


class VaultError(RotatorError):
    pass


class VaultUnavailableError(VaultError):
    hint = "check that Vault is reachable and unsealed"


class VaultPermissionError(VaultError):
    hint = "grant rotator's token the policy in deploy/vault/rotator-policy.hcl"


class VaultConflictError(VaultError):
    hint = "the record changed under rotator; re-run to reconcile"


class VaultDataError(VaultError):
    hint = "the Vault record is not in rotator's format; fix it or `rotator adopt` the key"


class VonageError(RotatorError):
    """An error answer from Vonage, or no answer.

    ``status`` is the HTTP status (None when no response arrived); ``request_id`` Vonage's
    ``X-Request-Id`` for support tickets.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        request_id: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.request_id = request_id


class VonageAuthError(VonageError):
    hint = "the API key or secret was refused; check the primary's record in Vault"


class VonageForbiddenError(VonageError):
    hint = "these credentials may not manage that key"


class VonageNotFoundError(VonageError):
    hint = "check the API key; subaccounts must belong to the configured primary"


class VonageSecretLimitError(VonageError):
    hint = "the key already has two secrets; rotator makes room first, so re-run to reconcile"


class VonageLastSecretError(VonageError):
    hint = "Vonage never allows deleting a key's last secret"


class VonageValidationError(VonageError):
    hint = "the secret does not meet Vonage's rules (8-25 chars, lower, upper, digit)"


class VonageRateLimitError(VonageError):
    hint = "lower vonage.max_calls_per_second"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class VonageServerError(VonageError):
    hint = "Vonage is failing; rotator retries idempotent calls, re-run later"


class VonageTransportError(VonageError):
    """No usable response. ``maybe_applied`` is True when a write may have taken effect."""

    hint = "check network access to Vonage"

    def __init__(self, message: str, *, maybe_applied: bool = False, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.maybe_applied = maybe_applied


class VonageProtocolError(VonageError):
    hint = "Vonage answered with something undocumented; re-run, and report it if it persists"


class VonageInvalidIdentifierError(VonageProtocolError):
    """Vonage (or whatever answered in its place) named a key or secret id that cannot be real;
    rotator refuses the whole answer rather than act on it."""

    hint = "an answer from Vonage named a malformed API key or secret id; nothing was changed"


class RotationError(RotatorError):
    pass


class UnidentifiedSecretError(RotationError):
    hint = (
        "tell rotator which secret applications use with `rotator adopt API_KEY --secret-id ID`, "
        "or set rotation.on_unidentified: revoke_older"
    )


class VerificationFailedError(RotationError):
    hint = "the new secret was rolled back and the old one is still current; re-run later"


class NothingToRollBackError(RotationError):
    hint = "the grace period is over: rotate again instead (`rotator rotate API_KEY`)"


class NoWorkingSecretError(RotationError):
    hint = "put a working secret in Vault for this key (see README, 'Adopting a key')"


__all__ = [
    "ConfigError",
    "DatabaseError",
    "GracePeriodActiveError",
    "InvalidIdentifierError",
    "LeaseHeldError",
    "NoWorkingSecretError",
    "NothingToRollBackError",
    "RotationError",
    "RotatorError",
    "RunNotFoundError",
    "UnidentifiedSecretError",
    "VaultConflictError",
    "VaultDataError",
    "VaultError",
    "VaultPermissionError",
    "VaultUnavailableError",
    "VerificationFailedError",
    "VonageAuthError",
    "VonageError",
    "VonageForbiddenError",
    "VonageInvalidIdentifierError",
    "VonageLastSecretError",
    "VonageNotFoundError",
    "VonageProtocolError",
    "VonageRateLimitError",
    "VonageSecretLimitError",
    "VonageServerError",
    "VonageTransportError",
    "VonageValidationError",
]
