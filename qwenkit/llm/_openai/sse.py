"""Server-sent events, read from raw bytes: the ``data`` of each event, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The ``data`` of each server-sent event (multi-line data joined by ``\\n``); other fields ignored.

    Linear in the stream's length however the bytes are split: a part without a newline is only kept.
    """
    pending: list[bytes] = []
    data: list[bytes] = []
    async for part in chunks:
        if b"\n" not in part:
            pending.append(part)
            continue
        pending.append(part)
        *lines, rest = b"".join(pending).split(b"\n")
        pending = [rest]
        for line in lines:
            line = line.removesuffix(b"\r")
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
            elif line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
    tail = b"".join(pending).removesuffix(b"\r")
    if tail.startswith(b"data:"):
        data.append(tail[5:].removeprefix(b" "))
    if data:
        yield b"\n".join(data)
