"""The server side of TLS for the HTTP listener (``http.control.tls_cert``/``tls_key``)."""

from __future__ import annotations

import ssl

from rotator.config import ControlConfig
from rotator.errors import ConfigError


def server_context(config: ControlConfig) -> ssl.SSLContext | None:
    """A TLS 1.2+ server context from the configured pair, or None when none is configured."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ConfigError(
            f"http.control.tls_cert/tls_key: cannot load the certificate pair: {reason}",
            hint="give a PEM certificate (chain) and its private key",
        ) from None
    return context


__all__ = ["server_context"]
