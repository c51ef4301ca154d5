"""The authenticated control API: on-call tooling rotates, pauses and resumes keys over HTTP.

Off by default (``http.control.enabled``). Vault authenticates and authorises every call with the
caller's own token (``authority``); ``routes`` and ``bodies`` parse the request strictly;
``limits`` counts requests per caller; ``api`` puts the steps in order and audits refusals. The
daemon does the work through the CLI's code paths (``rotator.daemon.control``); the HTTP
connection layer (``rotator.httpserver``) reads a bounded body and hands the request over.
"""

from rotator.control.api import Answer, Busy, Call, ControlApi, NotAvailable, Operations
from rotator.control.authority import Caller, VaultAuthority

__all__ = [
    "Answer",
    "Busy",
    "Call",
    "Caller",
    "ControlApi",
    "NotAvailable",
    "Operations",
    "VaultAuthority",
]
