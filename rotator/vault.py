"""Vault (KV v2) storage for Vonage secrets, with check-and-set on every write.

Layout (``mount``, ``path_prefix`` and ``state_prefix`` from the config):

- ``<mount>/<path_prefix>/<api_key>`` — what applications read: ``api_key``, ``api_secret``,
  ``secret_id``, ``rotated_at``, ``run_id``. Only ever holds the secret that is current.
- ``<mount>/<state_prefix>/<api_key>`` — rotator's own bookkeeping: ``pending`` (a new secret
  staged before Vonage sees it) and ``previous`` (the old secret until it is revoked). Apart from
  the application path so no consumer can mistake either for current.

Vault's answers and httpx's errors are translated here, once, to ``VaultError`` subclasses
(the HTTP itself is ``rotator.vault_http``).
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any, TypedDict, TypeVar, Unpack

import httpx
import structlog

from rotator.clock import utcnow
from rotator.config import AppRoleAuth, KubernetesAuth, TokenAuth, VaultConfig
from rotator.errors import (
    NoWorkingSecretError,
    VaultConflictError,
    VaultDataError,
    VaultError,
    VaultPermissionError,
    VaultUnavailableError,
)
from rotator.secret import Credentials, Secret
from rotator.tls import verify_for
from rotator.vault_http import VaultHTTP, VaultHTTPError

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class CurrentRecord:
    """The secret applications use now, as read from the application path."""

    api_key: str
    api_secret: Secret
    secret_id: str | None
    version: int
    rotated_at: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class StagedSecret:
    """A secret rotator holds outside the application path (pending or previous)."""

    secret: Secret
    secret_id: str | None
    run_id: str | None
    staged_at: str  # rotator.clock.iso text (older records: second precision, "Z")
    revoke_after: str | None = None

    def with_id(self, secret_id: str) -> StagedSecret:
        return replace(self, secret_id=secret_id)

    def to_data(self) -> dict[str, Any]:
        return {
            "secret": self.secret.reveal(),
            "secret_id": self.secret_id,
            "run_id": self.run_id,
            "staged_at": self.staged_at,
            "revoke_after": self.revoke_after,
        }

    @classmethod
    def from_data(cls, data: object, where: str) -> StagedSecret | None:
        if data is None:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("secret"), str):
            raise VaultDataError(f"{where} is not a staged secret record")
        return cls(
            secret=Secret(data["secret"]),
            secret_id=data.get("secret_id"),
            run_id=data.get("run_id"),
            staged_at=str(data.get("staged_at") or ""),
            revoke_after=data.get("revoke_after"),
        )


@dataclass(frozen=True, kw_only=True)
class RotationState:
    pending: StagedSecret | None = None
    previous: StagedSecret | None = None
    adopted_id: str | None = None  # `rotator adopt` for a key whose value Vault does not hold
    version: int = 0


class StateChanges(TypedDict, total=False):
    """The fields of a key's state record ``VaultStore.update_state`` may change."""

    pending: StagedSecret | None
    previous: StagedSecret | None
    adopted_id: str | None


# What applications read in ``rotated_at``: kept in the form it always had (consumers and the
# daemon parse it); ``rotator.clock.parse`` reads it too.
ROTATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
INTERNAL = ".rotator"  # <state_prefix>/.rotator/: rotator's own records
FINGERPRINT_KEY = "fingerprint-key"


