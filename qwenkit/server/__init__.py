"""The agent HTTP server and its web chat: ``qwenkit serve``.

`create_app` builds the ASGI app around an agent factory; `ServerSettings` holds the bind address, API
keys and limits. See `qwenkit.server.app` for the routes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qwenkit.server.settings import ServerSettings

if TYPE_CHECKING:
    from qwenkit.server.app import AgentFactory, AgentServer, create_app

_FROM_APP = frozenset({"AgentFactory", "AgentServer", "create_app"})


def __getattr__(name: str) -> Any:
    # The app needs starlette; importing it lazily keeps `qwenkit.server.cli` (and the ``qwenkit``
    # command) importable where the server's dependencies are not installed.
    if name in _FROM_APP:
        from qwenkit.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'qwenkit.server' has no attribute {name!r}")


__all__ = ["AgentFactory", "AgentServer", "ServerSettings", "create_app"]
