"""Validated identifiers: parse an API key or secret id once, where it enters, then trust the type.

An identifier ends up in a URL path, before the colon of Basic auth, in Vault paths, the audit log
and terminal output. A value from a hostile or spoofed upstream (``../../sub00001/secrets/<id>``,
``%2e%2e``, a control character, a megabyte of text) must never get that far, so each boundary
(Vonage answers, the config file, the command line, database rows) calls ``parse_api_key`` /
``parse_secret_id`` and passes the result on as ``ApiKey`` / ``SecretId``.

The patterns follow what Vonage and its official SDKs show, not only the OpenAPI files (which say
just ``type: string``): API keys are short alphanumerics (``abcd1234``; SDK fixtures also use
``test_api_key``), secret ids are UUIDs, though an SDK fixture records
``1b1b1b1b-1b1b-1b-1b1b-1b1b1b1b1b1b``, so any hex groups joined by ``-`` are accepted.
"""

from __future__ import annotations

import re
from typing import Final, NewType
from urllib.parse import quote

from rotator.errors import InvalidIdentifierError

ApiKey = NewType("ApiKey", str)
SecretId = NewType("SecretId", str)

API_KEY_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
SECRET_ID_PATTERN: Final = re.compile(r"[0-9A-Fa-f]{1,32}(?:-[0-9A-Fa-f]{1,32}){0,7}")
_SHOWN: Final = 40  # characters of a refused value shown in a message


def _shown(value: object) -> str:
    """A refused value for a message: printable ASCII only, truncated (it may be hostile)."""
    text = value if isinstance(value, str) else repr(value)
    clean = "".join(c if " " <= c <= "~" else "?" for c in text[:_SHOWN])
    return repr(clean + ("..." if len(text) > _SHOWN else ""))


def shown(value: object) -> str:
    """A refused identifier as it may be shown (status, alerts, logs): sanitised, truncated."""
    return _shown(value)


def is_api_key(value: object) -> bool:
    return isinstance(value, str) and API_KEY_PATTERN.fullmatch(value) is not None


def is_secret_id(value: object) -> bool:
    return isinstance(value, str) and SECRET_ID_PATTERN.fullmatch(value) is not None


def parse_api_key(text: object, *, source: str = "API key") -> ApiKey:
    """``text`` as an ``ApiKey``, or ``InvalidIdentifierError`` (a ``ConfigError``: exit 2).

    Call it wherever a key enters: the config (done in ``rotator.config``), a CLI ``API_KEY``
    argument, a database row, a Vonage answer (done in ``rotator.vonage``). ``source`` names the
    place in the message, e.g. ``"vonage.primary_api_key"`` or ``"argument API_KEY"``. The
    message shows the refused value sanitised (printable ASCII, truncated), never a secret.
    """
    if is_api_key(text):
        return ApiKey(str(text))
    raise InvalidIdentifierError(
        f"{source} {_shown(text)} is not a valid Vonage API key (1-64 letters, digits, '_' or '-')"
    )


def parse_secret_id(text: object, *, source: str = "secret id") -> SecretId:
    """``text`` as a ``SecretId`` (hex groups joined by ``-``, a UUID in practice), or
    ``InvalidIdentifierError``. Same contract as ``parse_api_key``."""
    if is_secret_id(text):
        return SecretId(str(text))
    raise InvalidIdentifierError(
        f"{source} {_shown(text)} is not a valid Vonage secret id (a UUID)"
    )


def path_segment(value: str) -> str:
    """One URL path segment, percent-encoded so that no value can add or climb a segment."""
    return quote(value, safe="")


__all__ = [
    "API_KEY_PATTERN",
    "SECRET_ID_PATTERN",
    "ApiKey",
    "SecretId",
    "is_api_key",
    "is_secret_id",
    "parse_api_key",
    "parse_secret_id",
    "path_segment",
    "shown",
]
