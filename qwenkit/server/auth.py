"""Who is calling: API keys on every request, owners of conversations, and cross-site refusals."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qwenkit.server.settings import LOOPBACK_NAMES, ServerSettings

PUBLIC_PATHS = ("/", "/favicon.ico")
"""Served without a key: the page itself holds no data (it asks for the key, then sends it)."""
PUBLIC_PREFIX = "/static/"

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def owner_of(key: str) -> str:
    """The owner id of a key (a hash: keys are not kept in conversations)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def presented_key(scope: Scope) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    auth = _header(scope, b"authorization")
    if auth is not None and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return _header(scope, b"x-api-key")


class AccessMiddleware:
    """Checks every HTTP request before the app sees it and adds the security headers to every answer.

    - With keys (always on a public bind), each request but the page and its static files must carry one
      (401 otherwise); its owner id goes to ``scope["state"]["owner"]``.
    - Without keys (loopback only), the ``Host`` must be a loopback name, which refuses DNS-rebinding
      pages that point a public name at 127.0.0.1.
    - A request sent by a page of another origin (``Origin`` differs from ``Host``) is refused, so another
      site open in the same browser cannot drive the agent.
    """

    def __init__(self, app: ASGIApp, settings: ServerSettings) -> None:
        self.app = app
        self.keys = tuple(settings.api_keys)
        self.requires_key = settings.requires_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        host = (_header(scope, b"host") or "").lower()
        if not self.requires_key and _hostname(host) not in LOOPBACK_NAMES:
            await _deny(send, 403, "this server answers only requests to a loopback address")
            return
        origin = _header(scope, b"origin")
        if origin is not None and origin != "null" and urlsplit(origin).netloc.lower() != host:
            await _deny(send, 403, "cross-origin requests are refused")
            return
        owner = ""
        if self.requires_key and not (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)):
            key = presented_key(scope)
            match = next((k for k in self.keys if key is not None and hmac.compare_digest(
                k.encode("utf-8", "surrogatepass"), key.encode("utf-8", "surrogatepass"))), None)
            if match is None:
                await _deny(send, 401, "a valid API key is required (Authorization: Bearer KEY)",
                            [(b"www-authenticate", b"Bearer")])
                return
            owner = owner_of(match)
        scope.setdefault("state", {})["owner"] = owner

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _deny(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *SECURITY_HEADERS, *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
