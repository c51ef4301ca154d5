"""Who is calling, and may they: Vault answers both, with the caller's own token.

The control API keeps no users or passwords. A caller sends its Vault token; rotator asks Vault
(``auth/token/lookup-self`` and ``sys/capabilities-self``, both called WITH that token) who it
is and what it may do on ``<http.control.vault_path>/<api_key>/<action>``. Policies, groups,
expiry and revocation stay where operators already manage them.

httpx errors and Vault's answers are translated here, once. The token is a ``Secret``: it goes
into one request header and nowhere else (no log line, no message, no repr).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Final

import httpx

from rotator.config import VaultConfig
from rotator.errors import ConfigError, VaultError, VaultPermissionError, VaultUnavailableError
from rotator.secret import Secret

_TEXT_MAX: Final = 100  # characters of a display name or id kept for the audit log


@dataclass(frozen=True, kw_only=True)
class Caller:
    """A caller as Vault knows it (never the token itself)."""

    display_name: str
    entity_id: str | None
    accessor: str | None
    policies: tuple[str, ...]

    @property
    def actor(self) -> str:
        """The audit log's actor: ``vault:<display_name>``."""
        return f"vault:{self.display_name}"[:128]

    @property
    def rate_key(self) -> str:
        """What the rate limit counts against: the entity, else the token's accessor."""
        return self.entity_id or self.accessor or self.actor

    def to_json(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "entity_id": self.entity_id,
            "policies": list(self.policies),
        }


class VaultAuthority:
    """Asks Vault about a caller's token; one short-lived HTTP client per process."""

    def __init__(self, config: VaultConfig, *, transport: httpx.BaseTransport | None = None):
        verify: bool | ssl.SSLContext = config.verify_tls
        if config.verify_tls and config.ca_cert is not None:
            try:
                verify = ssl.create_default_context(cafile=str(config.ca_cert))
            except (OSError, ssl.SSLError):
                raise ConfigError(
                    f"vault.ca_cert: cannot load {config.ca_cert}",
                    hint="give the PEM file of the CA that signed Vault's certificate",
                ) from None
        headers = {"X-Vault-Namespace": config.namespace} if config.namespace else {}
        self._client = httpx.Client(
            base_url=config.url.rstrip("/") + "/v1/",
            timeout=config.timeout.total_seconds(),
            verify=verify,
            headers=headers,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"VaultAuthority(url={str(self._client.base_url)!r})"

    def identify(self, token: Secret) -> Caller:
        """The token's identity; ``VaultPermissionError`` for an unknown or expired token."""
        data = self._call("GET", "auth/token/lookup-self", token, "look up the caller's token")
        info = data.get("data") or {}
        if not isinstance(info, dict):
            raise VaultError("cannot look up the caller's token: an unexpected answer")
        policies = info.get("policies") or []
        return Caller(
            display_name=_text(info.get("display_name")) or "unnamed-token",
            entity_id=_text(info.get("entity_id")) or None,
            accessor=_text(info.get("accessor")) or None,
            policies=tuple(_text(p) for p in policies if isinstance(p, str)),
        )

    def capabilities(self, token: Secret, path: str) -> frozenset[str]:
        """What the token may do on ``path`` (Vault's words: read, update, sudo, root, deny...)."""
        data = self._call(
            "POST",
            "sys/capabilities-self",
            token,
            "ask Vault for the caller's capabilities",
            json={"paths": [path]},
        )
        found = data.get(path, data.get("capabilities"))
        if not isinstance(found, list):
            raise VaultError("cannot read the caller's capabilities: an unexpected answer")
        return frozenset(c for c in found if isinstance(c, str))

    def close(self) -> None:
        self._client.close()

    def _call(
        self, method: str, path: str, token: Secret, what: str, json: Any = None
    ) -> dict[str, Any]:
        headers = {"X-Vault-Token": token.reveal()}
        try:
            response = self._client.request(method, path, headers=headers, json=json)
        except httpx.HTTPError as exc:
            raise VaultUnavailableError(
                f"cannot {what}: Vault unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code in (401, 403):
            raise VaultPermissionError(
                f"cannot {what}: Vault refused the token", hint="use a valid Vault token"
            )
        if response.status_code >= 500:
            raise VaultUnavailableError(f"cannot {what}: Vault answered {response.status_code}")
        if response.status_code >= 400:
            raise VaultError(f"cannot {what}: Vault answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise VaultError(f"cannot {what}: Vault's answer is not JSON") from None
        if not isinstance(body, dict):
            raise VaultError(f"cannot {what}: an unexpected answer")
        return body


def _text(value: object) -> str:
    """A value from Vault for the audit log: printable ASCII, truncated."""
    if not isinstance(value, str):
        return ""
    return "".join(c if " " <= c <= "~" else "?" for c in value[:_TEXT_MAX])


__all__ = ["Caller", "VaultAuthority"]
