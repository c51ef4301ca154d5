"""Text that may carry a secret, made safe for a message, a log line or the audit log.

Two leaks this closes: a URL with ``user:pass@`` or a token in its query string (``safe_url``),
and a secret value that an upstream echoes back in an error body (``scrub``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from rotator.secret import mask_known


def safe_url(url: str) -> str:
    """``url`` without userinfo, query or fragment: scheme, host, port and path only.

    Use it for every URL that goes into an exception message, a log field or an audit event
    (webhook URLs in ``rotator.notify`` included).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str) -> str:
    """``text`` with every secret value this process has seen replaced by the mask."""
    return mask_known(text)


__all__ = ["safe_url", "scrub"]
