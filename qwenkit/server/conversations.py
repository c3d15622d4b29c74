"""Conversations held by the server: their history, their numbered events, and who owns them."""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qwenkit.types import Message

TURN_ENDED = "turn_ended"
"""Type of the server event that closes every turn (after the agent's own ``run_finished``)."""

HEARTBEAT_S = 15.0
"""Seconds between keep-alive comments on an idle event stream."""


@dataclass(frozen=True)
class StoredEvent:
    """One event of a conversation, numbered; ``data`` is its JSON object (with ``type``)."""

    id: int
    data: dict[str, Any]


@dataclass
class Conversation:
    """A conversation: the messages so far, every event with its id, and the turn running now.

    Event ids count up from 1 over all the conversation's turns, so a client that lost its stream can
    ask for the events after the last id it saw (``Last-Event-ID``).
    """

    id: str
    owner: str
    title: str
    transcript: Path
    max_events: int
    created_at: float = field(default_factory=time.time)
    history: list[Message] = field(default_factory=list)
    events: list[StoredEvent] = field(default_factory=list)
    figures: dict[int, str] = field(default_factory=dict)
    uploads: list[str] = field(default_factory=list)
    sandbox_used: bool = False
    task: asyncio.Task[None] | None = None
    last_id: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        """Whether a turn is running now."""
        return self.task is not None and not self.task.done()

    def append(self, data: dict[str, Any]) -> StoredEvent | None:
        """Number ``data``, keep it and wake the streams waiting for it.

        Returns ``None`` (and keeps nothing) for a text delta once ``max_events`` are held: the
        ``assistant_turn`` that follows carries the whole reply, so memory stays bounded.
        """
        if len(self.events) >= self.max_events and _is_delta(data):
            return None
        self.last_id += 1
        event = StoredEvent(self.last_id, data)
        self.events.append(event)
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()
        return event

    def after(self, last_id: int) -> list[StoredEvent]:
        """The events with an id above ``last_id``."""
        start = bisect.bisect_right(self.events, last_id, key=lambda e: e.id)
        return self.events[start:]

    async def follow(self, last_id: int, *, until_turn_end: bool) -> AsyncIterator[StoredEvent | None]:
        """Yield the events after ``last_id``, then new ones as they come (``None``: a heartbeat is due).

        Ends once caught up while no turn runs, or (``until_turn_end``) after a ``turn_ended`` event.
        """
        cursor = last_id
        while True:
            wake = self._wake
            for event in self.after(cursor):
                cursor = event.id
                yield event
                if until_turn_end and event.data.get("type") == TURN_ENDED:
                    return
            if not self.running and not self.after(cursor):
                return
            try:
                await asyncio.wait_for(wake.wait(), HEARTBEAT_S)
            except TimeoutError:
                yield None

    def summary(self) -> dict[str, Any]:
        """What the conversation list shows."""
        return {"id": self.id, "title": self.title, "created_at": self.created_at, "running": self.running,
                "last_event_id": self.last_id}


def _is_delta(data: dict[str, Any]) -> bool:
    if data.get("type") == "text_delta":
        return True
    inner = data.get("event")
    return data.get("type") == "nested" and isinstance(inner, dict) and inner.get("type") == "text_delta"


class ConversationStore:
    """The server's conversations, each visible only to the key (owner) that created it."""

    def __init__(self, transcripts: Path, max_events: int, max_per_owner: int) -> None:
        self.transcripts = transcripts
        self.max_events = max_events
        self.max_per_owner = max_per_owner
        self._items: dict[str, Conversation] = {}

    def create(self, owner: str, title: str) -> Conversation | None:
        """A new conversation, or ``None`` when ``owner`` already holds ``max_per_owner``."""
        if sum(1 for c in self._items.values() if c.owner == owner) >= self.max_per_owner:
            return None
        cid = uuid.uuid4().hex
        conv = Conversation(id=cid, owner=owner, title=title, transcript=self.transcripts / f"{cid}.jsonl",
                            max_events=self.max_events)
        self._items[cid] = conv
        return conv

    def get(self, cid: str, owner: str) -> Conversation | None:
        """The conversation if it exists and belongs to ``owner`` (another key's reads as missing)."""
        conv = self._items.get(cid)
        return conv if conv is not None and conv.owner == owner else None

    def list(self, owner: str) -> list[Conversation]:
        """``owner``'s conversations, newest first."""
        return sorted((c for c in self._items.values() if c.owner == owner), key=lambda c: -c.created_at)

    def remove(self, cid: str) -> Conversation | None:
        """Forget a conversation; returns it."""
        return self._items.pop(cid, None)

    def all(self) -> list[Conversation]:
        """Every conversation (for shutdown)."""
        return list(self._items.values())
