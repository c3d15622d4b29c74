"""Side endpoints of a model server: ``/v1/models`` (names, context length) and vLLM's ``/tokenize``.

vLLM renders a conversation with the model's own chat template on request (``POST /tokenize`` with
``messages`` and ``tools``, at the server root, not under ``/v1``) and turns tokens back into text
(``POST /detokenize``); that shows what the template does with tools and thinking without its text. Other
servers (llama.cpp's, OpenAI) lack these endpoints: every function here then returns ``None``, never raises.
Replies are untrusted: each call has a time limit, the body a byte cap (the client's transport), and
anything unexpected reads as "not known".
"""

from __future__ import annotations

import json
from typing import Any

import httpx2

from qwenkit._untrusted import clean_text
from qwenkit.errors import ModelError
from qwenkit.llm._openai.replicas import served_models
from qwenkit.llm._openai.reply import decode_json
from qwenkit.llm.template_info import PROBE_MESSAGES, PROBE_TOOL

THINKING_PROBE: list[dict[str, Any]] = [{"role": "user", "content": "qwenkit probe question"}]
"""Rendered with a generation prompt and ``enable_thinking`` on, then off: Qwen3's template differs."""


class Unreachable(Exception):
    """The server did not answer at all (no connection, timeout, 5xx): a reason for the caller."""


def server_root(base_url: str) -> str:
    """The server's root URL: ``base_url`` without a trailing ``/v1`` (where vLLM serves ``/tokenize``)."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def wire_probe() -> list[dict[str, Any]]:
    """`PROBE_MESSAGES` as OpenAI messages: call arguments as a JSON string, as the API expects."""
    out = []
    for message in PROBE_MESSAGES:
        m = dict(message)
        if "tool_calls" in m:
            m["tool_calls"] = [{**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"])}}
                               for c in m["tool_calls"]]
        out.append(m)
    return out


async def call_json(http: httpx2.AsyncClient, method: str, url: str, headers: dict[str, str], timeout: float,
                    body: dict[str, Any] | None = None) -> Any:
    """One JSON request; the decoded body when the server answered 200 with JSON, else ``None``.

    Raises:
        Unreachable: No connection, a timeout or a 5xx (a server that is down, not one without the endpoint).
    """
    try:
        response = await http.request(method, url, json=body, headers=headers, timeout=timeout)
        try:
            data = await response.aread()
        finally:
            await response.aclose()
    except ModelError as err:  # the byte cap or a compressed reply
        raise Unreachable(str(err)) from None
    except httpx2.HTTPError as err:
        raise Unreachable(f"{type(err).__name__}: {str(err)[:300]}") from None
    if response.status_code >= 500:
        raise Unreachable(f"HTTP {response.status_code}")
    if response.status_code != 200:
        return None
    try:
        return decode_json(data, url)
    except ModelError:
        return None


async def models(http: httpx2.AsyncClient, base_url: str, headers: dict[str, str],
                 timeout: float) -> dict[str, int | None] | None:
    """The models ``GET {base_url}/models`` lists, each with its context length; ``None`` if it lists none.

    Raises:
        Unreachable: The server did not answer.
    """
    return served_models(await call_json(http, "GET", base_url.rstrip("/") + "/models", headers, timeout))


async def tokenize(http: httpx2.AsyncClient, root: str, headers: dict[str, str], timeout: float,
                   body: dict[str, Any]) -> tuple[list[int], int] | None:
    """vLLM's chat ``/tokenize``: the prompt's token ids and count, or ``None`` without the endpoint."""
    value = await call_json(http, "POST", root + "/tokenize", headers, timeout, body)
    if not isinstance(value, dict):
        return None
    tokens, count = value.get("tokens"), value.get("count")
    if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
        return None
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        count = len(tokens)
    return tokens, count


async def detokenize(http: httpx2.AsyncClient, root: str, headers: dict[str, str], timeout: float,
                     model: str, tokens: list[int]) -> str | None:
    """vLLM's ``/detokenize``: the text of ``tokens``, or ``None`` without the endpoint."""
    value = await call_json(http, "POST", root + "/detokenize", headers, timeout, {"model": model, "tokens": tokens})
    if not isinstance(value, dict) or not isinstance(value.get("prompt"), str):
        return None
    return clean_text(value["prompt"])[0]


def probe_body(model: str) -> dict[str, Any]:
    """The ``/tokenize`` request that renders the probe conversation (no generation prompt)."""
    return {"model": model, "messages": wire_probe(), "tools": [PROBE_TOOL], "add_generation_prompt": False}


def thinking_body(model: str, enabled: bool) -> dict[str, Any]:
    """A ``/tokenize`` request rendering one user turn and the generation prompt with thinking on or off."""
    return {"model": model, "messages": THINKING_PROBE, "add_generation_prompt": True,
            "chat_template_kwargs": {"enable_thinking": enabled}}
