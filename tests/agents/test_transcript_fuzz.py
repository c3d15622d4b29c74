"""Fuzz: random bytes, random JSON and random unicode at the transcript loader end in a result or a clear
`TranscriptError`, never another exception, and never a hang."""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qwenkit.agents.transcript import load_transcript
from qwenkit.errors import TranscriptError

SETTINGS = settings(max_examples=10_000, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# 60,000 small files are written: in memory (/dev/shm) where the machine has it.
_DIR = Path(tempfile.mkdtemp(prefix="qk-transcript-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
_FILE = _DIR / "t.jsonl"

GOOD_START = json.dumps({"type": "run_started", "conversation_id": "c", "messages": [
    {"role": "user", "content": "hi"}], "steps_done": 0})

# Two explicit levels of nesting (hypothesis' recursive strategies were reported flaky at 10,000 examples).
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
level1 = scalars | st.lists(scalars, max_size=4) | st.dictionaries(st.text(max_size=10), scalars, max_size=4)
json_values = level1 | st.lists(level1, max_size=3) | st.dictionaries(st.text(max_size=10), level1, max_size=3)
event_like = st.fixed_dictionaries({"type": st.sampled_from(
    ["run_started", "run_resumed", "assistant_turn", "tool_result", "run_finished", "approval_decision",
     "output_retry", "nested", "bogus"])}, optional={"step": json_values, "message": json_values,
                                                      "result": json_values, "messages": json_values,
                                                      "conversation_id": json_values})


def _load(data: bytes) -> None:
    _FILE.write_bytes(data)
    with contextlib.suppress(TranscriptError):  # a clear error is an allowed outcome; anything else fails
        load_transcript(_FILE)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _load(data)
    _load(GOOD_START.encode() + b"\n" + data)


@SETTINGS
@given(st.lists(event_like | json_values, max_size=5))
def test_random_json_lines(lines: list[object]) -> None:
    body = "\n".join(json.dumps(x) for x in lines)
    _load(body.encode())
    _load((GOOD_START + "\n" + body).encode())


@SETTINGS
@given(st.text(max_size=300))
def test_random_unicode(text: str) -> None:
    _load(text.encode("utf-8", "surrogatepass"))
    _load((GOOD_START + "\n" + text).encode("utf-8", "surrogatepass"))
