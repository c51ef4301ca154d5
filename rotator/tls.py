"""TLS settings for rotator's HTTP clients (Vault, Vonage, alerts): certificates are always
verified unless a config turns it off (``verify_tls: false``, logged as a warning at every start).

The clients share one verifying context: loading a CA bundle takes milliseconds of CPU.
``prepare`` starts that load on another thread (OpenSSL parses the bundle without holding the
GIL), so a one-shot command imports its modules meanwhile; whoever asks for the context first
waits for it. The context is what httpx would build itself: ``SSL_CERT_FILE``, else
``SSL_CERT_DIR``, else certifi's bundle.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
from pathlib import Path

import certifi

from rotator.errors import ConfigError


class _Shared:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.context: ssl.SSLContext | None = None


_shared = _Shared()


def default_context() -> ssl.SSLContext:
    """The process's one verifying context (made on first use, or by ``prepare``)."""
    with _shared.lock:
        if _shared.context is None:
            _shared.context = _verifying_context()
        return _shared.context


def prepare() -> None:
    """Start making ``default_context`` in the background (a daemon thread: nothing waits for
    it at exit; a failure is left for the first real use to report)."""

    def make() -> None:
        with contextlib.suppress(ConfigError):
            default_context()

    threading.Thread(target=make, name="rotator-tls", daemon=True).start()


def _verifying_context() -> ssl.SSLContext:
    file, folder = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    try:
        if file:
            return ssl.create_default_context(cafile=file)
        if folder:
            return ssl.create_default_context(capath=folder)
        return ssl.create_default_context(cafile=certifi.where())
    except (OSError, ssl.SSLError):
        where = (
            f"SSL_CERT_FILE={file}" if file else f"SSL_CERT_DIR={folder}" if folder else "certifi"
        )
        raise ConfigError(
            f"cannot load the CA bundle ({where})",
            hint="point SSL_CERT_FILE at a PEM bundle of trusted CAs, or unset it",
        ) from None


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


__all__ = ["default_context", "prepare", "verify_for"]