class VaultStore:
    """Reads and writes rotator's two records per key; every write is check-and-set."""

    def __init__(self, config: VaultConfig) -> None:
        self._config = config
        if not config.verify_tls:
            structlog.get_logger("rotator.vault").warning(
                "tls_verification_disabled",
                detail="vault.verify_tls is false: Vault's certificate is NOT checked",
            )
        self._client = VaultHTTP(
            config.url,
            timeout=max(1, round(config.timeout.total_seconds())),
            verify=verify_for(config.verify_tls, config.ca_cert),
            namespace=config.namespace,
        )
        self._logged_in = False
        self._fingerprint_key: bytes | None = None

    def __repr__(self) -> str:
        return f"VaultStore(url={self._config.url!r}, mount={self._config.mount!r})"

    def close(self) -> None:
        self._client.close()

    # -- paths ------------------------------------------------------------------------------

    def current_path(self, api_key: str) -> str:
        return f"{self._config.path_prefix}/{api_key}"

    def state_path(self, api_key: str) -> str:
        return f"{self._config.state_prefix}/{api_key}"

    def describe(self, api_key: str) -> str:
        return f"{self._config.mount}/{self.current_path(api_key)}"

    def internal_path(self, name: str) -> str:
        """Rotator's own records (audit anchor, fingerprint key): under the state prefix, in a
        folder no api key can name (keys have no dot), so no consumer policy reaches them."""
        return f"{self._config.state_prefix}/{INTERNAL}/{name}"

    # -- public operations ------------------------------------------------------------------

    def login(self) -> None:
        """Authenticate (token, AppRole or Kubernetes) and check the token is valid."""
        auth = self._config.auth
        with self._translate("log in to Vault"):
            if isinstance(auth, TokenAuth):
                self._client.token = auth.token()
            elif isinstance(auth, AppRoleAuth):
                role = {"role_id": auth.role_id, "secret_id": auth.secret_id().reveal()}
                self._client.token = self._log_in(auth.mount_point, role)
            elif isinstance(auth, KubernetesAuth):
                role = {"role": auth.role, "jwt": auth.jwt().reveal()}
                self._client.token = self._log_in(auth.mount_point, role)
            self._client.request("GET", "auth/token/lookup-self")
        self._logged_in = True

    def _log_in(self, mount_point: str, body: dict[str, str]) -> Secret:
        """An auth method's login: the client token it hands out (masked like any secret)."""
        self._client.token = None
        answer = self._client.request("POST", f"auth/{mount_point}/login", body=body)
        granted = answer.get("auth")
        token = granted.get("client_token") if isinstance(granted, dict) else None
        if not isinstance(token, str) or not token:
            raise VaultDataError(f"Vault's auth/{mount_point}/login answered without a token")
        return Secret(token)

    def health(self) -> None:
        """Raise unless Vault is reachable, unsealed and our token works."""
        with self._translate("check Vault health"):
            status = self._client.request("GET", "sys/health", check=False)
        if status.get("sealed"):
            raise VaultUnavailableError("Vault is sealed")
        if not self._logged_in:
            self.login()  # which looks the token up: one round trip, not two
            return
        self._call(
            "look up rotator's token",
            lambda: self._client.request("GET", "auth/token/lookup-self"),
        )

    def read_current(self, api_key: str) -> CurrentRecord | None:
        found = self._read(self.current_path(api_key))
        if found is None:
            return None
        data, version = found
        where = f"Vault record {self.describe(api_key)}"
        value = data.get("api_secret")
        if not isinstance(value, str) or not value:
            raise VaultDataError(f"{where} has no api_secret")
        if data.get("api_key", api_key) != api_key:
            raise VaultDataError(f"{where} holds api_key {data.get('api_key')!r}, not {api_key!r}")
        secret_id = data.get("secret_id") or None
        return CurrentRecord(
            api_key=api_key,
            api_secret=Secret(value),
            secret_id=str(secret_id) if secret_id else None,
            version=version,
            rotated_at=data.get("rotated_at"),
            run_id=data.get("run_id"),
        )

    def credentials(self, api_key: str) -> Credentials:
        """The key's current credentials from Vault: what rotator authenticates with.

        The one place that turns "no record" into an operator's error, so every caller says the
        same thing.
        """
        record = self.read_current(api_key)
        if record is None:
            raise NoWorkingSecretError(
                f"no secret for {api_key} at {self.describe(api_key)}",
                hint=f"write the api_key and api_secret to {self.describe(api_key)} "
                "(see README, 'First run')",
            )
        return Credentials(api_key, record.api_secret)

    def write_current(
        self,
        api_key: str,
        secret: Secret,
        secret_id: str,
        *,
        cas: int,
        run_id: str | None,
    ) -> int:
        data = {
            "api_key": api_key,
            "api_secret": secret.reveal(),
            "secret_id": secret_id,
            "rotated_at": utcnow().strftime(ROTATED_AT_FORMAT),
            "run_id": run_id,
        }
        return self._write(self.current_path(api_key), data, cas)

    def read_state(self, api_key: str) -> RotationState:
        found = self._read(self.state_path(api_key))
        if found is None:
            return RotationState()
        data, version = found
        where = f"Vault record {self._config.mount}/{self.state_path(api_key)}"
        return RotationState(
            pending=StagedSecret.from_data(data.get("pending"), f"{where} (pending)"),
            previous=StagedSecret.from_data(data.get("previous"), f"{where} (previous)"),
            adopted_id=data.get("adopted_id") or None,
            version=version,
        )

    def update_state(
        self,
        api_key: str,
        *,
        cas: int,
        known: RotationState | None = None,
        **changes: Unpack[StateChanges],
    ) -> RotationState:
        """Change the named fields of the key's state record and keep every other one.

        Read-modify-write, check-and-set at ``cas`` (the version the caller read): a field a
        step does not name (``adopted_id``, say) survives it. Raises ``VaultConflictError`` if
        the record changed since. ``known``: the record as the caller last read or wrote it;
        at version ``cas`` it stands in for the read (the check-and-set write still refuses a
        record that changed since, so nothing a step does not name can be lost).
        """
        state = known if known is not None and known.version == cas else self.read_state(api_key)
        if state.version != cas:
            where = f"{self._config.mount}/{self.state_path(api_key)}"
            raise VaultConflictError(f"cannot write {where}: it changed since rotator read it")
        new = replace(state, **changes)
        data = {
            "pending": new.pending.to_data() if new.pending else None,
            "previous": new.previous.to_data() if new.previous else None,
            "adopted_id": new.adopted_id,
        }
        return replace(new, version=self._write(self.state_path(api_key), data, cas))

    def required_capabilities(self) -> dict[str, set[str]]:
        """What rotator's token must be allowed on each path (the policy in deploy/vault)."""
        mount = self._config.mount
        needed: dict[str, set[str]] = {}
        for prefix in (self._config.path_prefix, self._config.state_prefix):
            needed[f"{mount}/data/{prefix}/x"] = {"create", "read", "update"}
            needed[f"{mount}/metadata/{prefix}/x"] = {"read", "list"}
        return needed

    def missing_capabilities(self) -> dict[str, set[str]]:
        """Capabilities the token lacks on rotator's paths (empty when the policy is right)."""
        needed = self.required_capabilities()
        answer = self._call(
            "read the token's capabilities",
            lambda: self._client.request(
                "POST", "sys/capabilities-self", body={"paths": sorted(needed)}
            ),
        )
        granted = answer.get("data", answer)
        missing = {}
        for path, caps in needed.items():
            have = set(granted.get(path, []))
            if "root" in have:
                continue
            lacking = caps - have
            if lacking:
                missing[path] = lacking
        return missing

    def read_internal(self, name: str) -> tuple[dict[str, Any], int] | None:
        """One of rotator's own records and its version (None: never written)."""
        return self._read(self.internal_path(name))

    def write_internal(self, name: str, data: dict[str, Any], *, cas: int) -> int:
        """Check-and-set write of one of rotator's own records (``cas=0``: create only)."""
        return self._write(self.internal_path(name), data, cas)

    def fingerprint(self, secret: Secret) -> str:
        """``secret``'s fingerprint under this installation's key (what the audit log holds)."""
        return secret.fingerprint(self.fingerprint_key())

    def fingerprint_key(self) -> bytes:
        """This installation's HMAC key for secret fingerprints: made once (check-and-set, so
        replicas starting together agree), then read; never logged. A fixed key would let anyone
        test a guessed secret against the fingerprints in the audit log."""
        if self._fingerprint_key is None:
            found = self.read_internal(FINGERPRINT_KEY)
            if found is None:
                new = {"key": secrets.token_hex(32)}
                with suppress(VaultConflictError):  # another replica made it first: use theirs
                    self.write_internal(FINGERPRINT_KEY, new, cas=0)
                found = self.read_internal(FINGERPRINT_KEY)
            key = found[0].get("key") if found else None
            if not isinstance(key, str) or len(key) < 32:
                raise VaultDataError(f"{self.internal_path(FINGERPRINT_KEY)} holds no key")
            self._fingerprint_key = bytes.fromhex(key)
        return self._fingerprint_key

    def list_keys(self) -> list[str]:
        """API keys with a record on the application path."""
        try:
            listed = self._call(
                "list Vault records",
                lambda: self._client.request(
                    "LIST", f"{self._config.mount}/metadata/{self._config.path_prefix}"
                ),
            )
        except _Missing:
            return []
        keys = listed.get("data", {}).get("keys", [])
        return sorted(k for k in keys if isinstance(k, str) and not k.endswith("/"))

    # -- internals --------------------------------------------------------------------------

    def _read(self, path: str) -> tuple[dict[str, Any], int] | None:
        try:
            response = self._call(
                f"read {self._config.mount}/{path}",
                lambda: self._client.request("GET", f"{self._config.mount}/data/{path}"),
            )
        except _Missing:
            return None
        data = response.get("data", {})
        record, metadata = data.get("data"), data.get("metadata", {})
        if not isinstance(record, dict):
            raise VaultDataError(f"{self._config.mount}/{path} holds no key/value data")
        return record, int(metadata.get("version", 0))

    def _write(self, path: str, data: dict[str, Any], cas: int) -> int:
        response = self._call(
            f"write {self._config.mount}/{path}",
            lambda: self._client.request(
                "POST",
                f"{self._config.mount}/data/{path}",
                body={"options": {"cas": cas}, "data": data},
            ),
        )
        return int(response.get("data", {}).get("version", cas + 1))

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        if not self._logged_in:
            self.login()
        try:
            with self._translate(what):
                return operation()
        except VaultPermissionError:
            if isinstance(self._config.auth, TokenAuth):
                raise
            self.login()  # an AppRole/Kubernetes token may simply have expired
            with self._translate(what):
                return operation()

    @contextmanager
    def _translate(self, what: str) -> Iterator[None]:
        try:
            yield
        except VaultHTTPError as exc:
            if exc.status == 404:
                raise _Missing(what) from exc
            raise _status_error(what, exc) from None
        except httpx.HTTPError as exc:
            if _tls_failure(exc):
                raise VaultUnavailableError(
                    f"cannot {what}: TLS verification of {self._config.url} failed",
                    hint="set vault.ca_cert to the CA that signed Vault's certificate",
                ) from None
            raise VaultUnavailableError(
                f"cannot {what}: {self._config.url} unreachable ({type(exc).__name__})"
            ) from None


def _status_error(what: str, exc: VaultHTTPError) -> VaultError:
    """Vault's error status, as the error an operator can act on."""
    if exc.status == 400 and "check-and-set" in str(exc):
        return VaultConflictError(f"cannot {what}: it changed since rotator read it")
    if exc.status == 400:
        return VaultError(f"cannot {what}: Vault refused the request ({_first_line(exc)})")
    if exc.status in (401, 403):
        return VaultPermissionError(f"cannot {what}: permission denied ({_first_line(exc)})")
    if exc.status == 503:  # sealed, or a proxy in front of Vault failing
        return VaultUnavailableError(f"cannot {what}: Vault is sealed or unavailable (HTTP 503)")
    if exc.status >= 500:
        return VaultUnavailableError(f"cannot {what}: Vault failed ({_first_line(exc)})")
    return VaultError(f"cannot {what}: {_first_line(exc)}")


def _tls_failure(exc: BaseException) -> bool:
    """Whether an ``ssl.SSLError`` (a certificate not verified, say) is behind ``exc``."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx error <- httpcore error <- ssl error; bounded, chains can loop
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Missing(VaultError):
    """Internal: the path does not exist (a normal answer for reads)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
