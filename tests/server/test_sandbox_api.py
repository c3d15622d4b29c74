"""API tests that run the code interpreter in the bubblewrap sandbox: files, figures, stop, restart, delete."""

from __future__ import annotations

import asyncio

import pytest

from qwenkit.server import ServerSettings, create_app
from tests.sandbox.helpers import descendant_kernel_processes
from tests.server.helpers import brain_agent, client_for, parse_sse, wait_until

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(180)]


async def test_upload_read_by_code_download_list_and_restart() -> None:
    app = create_app(brain_agent())
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        base = f"/api/conversations/{cid}"
        csv = "name,value\n甲,1.5\nb,2.5\n".encode()
        r = await client.put(f"{base}/files/data.csv", content=csv)
        assert r.status_code == 201 and r.json() == {"name": "data.csv", "size": len(csv)}
        events = parse_sse((await client.post(f"{base}/turns", json={"prompt": "sum the csv"})).text)
        result = next(d["result"] for _, k, d in events if k == "tool_result")
        assert result["ok"] and "total 4.0" in result["content"]
        assert events[-1][2]["status"] == "completed"
        assert (await client.get(f"{base}/files/data.csv")).content == csv
        await client.post(f"{base}/turns", json={"prompt": "write a report"})
        r = await client.get(f"{base}/files/out/report.txt")
        assert r.status_code == 200 and r.content == b"hello from the kernel"
        assert "attachment" in r.headers["content-disposition"]
        names = {f["name"]: f["size"] for f in (await client.get(f"{base}/files")).json()["files"]}
        assert names == {"data.csv": len(csv), "out/report.txt": 21}
        assert (await client.get(f"{base}/files/missing.txt")).status_code == 404
        assert (await client.get(f"{base}/files/out")).status_code == 400
        # Restart: a fresh kernel, so the working directory is empty again.
        assert (await client.post(f"{base}/restart")).json() == {"restarted": True}
        assert (await client.get(f"{base}/files")).json()["files"] == []
        kinds = [e["type"] for e in (await client.get(base)).json()["events"]]
        assert kinds[-1] == "kernel_restarted"


async def test_a_symlink_out_of_the_workdir_is_refused_and_big_files_are_413() -> None:
    app = create_app(brain_agent(), ServerSettings(max_download_bytes=10))
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        base = f"/api/conversations/{cid}"
        events = parse_sse((await client.post(f"{base}/turns", json={"prompt": "make a symlink"})).text)
        assert "linked" in next(d["result"]["content"] for _, k, d in events if k == "tool_result")
        r = await client.get(f"{base}/files/escape")
        assert r.status_code == 403 and "outside" in r.json()["error"]
        await client.put(f"{base}/files/big.bin", content=b"z" * 11)
        r = await client.get(f"{base}/files/big.bin")
        assert r.status_code == 413 and "11 bytes" in r.json()["error"]
        # No upload leftovers in the working directory.
        assert {f["name"] for f in (await client.get(f"{base}/files")).json()["files"]} == {"big.bin"}


async def test_figures_are_served_only_to_their_own_conversation_and_key() -> None:
    app = create_app(brain_agent(), ServerSettings(api_keys=("alice", "bob")))
    async with client_for(app, key="alice") as alice:
        cid = (await alice.post("/api/conversations")).json()["id"]
        other = (await alice.post("/api/conversations")).json()["id"]
        events = parse_sse((await alice.post(f"/api/conversations/{cid}/turns", json={"prompt": "plot sin(x)"})).text)
        result = next(d["result"] for _, k, d in events if k == "tool_result")
        assert result["images"] == [f"/api/conversations/{cid}/figures/1"]
        r = await alice.get(result["images"][0])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content.startswith(b"\x89PNG")
        assert (await alice.get(f"/api/conversations/{other}/figures/1")).status_code == 404
        assert (await alice.get(f"/api/conversations/{cid}/figures/2")).status_code == 404
        r = await alice.get(result["images"][0], headers={"Authorization": "Bearer bob"})
        assert r.status_code == 404
        r = await alice.get(result["images"][0], headers={"Authorization": "Bearer nobody"})
        assert r.status_code == 401


async def test_stop_interrupts_a_long_cell_and_the_kernel_lives_on() -> None:
    app = create_app(brain_agent())
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        base = f"/api/conversations/{cid}"
        turn = asyncio.create_task(client.post(f"{base}/turns", json={"prompt": "sleep a while"}))

        async def cell_started() -> bool:
            events = (await client.get(base)).json()["events"]
            return any(e["type"] == "tool_call" for e in events)

        await wait_until(cell_started, 60, "the long cell to start")
        await asyncio.sleep(0.5)
        assert (await client.post(f"{base}/stop")).json() == {"stopped": True}
        events = parse_sse((await asyncio.wait_for(turn, 20)).text)
        assert events[-1][2] == {"type": "turn_ended", "status": "stopped"}
        # The same kernel answers the next turn: the cell was interrupted, not left running.
        events = parse_sse((await client.post(f"{base}/turns", json={"prompt": "still alive?"})).text)
        result = next(d["result"] for _, k, d in events if k == "tool_result")
        assert result["ok"] and "still alive 42" in result["content"], result
        assert result["duration_s"] < 30


async def test_delete_kills_the_kernel_and_shutdown_leaves_none() -> None:
    app = create_app(brain_agent())
    async with client_for(app) as client:
        cid = (await client.post("/api/conversations")).json()["id"]
        keep = (await client.post("/api/conversations")).json()["id"]
        for c in (cid, keep):
            await client.post(f"/api/conversations/{c}/turns", json={"prompt": "still alive?"})
        assert len(descendant_kernel_processes()) >= 2
        before = {p.pid for p in descendant_kernel_processes()}
        assert (await client.delete(f"/api/conversations/{cid}")).status_code == 204
        await wait_until(lambda: {p.pid for p in descendant_kernel_processes()} < before, 20, "a kernel to die")
        assert descendant_kernel_processes()
    await wait_until(lambda: descendant_kernel_processes() == [], 20, "every kernel to die at shutdown")
