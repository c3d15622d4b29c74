"""Run a slow CountingTask into argv[1]; the runner test kills this process with SIGKILL mid-run."""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from qwenkit.bench.runner import run_bench
from tests.bench.bench_helpers import CountingTask

asyncio.run(run_bench(CountingTask(40, delay=0.05), sys.argv[1], concurrency=2, progress=False))
