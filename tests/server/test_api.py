"""API tests of the agent server through httpx's ASGI transport, with scripted models (no sandbox)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from qwenkit import Agent
from qwenkit.errors import ConfigError
from qwenkit.llm.base import ChatRequest
from qwenkit.server import ServerSettings, create_app
from qwenkit.testing import FunctionModel, ScriptedModel
from qwenkit.tools.builtin.code_interpreter import CodeInterpreter
from tests.sandbox.helpers import descendant_kernel_processes
from tests.server.helpers import BASE, client_for, parse_sse

pytestmark = pytest.mark.timeout(60)


def scripted(*replies: str, tools: Any = ()) -> Any:
    return lambda: Agent(ScriptedModel(list(replies)), tools=list(tools), format="qwen")


class Gate:
    """A model whose first reply waits for `release` (and notes whether it was cancelled)."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.release = asyncio.Event()
        self.waiting = asyncio.Event()
        self.cancelled = False

    async def __call__(self, request: ChatRequest) -> str:
        reply = self.replies.pop(0)
        if reply == "WAIT":
            self.waiting.set()
            try:
                await asyncio.wait_for(self.release.wait(), 30)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
            reply = self.replies.pop(0)
        return reply


async def test_turn_streams_typed_events_in_order_with_ids() -> None:
    app = create_app(scripted("Hello **world**, 你好"))
    async with client_for(app) as client:
        conv = (await client.post("/api/conversations", json={"title": "t"})).json()
        r = await client.post(f"/api/conversations/{conv['id']}/turns", json={"prompt": "hi"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(r.text)
        ids = [i for i, _, _ in events]
        assert ids == list(range(1, len(events) + 1))
        kinds = [k for _, k, _ in events]
        assert kinds[:2] == ["turn_started", "run_started"]
        assert kinds[-4:] == ["assistant_turn", "final_answer", "run_finished", "turn_ended"]
        assert set(kinds[2:-4]) == {"text_delta"}
        assert "".join(d["text"] for _, k, d in events if k == "text_delta") == "Hello **world**, 你好"
        assert all(d["type"] == k for _, k, d in events)
        assert events[-1][2]["status"] == "completed"
        got = (await client.get(f"/api/conversations/{conv['id']}")).json()
        assert [m["role"] for m in got["messages"]] == ["user", "assistant"]
        assert got["messages"][1]["content"] == "Hello **world**, 你好"
        assert [e["id"] for e in got["events"]] == ids
        assert [e["id"] for e in (await client.get(f"/api/conversations/{conv['id']}?after=5")).json()["events"]] \
            == ids[5:]


async def test_history_carries_over_between_turns() -> None:
    model = ScriptedModel(["first answer", "second answer"])
    app = create_app(lambda: Agent(model, format="qwen"))
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        await client.post(f"/api/conversations/{cid}/turns", json={"prompt": "one"})
        await client.post(f"/api/conversations/{cid}/turns", json={"prompt": "two"})
        contents = [m.content for m in model.requests[1].messages]
        assert "one" in contents[0] and "first answer" in contents[1] and "two" in contents[2]
        got = (await client.get(f"/api/conversations/{cid}")).json()
        assert [e["id"] for e in got["events"]] == list(range(1, len(got["events"]) + 1))
        assert got["title"] == "one"


async def test_create_list_delete_removes_the_transcript(tmp_path: Path) -> None:
    app = create_app(scripted("ok"), ServerSettings(data_dir=tmp_path))
    async with client_for(app) as client:
        a = (await client.post("/api/conversations", json={"title": "A"})).json()
        b = (await client.post("/api/conversations")).json()
        listed = [c["id"] for c in (await client.get("/api/conversations")).json()["conversations"]]
        assert set(listed) == {a["id"], b["id"]}
        await client.post(f"/api/conversations/{a['id']}/turns", json={"prompt": "hi"})
        transcript = tmp_path / "transcripts" / f"{a['id']}.jsonl"
        assert '"run_started"' in transcript.read_text()
        assert (await client.delete(f"/api/conversations/{a['id']}")).status_code == 204
        assert not transcript.exists()
        assert (await client.get(f"/api/conversations/{a['id']}")).status_code == 404
        assert [c["id"] for c in (await client.get("/api/conversations")).json()["conversations"]] == [b["id"]]


async def test_second_turn_while_one_runs_is_409_and_stop_cancels_the_model_call() -> None:
    gate = Gate(["WAIT", "never sent"])
    app = create_app(lambda: Agent(FunctionModel(gate), format="qwen"))
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        first = asyncio.create_task(client.post(f"/api/conversations/{cid}/turns", json={"prompt": "slow"}))
        await asyncio.wait_for(gate.waiting.wait(), 10)
        second = await client.post(f"/api/conversations/{cid}/turns", json={"prompt": "again"})
        assert second.status_code == 409 and "running" in second.json()["error"]
        assert (await client.post(f"/api/conversations/{cid}/stop")).json() == {"stopped": True}
        events = parse_sse((await asyncio.wait_for(first, 10)).text)
        assert [k for _, k, _ in events][-2:] == ["turn_stopped", "turn_ended"]
        assert events[-1][2]["status"] == "stopped"
        assert gate.cancelled
        got = (await client.get(f"/api/conversations/{cid}")).json()
        assert got["running"] is False and [m["role"] for m in got["messages"]] == ["user"]
        assert (await client.post(f"/api/conversations/{cid}/stop")).json() == {"stopped": False}


async def test_a_turn_after_a_stopped_one_runs_with_its_history() -> None:
    gate = Gate(["WAIT", "unused", "after the stop"])
    model = FunctionModel(gate)
    app = create_app(lambda: Agent(model, format="qwen"))
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        first = asyncio.create_task(client.post(f"/api/conversations/{cid}/turns", json={"prompt": "slow"}))
        await asyncio.wait_for(gate.waiting.wait(), 10)
        await client.post(f"/api/conversations/{cid}/stop")
        await first
        gate.replies = ["after the stop"]
        r = await client.post(f"/api/conversations/{cid}/turns", json={"prompt": "next"})
        assert parse_sse(r.text)[-1][2]["status"] == "completed"
        assert [m.content for m in model.requests[-1].messages if m.role == "user"][-2:] == ["slow", "next"]


async def test_unknown_conversation_is_404_on_every_route() -> None:
    app = create_app(scripted(), )
    async with client_for(app) as client:
        missing = "/api/conversations/0123456789abcdef"
        for method, path, kwargs in [
            ("GET", missing, {}), ("DELETE", missing, {}), ("POST", f"{missing}/turns", {"json": {"prompt": "x"}}),
            ("GET", f"{missing}/events", {}), ("POST", f"{missing}/stop", {}), ("POST", f"{missing}/restart", {}),
            ("GET", f"{missing}/files", {}), ("PUT", f"{missing}/files/a.txt", {"content": b"x"}),
            ("GET", f"{missing}/files/a.txt", {}), ("GET", f"{missing}/figures/1", {}),
        ]:
            r = await client.request(method, path, **kwargs)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["error"] == "no such conversation"


async def test_malformed_bodies_are_422_naming_the_field() -> None:
    app = create_app(scripted())
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        turns = f"/api/conversations/{cid}/turns"
        r = await client.post(turns, json={})
        assert r.status_code == 422 and "body.prompt" in r.json()["error"]
        assert r.json()["detail"][0]["loc"] == ["body", "prompt"]
        r = await client.post(turns, json={"prompt": "x", "extra": 1})
        assert r.status_code == 422 and "body.extra" in r.json()["error"]
        r = await client.post(turns, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["error"].startswith("body: not valid JSON")
        r = await client.post(turns, json={"prompt": ""})
        assert r.status_code == 422 and "body.prompt" in r.json()["error"]
        r = await client.post("/api/conversations", json={"title": 5})
        assert r.status_code == 422 and "body.title" in r.json()["error"]
        r = await client.post("/v1/chat/completions", json={"messages": []})
        assert r.status_code == 422 and "body.messages" in r.json()["error"]
        r = await client.post("/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]})
        assert r.status_code == 422 and "body.messages.0.role" in r.json()["error"]
        r = await client.get(f"/api/conversations/{cid}/events", headers={"Last-Event-ID": "abc"})
        assert r.status_code == 422 and "Last-Event-ID" in r.json()["error"]
        # None of these started a turn.
        assert (await client.get(f"/api/conversations/{cid}")).json()["events"] == []


async def test_oversized_bodies_are_413_and_start_no_kernel() -> None:
    interp = CodeInterpreter(pool_size=0)
    settings = ServerSettings(max_upload_bytes=1000, max_body_bytes=2048)
    app = create_app(lambda: Agent(ScriptedModel([]), tools=[interp], format="qwen"), settings)
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        r = await client.put(f"/api/conversations/{cid}/files/big.csv", content=b"x" * 1001)
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: cut off while streaming
            for _ in range(10):
                yield b"y" * 400

        r = await client.put(f"/api/conversations/{cid}/files/big.csv", content=chunked())
        assert r.status_code == 413
        r = await client.post(f"/api/conversations/{cid}/turns", json={"prompt": "x" * 3000})
        assert r.status_code == 413
        assert interp._sessions == {} and descendant_kernel_processes() == []


async def raw_status(app: Any, method: str, path: str, body: bytes = b"") -> int:
    """Send a request with exactly this (decoded) path, as a server would pass it, bypassing URL clean-up."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "surrogateescape"), "query_string": b"",
             "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent = False
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


@pytest.mark.parametrize("name", ["../etc/passwd", "..", "a/../../b", "./x", "/etc/passwd", "a\\..\\b", "x\x00y",
                                  "a//b", "\n"])
async def test_path_traversal_in_file_names_is_refused(name: str) -> None:
    interp = CodeInterpreter(pool_size=0)
    app = create_app(lambda: Agent(ScriptedModel([]), tools=[interp], format="qwen"))
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        base = f"/api/conversations/{cid}/files/"
        put = await raw_status(app, "PUT", base + name, b"data")
        get = await raw_status(app, "GET", base + name)
        assert (put, get) == (400, 400)
        assert interp._sessions == {}  # refused before any kernel was asked
        if ".." in name:  # through a normal client too (which cleans the URL up): never a success
            r = await client.put(base + name, content=b"data")
            assert r.status_code in (400, 404, 405), r.text
            assert interp._sessions == {}


async def test_upload_names_with_folders_are_refused_but_download_paths_may_have_them() -> None:
    interp = CodeInterpreter(pool_size=0)
    app = create_app(lambda: Agent(ScriptedModel([]), tools=[interp], format="qwen"))
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        r = await client.put(f"/api/conversations/{cid}/files/dir/name.csv", content=b"x")
        assert r.status_code == 400 and "not an allowed file name" in r.json()["error"]
        # A download of a nested path is allowed by name; with no sandbox used yet there is no such file.
        assert (await client.get(f"/api/conversations/{cid}/files/dir/name.csv")).status_code == 404
        assert interp._sessions == {}


async def test_ownership_by_key_and_401_without_one() -> None:
    settings = ServerSettings(api_keys=("key-one", "key-two"))
    app = create_app(scripted("mine"), settings)
    async with client_for(app, key="key-one") as one:
        two = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                headers={"X-API-Key": "key-two"})
        anon = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        async with two, anon:
            cid = (await one.post("/api/conversations")).json()["id"]
            await one.post(f"/api/conversations/{cid}/turns", json={"prompt": "hi"})
            assert (await two.get(f"/api/conversations/{cid}")).status_code == 404
            assert (await two.delete(f"/api/conversations/{cid}")).status_code == 404
            assert (await two.post(f"/api/conversations/{cid}/turns", json={"prompt": "x"})).status_code == 404
            assert (await two.get("/api/conversations")).json()["conversations"] == []
            assert (await one.get(f"/api/conversations/{cid}")).status_code == 200
            for client, path in [(anon, "/api/conversations"), (anon, f"/api/conversations/{cid}"),
                                 (anon, "/v1/models"), (anon, "/api/info")]:
                r = await client.get(path)
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            bad = await anon.get("/api/conversations", headers={"Authorization": "Bearer key-three"})
            assert bad.status_code == 401
            page = await anon.get("/")
            assert page.status_code == 200 and "<textarea" in page.text
            assert (await anon.get("/static/app.js")).status_code == 200


async def test_public_bind_needs_a_key_and_checks_it_on_every_request() -> None:
    with pytest.raises(ConfigError, match="API key"):
        create_app(scripted(), ServerSettings(host="0.0.0.0"))
    app = create_app(scripted(), ServerSettings(host="0.0.0.0", api_keys=("secret",)))
    async with client_for(app) as anon:
        assert (await anon.post("/api/conversations")).status_code == 401
        assert (await anon.post("/v1/chat/completions", json={"messages": []})).status_code == 401
        ok = await anon.post("/api/conversations", headers={"Authorization": "Bearer secret"})
        assert ok.status_code == 201


async def test_loopback_server_refuses_foreign_hosts_and_origins() -> None:
    app = create_app(scripted("x"))
    async with client_for(app) as client:
        r = await client.get("/api/conversations", headers={"Host": "evil.example"})
        assert r.status_code == 403
        r = await client.post("/api/conversations", headers={"Origin": "http://evil.example"})
        assert r.status_code == 403
        r = await client.post("/api/conversations", headers={"Origin": BASE})
        assert r.status_code == 201
        page = await client.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]


async def test_openai_client_talks_to_the_agent_stream_and_not() -> None:
    model = ScriptedModel(["The answer is 42.", "Streamed 答案."])
    app = create_app(lambda: Agent(model, format="qwen"))
    async with client_for(app) as client:
        # openai 3 annotates its client as httpx2's; an httpx client (here on the ASGI app) works the same.
        openai = AsyncOpenAI(base_url=f"{BASE}/v1", api_key="unused",
                             http_client=client)  # pyright: ignore[reportArgumentType]
        reply = await openai.chat.completions.create(
            model="anything", messages=[{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "question?"}])
        assert reply.choices[0].message.content == "The answer is 42."
        assert reply.choices[0].finish_reason == "stop"
        assert [m.role for m in model.requests[0].messages][:2] == ["system", "user"]
        stream = await openai.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": [{"type": "text", "text": "again"}]}])
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Streamed 答案."
        models = await openai.models.list()
        assert [m.id for m in models.data] == ["scripted"]
