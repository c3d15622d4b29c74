"""`from_qwen_agent`: Qwen-Agent tools (its own package's and ones written against its `BaseTool`) run by a
qwenkit `Agent` with a scripted model."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("qwen_agent") is None:
    pytest.skip("qwen-agent is not installed (extra qwenkit[qwen-agent]; CI installs it)", allow_module_level=True)

from qwen_agent.llm.schema import ContentItem
from qwen_agent.tools import Storage
from qwen_agent.tools.base import TOOL_REGISTRY, BaseTool

from qwenkit import Agent
from qwenkit.agents.events import ToolResultEvent
from qwenkit.errors import ConfigError
from qwenkit.integrations.qwen_agent import from_qwen_agent, observation_from_qwen_agent, parameters_schema
from qwenkit.testing import ScriptedModel
from qwenkit.tools import ToolResult
from qwenkit.types import ToolMessage

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def call(name: str, **args: object) -> str:
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": args})}\n</tool_call>'


class Lookup(BaseTool):
    """A tool in Qwen-Agent's older list-style schema, returning each of Qwen-Agent's result types."""

    name = "lookup"
    description = "Look something up."
    parameters = [  # noqa: RUF012 - Qwen-Agent's own class-attribute style
        {"name": "query", "type": "string", "description": "What to look up.", "required": True},
        {"name": "kind", "type": "str", "enum": ["text", "image", "dict", "fail"], "required": False},
    ]

    def __init__(self, image: Path) -> None:
        super().__init__()
        self.image = image
        self.calls: list[tuple[Any, dict[str, Any], int]] = []

    def call(self, params: str | dict, **kwargs: Any) -> str | list[ContentItem] | dict:
        self.calls.append((params, kwargs, threading.get_ident()))
        args = self._verify_json_format_args(params)
        kind = args.get("kind", "text")
        if kind == "fail":
            raise ValueError(f"nothing found for {args['query']!r}")
        if kind == "image":
            return [ContentItem(text=f"a picture of {args['query']}"), ContentItem(image=str(self.image))]
        if kind == "dict":
            return {"query": args["query"], "hits": 3}
        return f"{args['query']} is a thing"


def test_list_style_parameters_become_a_json_schema() -> None:
    schema = parameters_schema("t", [
        {"name": "city", "type": "string", "description": "A city.", "required": True},
        {"name": "days", "type": "int", "required": False},
        {"name": "tags", "type": "list", "items": {"type": "string"}},
    ])
    assert schema == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "A city."},
            "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["city"],
    }


def test_dict_style_parameters_are_kept_as_a_copy() -> None:
    original = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    schema = parameters_schema("t", original)
    assert schema == original and schema is not original and schema["properties"] is not original["properties"]
    assert parameters_schema("t", []) == {"type": "object", "properties": {}}
    assert parameters_schema("t", {"properties": {}}) == {"type": "object", "properties": {}}


@pytest.mark.parametrize("bad, match", [
    ([{"type": "string"}], "parameter #1"),
    ([{"name": "a"}, {"name": "a"}], "listed twice"),
    ({"type": "string"}, "must describe an object"),
    ({"type": "object", "properties": [], "required": []}, "properties"),
    ({"type": "object", "properties": {}, "required": "a"}, "required"),
    ("query: str", "not str"),
])
def test_a_schema_qwen_agent_would_not_accept_is_a_config_error(bad: Any, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parameters_schema("broken", bad)


def test_a_tool_without_a_name_or_call_is_a_config_error() -> None:
    class Nameless:
        name = ""
        description = ""
        parameters: list[dict[str, Any]] = []  # noqa: RUF012

        def call(self, params: str, **kwargs: Any) -> str:
            return ""

    with pytest.raises(ConfigError, match="has no name"):
        from_qwen_agent(Nameless())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout"):
        from_qwen_agent(Storage({"storage_root_path": "/nonexistent-unused"}), timeout=0)


def test_results_become_text_and_images(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(PNG)
    out = observation_from_qwen_agent([
        ContentItem(text="two images:"), ContentItem(image=f"file://{image}"),
        ContentItem(image="https://example.com/b.png"), {"image": "data:image/png;base64," + "A" * 1000},
        ContentItem(file="/no/such/report.pdf"),
    ])
    assert out.images == [str(image)]  # only a local file is an image qwenkit can keep
    assert out.text.splitlines()[0] == "two images:"
    assert f"![image-1](file://{image})" in out.text and "![image-2](https://example.com/b.png)" in out.text
    assert "[image 3: inline data, " in out.text and "AAAA" not in out.text
    assert "[file 4: /no/such/report.pdf]" in out.text
    assert observation_from_qwen_agent({"a": "ü"}).text == '{"a": "ü"}'
    assert observation_from_qwen_agent(None).text == "null"
    assert observation_from_qwen_agent([1, 2]).text == "[1, 2]"  # a list, but not of content items
    cut = observation_from_qwen_agent("x" * 50, max_chars=10)
    assert cut.text.startswith("x" * 10) and "40 more characters" in cut.text


def test_qwen_agents_own_storage_tool_runs_in_a_qwenkit_agent(tmp_path: Path) -> None:
    before = dict(TOOL_REGISTRY)
    storage = from_qwen_agent(Storage({"storage_root_path": str(tmp_path / "kv")}), sequential=True)
    assert storage.name == "storage" and storage.spec.parameters["required"] == ["operate"]
    model = ScriptedModel([
        call("storage", operate="put", key="/notes/a", value="hello"),
        call("storage", operate="get", key="/notes/a"),
        call("storage", operate="get", key="/notes/missing"),
        call("storage", key="/notes/a"),  # no `operate`: required
        "stored and read back",
    ], strict=True)
    agent = Agent(model, tools=[storage], format="nous", max_steps=6)
    result = agent.run("store hello, read it back")
    agent.close()
    assert result.status == "completed" and result.answer == "stored and read back"
    observations = [m.content for m in result.messages if isinstance(m, ToolMessage)]
    assert observations[0] == "Successfully saved notes/a."
    assert observations[1] == "hello"
    assert "KeyNotExistsError" in observations[2] and "notes/missing does not exist" in observations[2]
    assert "'operate'" in observations[3] and "needs the argument" in observations[3]
    assert (tmp_path / "kv" / "notes" / "a").read_text() == "hello"
    assert before == TOOL_REGISTRY


async def test_a_base_tool_with_list_parameters_runs_in_threads_with_its_results_kept(tmp_path: Path) -> None:
    image = tmp_path / "pic.png"
    image.write_bytes(PNG)
    lookup = Lookup(image)
    tool = from_qwen_agent(lookup, call_kwargs={"lang": "en"})
    assert tool.spec.parameters["properties"]["kind"] == {"type": "string", "enum": ["text", "image", "dict", "fail"]}
    model = ScriptedModel([
        call("lookup", query="owl"),
        call("lookup", query="owl", kind="image"),
        call("lookup", query="owl", kind="dict"),
        call("lookup", query="owl", kind="fail"),
        "done",
    ], strict=True)
    results: list[ToolResult] = []
    async with Agent(model, tools=[tool], format="nous", max_steps=6) as agent:
        async for event in agent.stream("look up an owl"):
            if isinstance(event, ToolResultEvent):
                results.append(event.result)
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[0].content == "owl is a thing"
    assert results[1].images == [str(image)] and results[1].content.startswith("a picture of owl")
    assert json.loads(results[2].content) == {"query": "owl", "hits": 3}
    assert results[3].error_type == "ValueError" and "nothing found for 'owl'" in results[3].content
    params, kwargs, thread = lookup.calls[0]
    assert json.loads(params) == {"query": "owl"}  # a JSON string, as Qwen-Agent's agents send
    assert kwargs == {"lang": "en"}
    assert thread != threading.get_ident()  # the sync call ran off the event loop's thread
