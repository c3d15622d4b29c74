"""The CLI refuses unusable flags and environment settings in one line, naming them, before building anything.

These call the parser in-process; `tests/test_cli.py` runs the same cases through a real subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from qwenkit._cli.args import Parser
from qwenkit._cli.output import decode_input, read_stdin_text
from qwenkit._cli.settings import EnvValue, add_model_options, check_api_key, check_base_url, setting_name
from qwenkit.cli import build_parser, parse_args
from qwenkit.errors import ConfigError

SERVER = ["--base-url", "http://127.0.0.1:8000/v1", "--model", "m"]


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Exactly these QWENKIT_* variables, for the parser to read its defaults from."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("QWENKIT_")}
    with mock.patch.dict(os.environ, kept | values, clear=True):
        yield


def flag_error(*argv: str) -> str:
    """The one line argparse printed for a malformed flag (exit code 2)."""
    err = io.StringIO()
    with environment(), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        parse_args(list(argv))
    assert info.value.code == 2
    text = err.getvalue()
    assert text.startswith("qwenkit: error: ") and text.count("\n") == 1, text
    return text


def config_error(*argv: str, **env: str) -> str:
    with environment(**env), pytest.raises(ConfigError) as info:
        parse_args(list(argv))
    return str(info.value)


@pytest.mark.parametrize(("argv", "says"), [
    (["--temperature", "nan"], "argument --temperature: expected a finite number, got 'nan'"),
    (["--temperature", "inf"], "argument --temperature: expected a finite number"),
    (["--temperature", "-0.5"], "argument --temperature: must be 0 or more"),
    (["--temperature", "warm"], "argument --temperature: expected a number, got 'warm'"),
    (["--max-tokens", "-5"], "argument --max-tokens: must be at least 1, got '-5'"),
    (["--max-tokens", "0"], "argument --max-tokens: must be at least 1"),
    (["--max-steps", "0"], "argument --max-steps: must be at least 1, got '0'"),
    (["--max-steps", "many"], "argument --max-steps: expected a whole number, got 'many'"),
    (["--seed", str(2**64)], "argument --seed: must be between -2**63 and 2**63-1"),
    (["--format", "xml"], "argument --format: invalid choice"),
])
def test_nonsense_numbers_and_choices_are_refused_naming_the_flag(argv: list[str], says: str) -> None:
    assert says in flag_error("run", "hi", *argv)
    assert says in flag_error("chat", *argv)


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1:99999/v1", "is not a valid URL: Port out of range"),
    ("http://[::1/v1", "is not a valid URL: Invalid IPv6 URL"),
    ("http://127.0.0.1:port/v1", "is not a valid URL"),
    ("http://127.0.0.1:0/v1", "has port 0"),
    ("127.0.0.1:8000/v1", "must start with http:// or https://"),
    ("ftp://127.0.0.1/v1", "must start with http:// or https://"),
    ("http:///v1", "has no host name"),
    ("http://127.0.0.1 :8000/v1", "contains a space or a control character"),
    ("http://127.0.0.1:@\u00a1/v1", "is not a valid URL"),  # the client's IDNA rules are stricter than Python's
    ("http://host\n/v1", "contains a space or a control character"),
])
def test_bad_server_urls_name_the_flag_or_the_variable(url: str, says: str) -> None:
    from_flag = config_error("run", "hi", "--base-url", url, "--model", "m")
    assert from_flag.startswith("--base-url") and says in from_flag
    from_env = config_error("run", "hi", "--model", "m", QWENKIT_BASE_URL=url)
    assert from_env.startswith("QWENKIT_BASE_URL") and says in from_env


@pytest.mark.parametrize(("key", "says"), [
    ("clé-secrète", "has a non-ASCII character (U+00E9) at character 3"),
    ("sk-abc\n", "has a line break at character 7"),
    ("sk-abc\r\n", "has a line break"),
    ("sk-\x00abc", "has a control character (U+0000) at character 4"),
    ("sk-\x7fabc", "has a control character"),
])
def test_unusable_api_keys_say_what_is_wrong_without_showing_the_key(key: str, says: str) -> None:
    messages = [("--api-key", config_error("run", "hi", *SERVER, "--api-key", key))]
    if "\x00" not in key:  # an environment variable cannot hold NUL
        messages.append(("QWENKIT_API_KEY", config_error("run", "hi", *SERVER, QWENKIT_API_KEY=key)))
    for name, message in messages:
        assert message.startswith(f"{name}: the API key ") and says in message
        assert key.strip() not in message


def test_settings_that_are_not_utf8_are_refused() -> None:
    bad = b"\xff\xfe".decode("utf-8", "surrogateescape")  # how Linux hands over such argv and environment bytes
    assert config_error("run", f"what is {bad}?", *SERVER) == "the question is not valid UTF-8 text"
    assert config_error("run", "hi", *SERVER, "--system", bad) == "--system is not valid UTF-8 text"
    assert config_error("run", "hi", "--base-url", "http://127.0.0.1/v1", QWENKIT_MODEL=bad) == (
        "QWENKIT_MODEL is not valid UTF-8 text")
    assert config_error("run", "hi", "--model", "m", QWENKIT_BASE_URL=f"http://{bad}/") == (
        "QWENKIT_BASE_URL is not valid UTF-8 text")
    assert "QWENKIT_API_KEY" in config_error("run", "hi", *SERVER, QWENKIT_API_KEY=bad)
    assert "--local" in config_error("run", "hi", "--local", bad)


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_an_empty_question_is_refused(question: str) -> None:
    assert config_error("run", question, *SERVER) == "the question is empty"


def test_a_missing_model_names_the_flag_and_the_variable() -> None:
    assert "--model (or QWENKIT_MODEL) is required" in config_error("run", "hi", "--base-url", "http://h/v1")
    assert "--model (or QWENKIT_MODEL) is required" in config_error("run", "hi", QWENKIT_BASE_URL="http://h/v1")


def test_server_settings_are_not_checked_for_the_embedded_model() -> None:
    # --local wins over a base URL from the environment, so a stale variable must not stop the run.
    with environment(QWENKIT_BASE_URL="http://[::1/v1"):
        args = parse_args(["run", "hi", "--local", "qwen2.5-coder-0.5b-instruct-q4_k_m"])
    assert args.local == "qwen2.5-coder-0.5b-instruct-q4_k_m"


def test_good_settings_parse_and_env_values_remember_their_variable() -> None:
    with environment(QWENKIT_BASE_URL="https://[::1]:8443/v1", QWENKIT_MODEL="Qwen/Qwen2.5-7B-Instruct",
                     QWENKIT_API_KEY="sk-123_abc.DEF"):
        args = parse_args(["run", "-", "--temperature", "0.7", "--max-steps", "3", "--seed", "-1"])
    assert (args.question, args.temperature, args.max_steps, args.seed) == ("-", 0.7, 3, -1)
    assert setting_name(args.base_url, "--base-url") == "QWENKIT_BASE_URL"
    assert args.base_url == "https://[::1]:8443/v1" and args.api_key == "sk-123_abc.DEF"
    with environment(QWENKIT_BASE_URL="http://h/v1"):
        args = parse_args(["chat", "--base-url", "http://other/v1", "--model", "m"])
    assert setting_name(args.base_url, "--base-url") == "--base-url" and args.api_key == "EMPTY"


def test_parser_can_be_reused_with_its_environment_fixed() -> None:
    with environment(QWENKIT_MODEL="from-env"):
        parser = build_parser()
    with environment():
        assert parse_args(["run", "hi", "--base-url", "http://h/v1"], parser).model == "from-env"


def test_add_model_options_reads_the_given_environment() -> None:
    p = Parser(prog="x")
    add_model_options(p, {"QWENKIT_API_KEY": "k\n", "QWENKIT_BASE_URL": "http://h:1/v1"})
    args = p.parse_args([])
    assert isinstance(args.api_key, EnvValue) and args.api_key.env == "QWENKIT_API_KEY"
    with pytest.raises(ConfigError, match=r"^QWENKIT_API_KEY: the API key has a line break"):
        check_api_key(args.api_key)
    check_base_url(args.base_url)
    assert args.model is None


def test_dash_reads_the_question_from_standard_input() -> None:
    assert read_stdin_text("the question", io.BytesIO("Wie viel ist 2+2? ✓\n".encode())) == "Wie viel ist 2+2? ✓\n"
    with pytest.raises(ConfigError, match=r"^the question on standard input is not valid UTF-8 \(byte 4 is 0xff\)"):
        read_stdin_text("the question", io.BytesIO(b"abc\xff"))
    with pytest.raises(ConfigError, match="line 3 of standard input is not valid UTF-8"):
        decode_input(b"\xc3(", "line 3 of standard input")


def test_every_check_is_reachable_from_the_namespace() -> None:
    # `qwenkit.cli.parse_args` runs the subcommand's `check`; run and chat both have one.
    with environment():
        for argv in (["run", "hi"], ["chat"]):
            args = parse_args(argv)
            assert callable(args.check) and callable(args.handler)
            assert isinstance(args, argparse.Namespace)


def test_embedded_model_errors_say_which_setting_chose_the_model(tmp_path: Path) -> None:
    from qwenkit.agents.cli import make_model

    with environment(QWENKIT_HOME=str(tmp_path)):
        with pytest.raises(ConfigError, match=r"^--local: unknown model 'nope'"):
            make_model(parse_args(["run", "hi", "--local", "nope"]))
        with pytest.raises(ConfigError, match=r"^--local: no GGUF file at .*missing\.gguf"):
            make_model(parse_args(["run", "hi", "--local", str(tmp_path / "missing.gguf")]))
        with pytest.raises(ConfigError, match=r"^the embedded model \(used without --base-url or QWENKIT_BASE_URL\)"
                                              r": model '.+' is not pulled"):
            make_model(parse_args(["run", "hi"]))
