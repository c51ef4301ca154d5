"""Plain records the simulator hands to tests: what was called, what was sent.

They are frozen so a test cannot change history by accident, and none of them can hold a secret
value: the call log keeps the path without its query string and the API key without its secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HostName = Literal["api", "rest"]


@dataclass(frozen=True, kw_only=True)
class CallRecord:
    """One HTTP call as the simulator saw it.

    ``status`` is what the client received, or ``None`` when no response was sent (a timeout or
    reset fault). ``auth_key`` is the API key the caller presented, valid or not. ``started`` and
    ``finished`` are readings of the simulator's clock.
    """

    method: str
    host: HostName
    path: str
    status: int | None
    auth_key: str | None
    request_id: str
    fault: str | None
    started: float
    finished: float


@dataclass(frozen=True, kw_only=True)
class SmsMessage:
    """An SMS the simulator accepted: it lands in the outbox instead of on a phone."""

    api_key: str
    sender: str
    to: str
    text: str
