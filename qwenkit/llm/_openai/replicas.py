"""Several servers of one model: pick the replica with the fewest requests in flight, rest a failing one.

`OpenAICompatible` holds one `Replica` per URL (each with its own capped HTTP client). `Replicas.pick`
chooses where the next attempt goes: among the replicas not resting and not already failed in this call,
the one with the fewest requests in flight (ties: the one sent the fewest requests so far, so an idle set
is used in turn). A replica that fails (no connection, 429, 5xx) rests for a back-off period that doubles
with each failure in a row (`Replica.failed`) and ends with its next success.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
from openai import AsyncOpenAI

from qwenkit.llm._openai.post import JsonPost

MAX_REST = 60.0
"""Longest rest of a replica that keeps failing, in seconds."""


@dataclass(eq=False)
class Replica:
    """One server URL and its clients and load.

    Attributes:
        url: The OpenAI API root (``.../v1``).
        http: Its HTTP client (capped replies).
        client: The OpenAI SDK client over ``http``.
        post: The fast path of non-streamed chat completions, ``None`` where it cannot reach the server
            (a SOCKS proxy, or an ``https://`` URL through a proxy): then the SDK client serves them too.
        in_flight: Requests sent and not yet answered (streams: until they end).
        sent: Attempts sent to it so far.
        answered: Requests it answered.
        failures: Failures in a row (0 after a success).
        rest_until: Loop time before which it is not picked while another is available.
    """

    url: str
    http: httpx2.AsyncClient
    client: AsyncOpenAI
    post: JsonPost | None = None
    in_flight: int = 0
    sent: int = 0
    answered: int = 0
    failures: int = 0
    rest_until: float = 0.0
    last_error: str = field(default="", repr=False)

    def failed(self, now: float, why: str, base: float, asked: float | None = None) -> None:
        """Rest after a failure: ``base`` doubled per failure in a row (at most `MAX_REST`), or longer if the
        server asked (``Retry-After``)."""
        self.failures += 1
        rest = min(MAX_REST, base * 2 ** (self.failures - 1))
        if asked is not None:
            rest = max(rest, min(asked, MAX_REST))
        self.rest_until = now + rest
        self.last_error = why

    def succeeded(self) -> None:
        self.failures = 0
        self.rest_until = 0.0
        self.answered += 1


class Replicas:
    """The replicas of one model and the rule that spreads requests over them."""

    def __init__(self, replicas: Sequence[Replica]) -> None:
        self.all = tuple(replicas)

    def __len__(self) -> int:
        return len(self.all)

    def pick(self, now: float, skip: Collection[Replica] = ()) -> Replica | None:
        """The replica for the next attempt, or ``None`` when every one is in ``skip``.

        A resting replica is picked only when every other one not skipped rests too: then the one whose
        rest ends first (a probe, so a call does not fail while a recovered server could answer).
        """
        best: Replica | None = None
        best_key: tuple[Any, ...] = ()
        for r in self.all:
            if r in skip:
                continue
            resting = r.rest_until > now
            key = (resting, r.rest_until if resting else 0.0, r.in_flight, r.sent)
            if best is None or key < best_key:
                best, best_key = r, key
        return best

    def names(self, replicas: Sequence[Replica] | None = None) -> str:
        return ", ".join(r.url for r in (self.all if replicas is None else replicas))


def served_models(value: Any) -> dict[str, int | None] | None:
    """Model ids a ``/v1/models`` body lists, each with its ``max_model_len`` (vLLM) when given.

    ``None`` when the body is not a model list (a server without the endpoint, a proxy page).
    """
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        return None
    models: dict[str, int | None] = {}
    for entry in value["data"][:1000]:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            length = entry.get("max_model_len")
            ok = isinstance(length, int) and not isinstance(length, bool) and 0 < length < 2**40
            models[entry["id"][:500]] = length if ok else None
    return models
