"""`OpenAICompatible` over several replicas: fewest requests in flight, failover, model checks (real sockets)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import pytest

from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm import ChatRequest, OpenAICompatible, UserMessage
from tests.llm.stub_server import Reply, StubServer, chat_body

REQ = ChatRequest(messages=[UserMessage(content="hi")])


def models(*names: str) -> Reply:
    return Reply(body={"object": "list", "data": [{"id": n, "object": "model"} for n in names]})


def replica(delay: float = 0.005, name: str = "qwen") -> StubServer:
    return StubServer([], routes={"/v1/models": models(name)}, default=Reply(body=chat_body("ok"), delay=delay))


def model(servers: list[StubServer], **kw: Any) -> OpenAICompatible:
    return OpenAICompatible("qwen", [s.base_url for s in servers], backoff=0.01, **kw)


async def run_many(m: OpenAICompatible, n: int, concurrency: int) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with gate:
            return (await m.complete(REQ)).text

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_a_replica_that_dies_mid_run_loses_no_request() -> None:
    servers = [replica(), replica(), replica()]
    async with AsyncExitStack() as stack:
        for s in servers:
            await stack.enter_async_context(s)
        dying = servers[1]

        async def kill_after(k: int) -> int:
            while len(dying.requests) < k:
                await asyncio.sleep(0.002)
            await dying.__aexit__(None, None, None)  # stops listening and drops open connections
            return len(dying.requests)

        killer = asyncio.create_task(kill_after(30))
        m = model(servers, replica_backoff=60)
        answers = await run_many(m, 200, concurrency=12)
        at_death = await killer
        await m.aclose()
    assert answers == ["ok"] * 200
    dead, survivors = m.replicas[1], [m.replicas[0], m.replicas[2]]
    assert dead.rest_until > 0 and dead.failures >= 1 and dead.answered <= at_death
    assert sum(r.answered for r in m.replicas) == 200
    assert all(r.in_flight == 0 for r in m.replicas)
    # Fewest in flight: same latency, so the survivors share what the dead one did not take, evenly.
    a, b = (r.answered for r in survivors)
    assert abs(a - b) <= 0.15 * (a + b), (a, b, dead.answered)
    assert len(servers[0].requests) + len(servers[2].requests) == a + b  # each answered exactly once there


async def test_the_faster_replica_gets_more_of_the_load() -> None:
    # In-flight counts stay level, so each replica's share follows its speed: 60x here, and still over
    # 3x if the client's own overhead per request (a loaded machine) were 0.1 s.
    servers = [replica(delay=0.005), replica(delay=0.3)]
    async with servers[0], servers[1]:
        m = model(servers)
        await run_many(m, 60, concurrency=6)
        await m.aclose()
    fast, slow = (r.answered for r in m.replicas)
    assert fast + slow == 60 and fast > 2 * slow, (fast, slow)


async def test_an_idle_set_is_used_in_turn() -> None:
    servers = [replica(), replica(), replica()]
    async with servers[0], servers[1], servers[2]:
        m = model(servers)
        for _ in range(9):
            await m.complete(REQ)
        await m.aclose()
    assert [len(s.requests) for s in servers] == [3, 3, 3]


async def test_a_replica_answering_5xx_rests_and_its_request_goes_elsewhere() -> None:
    sick = StubServer([], routes={"/v1/models": models("qwen")}, default=Reply(503, {"error": {"message": "down"}}))
    well = replica()
    async with sick, well:
        m = model([sick, well], replica_backoff=60)
        answers = [(await m.complete(REQ)).text for _ in range(10)]
        await m.aclose()
    assert answers == ["ok"] * 10
    assert len(sick.requests) == 1 and len(well.requests) == 10  # tried once, then left to rest
    assert "503" in m.replicas[0].last_error and sick.base_url in m.replicas[0].last_error


async def test_streams_are_balanced_too() -> None:
    servers = [replica(), replica()]
    async with servers[0], servers[1]:
        m = model(servers)
        for _ in range(4):
            parts = [c async for c in m.stream(REQ)]
            assert parts[-1].completion is not None and parts[-1].completion.text == "ok"
        await m.aclose()
    assert [len(s.requests) for s in servers] == [2, 2]
    assert all(r.in_flight == 0 for r in m.replicas)


async def test_all_replicas_down_is_one_error_naming_them() -> None:
    servers = [replica(), replica()]
    async with servers[0], servers[1]:
        urls = [s.base_url for s in servers]
    m = OpenAICompatible("qwen", urls, backoff=0.01, max_retries=1, connect_timeout=2)
    with pytest.raises(ModelError) as err:
        await m.complete(REQ)
    said = str(err.value)
    assert said.startswith("none of the 2 model servers answered") and all(u in said for u in urls)


async def test_all_replicas_failing_after_the_check_is_one_error_naming_them() -> None:
    sick = [StubServer([], routes={"/v1/models": models("qwen")}, default=Reply(500, {"error": {"message": "x"}}))
            for _ in range(3)]
    async with sick[0], sick[1], sick[2]:
        m = model(sick, max_retries=1)
        with pytest.raises(ModelError) as err:
            await m.complete(REQ)
    said = str(err.value)
    assert "none of the 3 model servers answered" in said and all(s.base_url in said for s in sick)
    assert [len(s.requests) for s in sick] == [2, 2, 2]  # two rounds (max_retries=1), each tried once a round


async def test_a_wrong_model_name_fails_fast_naming_the_replica() -> None:
    servers = [replica(name="other"), replica(name="other")]
    async with servers[0], servers[1]:
        m = model(servers)
        with pytest.raises(ConfigError, match=r"has no model 'qwen'; it serves 'other'") as err:
            await m.complete(REQ)
        with pytest.raises(ConfigError):  # remembered: no second round of checks
            await m.complete(REQ)
    assert servers[0].base_url in str(err.value)
    assert not servers[0].requests and not servers[1].requests
    assert sum(p == "/v1/models" for s in servers for p, _ in s.route_hits) == 2


async def test_mixed_model_names_name_the_replica_that_differs() -> None:
    servers = [replica(), replica(name="qwen-other"), replica()]
    async with servers[0], servers[1], servers[2]:
        m = model(servers)
        with pytest.raises(ConfigError) as err:
            await m.check()
    said = str(err.value)
    assert said.startswith(f"the model server at {servers[1].base_url} serves 'qwen-other', not 'qwen'")
    assert servers[0].base_url in said


async def test_the_check_runs_once_for_concurrent_first_requests_and_skips_a_dead_replica() -> None:
    servers = [replica(), replica()]
    async with servers[0]:
        pass
    async with servers[1]:
        m = model(servers, replica_backoff=60)
        answers = await asyncio.gather(*(m.complete(REQ) for _ in range(10)))
        await m.aclose()
    assert [a.text for a in answers] == ["ok"] * 10
    assert [p for p, _ in servers[1].route_hits] == ["/v1/models"]
    assert m.replicas[0].rest_until > 0 and len(servers[1].requests) == 10


async def test_a_single_url_is_not_checked_unless_asked() -> None:
    async with replica(name="other") as srv:
        m = OpenAICompatible("qwen", srv.base_url)
        assert (await m.complete(REQ)).text == "ok"
        with pytest.raises(ConfigError, match="has no model 'qwen'"):
            await m.check()
        await m.aclose()


def test_bad_url_lists_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no model server URL"):
        OpenAICompatible("qwen", [])
    with pytest.raises(ConfigError, match="more than once"):
        OpenAICompatible("qwen", ["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1"])
    with pytest.raises(ConfigError, match="must start with http"):
        OpenAICompatible("qwen", ["http://127.0.0.1:1/v1", "ftp://x/v1"])
