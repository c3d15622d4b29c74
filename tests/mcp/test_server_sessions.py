"""`ToolServer` in this process over streamable HTTP: one conversation per MCP session, ended with the session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp import Client
from mcp_types import TextContent

from qwenkit.errors import ConfigError
from qwenkit.mcp.server import ToolServer, http_server
from qwenkit.tools.base import Tool, ToolContext
from qwenkit.types import ToolSpec
from tests.mcp import servers

pytestmark = pytest.mark.timeout(60)


class Counter(Tool):
    """Counts calls per conversation, and records which conversations were ended."""

    spec = ToolSpec(name="count", description="Count calls.", parameters={"type": "object", "properties": {}})

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.ended: list[str] = []

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> str:
        self.counts[ctx.conversation_id] = self.counts.get(ctx.conversation_id, 0) + 1
        return str(self.counts[ctx.conversation_id])

    async def close_conversation(self, conversation_id: str) -> None:
        self.ended.append(conversation_id)


async def count(client: Client) -> str:
    result = await client.call_tool("count", {})
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def test_each_http_session_is_a_conversation_ended_with_the_session() -> None:
    counter = Counter()
    port = servers.free_port()
    web = http_server(ToolServer([counter], transport="http"), port=port)
    serving = asyncio.create_task(web.serve())
    try:
        async with asyncio.timeout(30):
            while not web.started:
                await asyncio.sleep(0.05)
        url = f"http://127.0.0.1:{port}/mcp"
        async with Client(url) as a:
            async with Client(url) as b:
                assert [await count(a), await count(a), await count(b)] == ["1", "2", "1"]
                assert len(counter.counts) == 2 and counter.ended == []
            # b closed its session: its conversation (a kernel, for the code interpreter) was ended.
            async with asyncio.timeout(10):
                while len(counter.ended) < 1:
                    await asyncio.sleep(0.05)
            assert await count(a) == "3"
        async with asyncio.timeout(10):
            while len(counter.ended) < 2:
                await asyncio.sleep(0.05)
        assert sorted(counter.ended) == sorted(counter.counts)
    finally:
        web.should_exit = True
        async with asyncio.timeout(15):
            await serving


def test_duplicate_tool_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="'count' is already registered"):
        ToolServer([Counter(), Counter()])
