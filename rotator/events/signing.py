"""Standard Webhooks signatures (https://www.standardwebhooks.com): what a receiver checks with
the ``standardwebhooks`` package (or a few lines of its own) to know rotator sent the body.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; the key is the base64 part of
the ``whsec_...`` secret; the header is ``v1,<base64 HMAC-SHA256>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rotator import clock
from rotator.errors import ConfigError
from rotator.secret import Secret

PREFIX = "whsec_"


def signing_key(secret: Secret) -> bytes:
    """The HMAC key of a ``whsec_`` secret; a malformed secret is a config error (never shown)."""
    value = secret.reveal()
    encoded = value[len(PREFIX) :] if value.startswith(PREFIX) else value
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "an events endpoint secret is not a Standard Webhooks secret",
            hint="use 'whsec_' followed by base64 of 24-64 random bytes",
        ) from None
    if len(key) < 16:
        raise ConfigError(
            "an events endpoint secret is too short (under 16 bytes)",
            hint="use 'whsec_' followed by base64 of 24-64 random bytes",
        )
    return key


def body(event_type: str, timestamp: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body every delivery of one event sends byte for byte (it is signed)."""
    payload = {"type": event_type, "timestamp": clock.iso(timestamp), "data": dict(data)}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def signature(key: bytes, message_id: str, timestamp: int, content: str) -> str:
    signed = f"{message_id}.{timestamp}.{content}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(key: bytes, message_id: str, timestamp: int, content: str) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, message_id, timestamp, content),
        "content-type": "application/json",
    }


__all__ = ["PREFIX", "body", "headers", "signature", "signing_key"]
