"""`ServerSettings`: where the agent server listens, who may use it, and its size limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from qwenkit.errors import ConfigError

MiB = 1024 * 1024

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseModel):
    """Settings of the agent HTTP server.

    Attributes:
        host: Address to bind. Anything but a loopback address needs ``api_keys``.
        port: TCP port.
        api_keys: Keys a client must send (``Authorization: Bearer KEY`` or ``X-API-Key``); a conversation
            belongs to the key that made it. Empty: no key checked (loopback binds only).
        data_dir: Folder for the conversations' transcripts (``None``: a temporary folder removed at
            shutdown).
        max_upload_bytes: Largest file accepted into a conversation's sandbox.
        max_download_bytes: Largest sandbox file served back.
        max_body_bytes: Largest JSON request body.
        max_conversations: Most conversations one key may hold at once.
        max_events: Most events kept in memory per conversation; past it text deltas are no longer kept
            (the turns that follow carry the whole text).
        max_prompt_chars: Longest prompt accepted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    api_keys: tuple[str, ...] = ()
    data_dir: Path | None = None
    max_upload_bytes: int = Field(default=16 * MiB, ge=1)
    max_download_bytes: int = Field(default=4 * MiB, ge=1)
    max_body_bytes: int = Field(default=2 * MiB, ge=1024)
    max_conversations: int = Field(default=200, ge=1)
    max_events: int = Field(default=20_000, ge=100)
    max_prompt_chars: int = Field(default=200_000, ge=1)

    @property
    def requires_key(self) -> bool:
        """Whether every request must carry one of ``api_keys`` (always when keys are set)."""
        return bool(self.api_keys) or not is_loopback(self.host)

    def check(self) -> None:
        """Refuse a public bind without keys, and empty keys.

        Raises:
            ConfigError: The settings would expose the agent (and its code interpreter) to the network.
        """
        if any(not k.strip() for k in self.api_keys):
            raise ConfigError("an API key of the server is empty")
        if not is_loopback(self.host) and not self.api_keys:
            raise ConfigError(
                f"binding to {self.host} exposes the agent to the network; it needs an API key for clients"
            )
