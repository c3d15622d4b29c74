"""Fuzz the CLI's argument and environment handling in-process: a clear error or a usable result, never a traceback.

"Usable" is checked against what later code does with the values: the HTTP client's URL parser, the
``Authorization`` header's rules, JSON without NaN, UTF-8 encoding.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
from collections.abc import Iterator
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI

from qwenkit._cli.args import SEED_RANGE, Parser
from qwenkit._cli.settings import add_model_options
from qwenkit.agents.cli import check_agent_args, uses_server
from qwenkit.cli import build_parser, parse_args
from qwenkit.errors import ConfigError
from qwenkit.llm.base import Sampling

# The class the OpenAI client parses ``base_url`` with (httpx's URL, whatever its package is called).
URL = type(AsyncOpenAI(api_key="k", base_url="http://127.0.0.1/v1").base_url)
MANY = settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

FLAGS = ["--base-url", "--model", "--api-key", "--local", "--format", "--tool", "--system", "--max-steps",
         "--temperature", "--seed", "--max-tokens", "--json", "--transcript", "--", "-", "--temp", "--max",
         "--base-url=", "--model=m", "--max-steps=0", "-x", "---", "--tool=calculator"]
VALUES = ["nan", "inf", "-inf", "NaN", "1e309", "-0.0", "0", "1", "-1", "-5", "2", "1_000", str(2**63), str(-(2**63)),
          "0x10", "1.5", "", " ", "\t", "\n", "qwen", "nous", "react", "native", "xml", "calculator",
          "code_interpreter", "http://127.0.0.1:8000/v1", "http://127.0.0.1:99999/v1", "http://[::1/v1",
          "http://[::1]:8000/v1", "https://h/v1", "http://h:0/v1", "http://h:-1/v1", "http://h:port/v1",
          "ftp://h/v1", "h:80", "http:///v1", "http://ü.de/v1", "http://\u3000/v1", "http://a b/v1",
          "http://h/v1\n", "http://xn--/v1", "http://[zz]/v1", "clé", "sk-abc\n", "sk abc", "sk-\x7f",
          "Qwen/Qwen2.5-7B-Instruct", "x.gguf", "run", "chat", "hi", "\ud800", "\udcff", "é", "😀",
          "%", "%(prog)s", "{}", "\x00"]


def argv_text() -> st.SearchStrategy[str]:
    # Linux hands argv over as bytes; Python decodes what is not UTF-8 to lone surrogates.
    raw = st.binary(max_size=12).map(lambda b: b.decode("utf-8", "surrogateescape"))
    return st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), st.text(max_size=12), raw)


def asks_for_help(argv: list[str]) -> bool:
    return any(t.startswith("-h") or (t.startswith("--h") and "--help".startswith(t.split("=")[0])) for t in argv)


def assert_usable(args: argparse.Namespace) -> None:
    """What the parser accepted, the rest of qwenkit can use without raising."""
    assert isinstance(args.max_steps, int) and args.max_steps >= 1
    assert isinstance(args.max_tokens, int) and args.max_tokens >= 1
    assert math.isfinite(args.temperature) and args.temperature >= 0
    assert SEED_RANGE[0] <= args.seed <= SEED_RANGE[1]
    sampling = Sampling(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)
    json.dumps(sampling.model_dump(), allow_nan=False)  # the HTTP client refuses NaN and infinity
    question = getattr(args, "question", "-")
    assert question == "-" or question.strip()
    texts = [question, args.system or "", args.local or ""]
    if uses_server(args):
        URL(args.base_url)  # the client parses base_url with this; it must not raise
        assert args.base_url.split(":", 1)[0] in ("http", "https")
        assert all(" " <= ch <= "~" for ch in args.api_key)  # what an HTTP header value can carry
        assert args.model.strip()
        texts += [args.model, args.base_url]
    for text in texts:
        json.dumps(text, ensure_ascii=False).encode("utf-8")  # request bodies and transcripts are UTF-8


@contextlib.contextmanager
def no_qwenkit_environment() -> Iterator[None]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")}
    with mock.patch.dict(os.environ, kept, clear=True):
        yield


with no_qwenkit_environment():
    PARSER = build_parser()  # one parser for every example: building one reads the environment and is slow


@MANY
@given(st.sampled_from(["run", "chat", "run", "chat", "doctor", "frobnicate"]), st.lists(argv_text(), max_size=8))
def test_argument_parsing_gives_a_clear_error_or_usable_settings(command: str, rest: list[str]) -> None:
    argv = [command, *rest]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = parse_args(argv, PARSER)
    except SystemExit as exc:
        if exc.code == 0:
            assert asks_for_help(argv), argv
            return
        assert exc.code == 2, (argv, exc.code)
        message = err.getvalue()
        assert message.startswith("qwenkit: error: ") and message.count("\n") == 1, (argv, message)
        assert "Traceback" not in message
        return
    except ConfigError as exc:
        assert str(exc).strip(), argv
        return
    if args.command in ("run", "chat"):
        assert_usable(args)


ENV_VALUE = st.one_of(
    st.sampled_from(VALUES).filter(lambda v: "\x00" not in v),
    # Environment values are bytes too; Python decodes them the same way as argv. NUL cannot occur.
    st.binary(max_size=24).filter(lambda b: b"\x00" not in b).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.builds(lambda host, port, path: f"http://{host}:{port}{path}",
              st.sampled_from(["127.0.0.1", "[::1]", "localhost", "h", "[::1", "ü", ""]),
              st.one_of(st.integers(-5, 70_000).map(str), st.text(max_size=4)), st.sampled_from(["/v1", "", "/"])),
)
ENV_NAMES = ["QWENKIT_BASE_URL", "QWENKIT_MODEL", "QWENKIT_API_KEY"]


@MANY
@given(st.tuples(*[st.none() | ENV_VALUE] * len(ENV_NAMES)), st.booleans())
def test_environment_settings_give_a_clear_error_naming_the_variable_or_usable_settings(
        values: tuple[str | None, ...], with_flags: bool) -> None:
    env = {name: value for name, value in zip(ENV_NAMES, values, strict=True) if value is not None}
    parser = Parser(prog="qwenkit run")
    add_model_options(parser, env)
    parser.set_defaults(question="hi", system=None, local=None, max_steps=1, max_tokens=1, temperature=0.0, seed=0)
    argv = ["--model", "m", "--api-key", "k"] if with_flags else []
    args = parser.parse_args(argv)
    try:
        check_agent_args(args)
    except ConfigError as exc:
        message = str(exc)
        named = [name for name in ENV_NAMES if message.startswith(name)]
        flagged = message.startswith("--model (or QWENKIT_MODEL)")
        assert named or flagged, message
        if named:
            assert named[0] in env and "\n" not in message
        return
    assert_usable(args)
