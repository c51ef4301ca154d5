"""TLS settings for rotator's HTTP clients (Vault, Vonage): certificates are always verified
unless a config turns it off (``verify_tls: false``, logged as a warning at every start).
"""

from __future__ import annotations

import ssl
from functools import cache
from pathlib import Path

import httpx

from rotator.errors import ConfigError


@cache
def default_context() -> ssl.SSLContext:
    """The process's one verifying context (certifi's CA bundle, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``). Loading the bundle takes milliseconds, so the clients share it."""
    return httpx.create_ssl_context()


def verify_for(
    verify_tls: bool, ca_cert: Path | None = None, *, setting: str = "vault.ca_cert"
) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for a config's ``verify_tls`` (and ``ca_cert``, a CA file)."""
    if not verify_tls:
        return False
    if ca_cert is None:
        return default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError):
        raise ConfigError(
            f"{setting}: cannot load {ca_cert}",
            hint="give the PEM file of the CA that signed the server's certificate",
        ) from None


__all__ = ["default_context", "verify_for"]
