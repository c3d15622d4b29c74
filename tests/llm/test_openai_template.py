"""`OpenAICompatible.template_info` and `count_tokens` against scripted servers with and without vLLM's endpoints."""

from __future__ import annotations

import json
from typing import Any

from qwenkit.llm import OpenAICompatible
from qwenkit.llm.template_info import PROBE_TOOL, CountsTokens, DescribesTemplate
from tests.llm.stub_server import Reply, StubServer


def render(body: dict[str, Any]) -> str:
    """A Qwen3-like template: tools in the system turn, calls as <tool_call>, a thinking switch."""
    out = ""
    if body.get("tools"):
        out += "<|im_start|>system\n<tools>" + json.dumps(body["tools"]) + "</tools><|im_end|>\n"
    for m in body["messages"]:
        out += f"<|im_start|>{m['role']}\n{m.get('content', '')}"
        for c in m.get("tool_calls") or []:
            out += f"<tool_call>\n{json.dumps(c['function'])}\n</tool_call>"
        out += "<|im_end|>\n"
    if body.get("add_generation_prompt"):
        out += "<|im_start|>assistant\n"
        if (body.get("chat_template_kwargs") or {}).get("enable_thinking") is False:
            out += "<think>\n\n</think>\n\n"
    return out


def tokenize(body: dict[str, Any]) -> Reply:
    tokens = [ord(ch) for ch in render(body)]
    return Reply(body={"count": len(tokens), "max_model_len": 4096, "tokens": tokens, "token_strs": None})


def detokenize(body: dict[str, Any]) -> Reply:
    return Reply(body={"prompt": "".join(chr(t) for t in body["tokens"])})


MODELS = Reply(body={"object": "list", "data": [{"id": "qwen3", "object": "model", "max_model_len": 8192}]})
VLLM = {"/v1/models": MODELS, "/tokenize": tokenize, "/detokenize": detokenize}
NOT_FOUND = Reply(404, {"detail": "Not Found"})


def model(server: StubServer, **kw: Any) -> OpenAICompatible:
    return OpenAICompatible("qwen3", server.base_url, max_retries=0, **kw)


async def test_a_vllm_like_server_renders_the_probe_once() -> None:
    async with StubServer([], routes=dict(VLLM)) as srv:
        m = model(srv)
        assert isinstance(m, DescribesTemplate) and isinstance(m, CountsTokens)
        info = await m.template_info()
        again = await m.template_info()
    assert info is not None and again is info
    assert info.source == f"vLLM /tokenize at http://127.0.0.1:{srv.port}"
    assert info.max_input_tokens == 8192 and info.thinking is True
    assert info.probe_render is not None
    assert '<tool_call>\n{"name": "qwenkit_probe_tool", "arguments": "{\\"probe_arg\\": \\"qwenkit_probe_value\\"}"}' \
        in info.probe_render
    assert "qwenkit probe result" in info.probe_render
    paths = [p for p, _ in srv.route_hits]
    assert paths.count("/v1/models") == 1 and paths.count("/detokenize") == 1  # cached: asked once
    probe = next(b for p, b in srv.route_hits if p == "/tokenize")
    assert probe["tools"] == [PROBE_TOOL] and probe["add_generation_prompt"] is False and probe["model"] == "qwen3"
    assert not srv.requests  # no chat completion was asked for


async def test_a_template_without_the_thinking_switch_says_so() -> None:
    def no_switch(body: dict[str, Any]) -> Reply:
        return tokenize({**body, "chat_template_kwargs": None})

    async with StubServer([], routes={**VLLM, "/tokenize": no_switch}) as srv:
        info = await model(srv).template_info()
    assert info is not None and info.thinking is False


async def test_a_server_without_tokenize_gives_none() -> None:
    routes = {"/v1/models": Reply(body={"object": "list", "data": [{"id": "qwen3"}]}), "/tokenize": NOT_FOUND}
    async with StubServer([], routes=routes) as srv:
        m = model(srv)
        info = await m.template_info()
        count = await m.count_tokens([{"role": "user", "content": "hi"}], None)
    assert info is None and count is None
    assert [p for p, _ in srv.route_hits] == ["/v1/models", "/tokenize"]  # count_tokens did not ask again


async def test_only_the_context_length_when_that_is_all_the_server_shows() -> None:
    routes = {"/v1/models": MODELS, "/tokenize": NOT_FOUND}
    async with StubServer([], routes=routes) as srv:
        info = await model(srv).template_info()
    assert info is not None and info.probe_render is None and info.max_input_tokens == 8192
    assert info.source == f"/v1/models at {srv.base_url}"


async def test_an_openai_like_server_that_answers_404_everywhere_gives_none() -> None:
    async with StubServer([], default=NOT_FOUND) as srv:
        assert await model(srv).template_info() is None


async def test_hostile_tokenize_replies_read_as_unknown() -> None:
    replies = {"/v1/models": Reply(body={"data": "nonsense"}),
               "/tokenize": Reply(body={"tokens": ["a", None], "count": -1}),
               "/detokenize": Reply(raw=b"\xff\xfe", content_type="application/json")}
    async with StubServer([], routes=replies) as srv:
        m = model(srv)
        assert await m.template_info() is None
        assert await m.count_tokens([{"role": "user", "content": "hi"}], None) is None


async def test_a_server_that_stalls_is_given_up_on_within_the_probe_timeout() -> None:
    async with StubServer([], routes={"/v1/models": Reply(never=True)}) as srv:
        m = model(srv, probe_timeout=0.3)
        assert await m.template_info() is None


async def test_a_dead_server_gives_none() -> None:
    async with StubServer([]) as srv:
        url = srv.base_url
    m = OpenAICompatible("qwen3", url, probe_timeout=2)
    assert await m.template_info() is None
    assert await m.count_tokens([{"role": "user", "content": "hi"}], None) is None


async def test_count_tokens_renders_the_conversation_and_tools_with_the_generation_prompt() -> None:
    messages = [{"role": "user", "content": "what is 2+2?"}]
    tools = [PROBE_TOOL]
    async with StubServer([], routes=dict(VLLM)) as srv:
        count = await model(srv).count_tokens(messages, tools)
    body = srv.route_hits[-1][1]
    assert body == {"model": "qwen3", "messages": messages, "add_generation_prompt": True, "tools": tools}
    assert count == len(render(body))
