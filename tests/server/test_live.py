"""The server on a real uvicorn socket: a client that drops its stream mid-turn re-attaches with Last-Event-ID."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from qwenkit import Agent
from qwenkit.llm.base import ChatRequest
from qwenkit.server import create_app
from qwenkit.testing import FunctionModel
from qwenkit.tools import tool
from tests.server.helpers import live_server, parse_sse

pytestmark = pytest.mark.timeout(60)


def test_disconnect_does_not_stop_the_turn_and_reattach_gets_the_missed_events() -> None:
    release = threading.Event()

    @tool
    async def wait_for_release() -> str:
        """Wait until the test lets go."""
        await asyncio.to_thread(release.wait, 30)
        return "released"

    def reply(request: ChatRequest) -> str:
        if request.messages[-1].role == "user":
            return "Calling.\n✿FUNCTION✿: wait_for_release\n✿ARGS✿: {}"
        return "finished after the disconnect"

    app = create_app(lambda: Agent(FunctionModel(reply), tools=[wait_for_release], format="qwen"))
    with live_server(app) as base, httpx.Client(base_url=base, timeout=20) as client:
        cid = client.post("/api/conversations").json()["id"]
        seen: list[tuple[int, str]] = []
        with client.stream("POST", f"/api/conversations/{cid}/turns", json={"prompt": "go"}) as r:
            assert r.status_code == 200
            block: list[str] = []
            for line in r.iter_lines():
                if line:
                    block.append(line)
                    continue
                (ident, kind, _), = parse_sse("\n".join(block))
                block = []
                assert ident is not None
                seen.append((ident, kind))
                if kind == "tool_call":
                    break  # the client goes away mid-turn
        assert [i for i, _ in seen] == list(range(1, len(seen) + 1))
        assert client.get(f"/api/conversations/{cid}").json()["running"] is True
        release.set()
        last = seen[-1][0]
        r = client.get(f"/api/conversations/{cid}/events", headers={"Last-Event-ID": str(last)})
        missed = parse_sse(r.text)
        assert [i for i, _, _ in missed] == list(range(last + 1, last + 1 + len(missed)))
        kinds = [k for _, k, _ in missed]
        assert kinds[0] == "tool_result" and kinds[-2:] == ["run_finished", "turn_ended"]
        assert missed[-2][2]["result"]["answer"] == "finished after the disconnect"
        # The whole turn, from the start, is still there for a client that lost everything.
        everything = parse_sse(client.get(f"/api/conversations/{cid}/events").text)
        assert [k for _, k, _ in everything][: len(seen)] == [k for _, k in seen]
        assert len(everything) == last + len(missed)
