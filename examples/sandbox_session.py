"""A code-interpreter session without a model: stateful cells, a plot, and contained bad code.

Needs bubblewrap (``qwenkit doctor``). Run: ``python examples/sandbox_session.py [OUTPUT_DIR]``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from qwenkit.sandbox import KernelSession, SessionConfig


async def main(outdir: Path) -> None:
    async with KernelSession(SessionConfig(timeout=10), workdir=outdir) as session:
        await session.execute("import pandas as pd\ndf = pd.DataFrame({'x': range(10)})\ndf['y'] = df['x'] ** 2")
        stats = await session.execute("df['y'].describe()")
        print("state kept between cells:\n", stats.result)
        plot = await session.execute(
            "import matplotlib.pyplot as plt\nplt.plot(df['x'], df['y'])\nplt.title('平方 (squares)')\nplt.show()"
        )
        print("figure saved at:", plot.images)
        secret = await session.execute("open('/etc/shadow').read()")
        print("reading /etc/shadow:", secret.error.name if secret.error else "NOT BLOCKED")
        net = await session.execute("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)")
        print("network:", net.error.name if net.error else "NOT BLOCKED")
        loop = await session.execute("while True: pass", timeout=1)
        print("endless loop: timed out =", loop.timed_out, "| state kept =",
              (await session.execute("len(df)")).result == "10")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "qwenkit-outputs/example").resolve()))
