"""Vault's HTTP API (the few endpoints rotator calls) over httpx, the client rotator already
uses for Vonage: hvac and requests were a tenth of what an emergency rotation imports before
its first call (issue 12). ``VaultStore`` (``rotator.vault``) holds the meaning; this module
only moves JSON and reports an error status as ``VaultHTTPError`` with Vault's own messages.

As hvac did: every request carries ``X-Vault-Request`` (and ``X-Vault-Namespace`` when set),
the token in ``X-Vault-Token``; redirects (a standby node pointing at the active one) are
followed; ``HTTP(S)_PROXY``/``NO_PROXY`` are honoured. TLS: ``rotator.tls``.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import httpx

from rotator.secret import Secret

URLS_KEPT = 4096  # parsed URLs remembered (two per key being rotated)


class VaultHTTPError(Exception):
    """Vault answered with an error status; ``errors`` are the messages of its JSON body."""

    def __init__(self, status: int, method: str, path: str, errors: list[str]) -> None:
        self.status, self.errors = status, errors
        text = "; ".join(errors) if errors else f"HTTP {status}"
        super().__init__(f"{text}, on {method.lower()} /v1/{path}")


class VaultHTTP:
    """A Vault server at ``url``; ``token`` is sent with every request once set."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        verify: ssl.SSLContext | bool,
        namespace: str | None = None,
    ) -> None:
        headers = {"X-Vault-Request": "true"}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        self._base = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._base,
            timeout=timeout,
            verify=verify,
            headers=headers,
            follow_redirects=True,
        )
        self.token: Secret | None = None
        self._urls: dict[str, httpx.URL] = {}

    def __repr__(self) -> str:
        return f"VaultHTTP(base_url={str(self._http.base_url)!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """``method /v1/<path>`` (each segment percent-encoded); the answer's JSON object ({} for
        an empty or non-JSON answer). Raises ``VaultHTTPError`` on an error status unless
        ``check`` is false, ``httpx.HTTPError`` when no answer came."""
        headers = {"X-Vault-Token": self.token.reveal()} if self.token else None
        response = self._http.request(method, self._url(path), json=body, headers=headers)
        answer = _json_object(response)
        if check and response.is_error:
            errors = answer.get("errors")
            texts = [str(e)[:200] for e in errors] if isinstance(errors, list) else []
            raise VaultHTTPError(response.status_code, method, path, texts)
        return answer

    def _url(self, path: str) -> httpx.URL:
        """``<url>/v1/<path>``, parsed once per path: a rotation asks for a key's two records
        about ten times, and parsing and joining a URL was a fifth of a request's CPU."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= URLS_KEPT:
                self._urls.clear()
            url = self._urls[path] = httpx.URL(f"{self._base}/v1/{quote(path, safe='/')}")
        return url

    def close(self) -> None:
        self._http.close()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json() if response.content else {}
    except ValueError:  # a proxy's HTML error page, say
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["VaultHTTP", "VaultHTTPError"]
