"""Repeatable ``--base-url`` (and several URLs in ``QWENKIT_BASE_URL``): replicas of one model for ``run``,
``chat`` and ``serve``; each URL is checked and named in the error; one URL works as before.

Parsing is checked in-process; whole runs and the exit-2 one-liners in a real subprocess against stub
servers on 127.0.0.1 (and a port nothing listens on).
"""

from __future__ import annotations

import socket

import pytest

from qwenkit._cli.settings import EnvValue, server_urls, setting_name, split_urls
from qwenkit.agents.cli import make_agent, make_model
from qwenkit.cli import parse_args
from qwenkit.llm.openai_compat import OpenAICompatible
from tests.llm.stub_server import Reply, ThreadedStub, chat_body
from tests.test_cli import call, one_line_exit_2, qwenkit
from tests.test_cli_validation import config_error, environment

A, B, C = "http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1", "https://[::1]:8443/v1"


def refused_url() -> str:
    """A URL on a port nothing listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def models_reply(*names: str) -> Reply:
    return Reply(body={"object": "list", "data": [{"id": n, "object": "model"} for n in names]})


# ------------------------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("command", [["run", "hi"], ["chat"], ["serve"]])
def test_base_url_is_repeatable_and_every_url_reaches_the_client(command: list[str]) -> None:
    with environment(QWENKIT_BASE_URL="http://ignored:1/v1"):  # the flags replace the variable's URLs
        args = parse_args([*command, "--base-url", A, "--base-url", B, "--model", "m"])
    assert server_urls(args) == [A, B] and args.base_url == A  # base_url stays the first, for one-URL code
    assert setting_name(server_urls(args)[1], "--base-url") == "--base-url"
    model = make_model(args)
    assert isinstance(model, OpenAICompatible) and model.base_urls == (A, B)


def test_the_variable_holds_several_urls_separated_by_commas_or_spaces() -> None:
    with environment(QWENKIT_BASE_URL=f" {A}, {B}\n{C},", QWENKIT_MODEL="m"):
        args = parse_args(["run", "hi"])
    urls = server_urls(args)
    assert urls == [A, B, C]
    assert all(isinstance(u, EnvValue) and u.env == "QWENKIT_BASE_URL" for u in urls)
    assert make_model(args).base_urls == (A, B, C)  # type: ignore[attr-defined]


def test_one_url_is_kept_as_before() -> None:
    with environment(QWENKIT_BASE_URL=C, QWENKIT_MODEL="m"):
        args = parse_args(["run", "hi"])
    assert args.base_url == C and server_urls(args) == [C]
    args = parse_args(["run", "hi", "--base-url", A, "--model", "m"])
    model = make_model(args)
    assert isinstance(model, OpenAICompatible) and model.base_urls == (A,) and model.base_url == A


def test_a_space_inside_one_url_does_not_split_it() -> None:
    # A separator starts a new URL only where a scheme follows: the stray space is refused, not cut.
    assert split_urls("http://127.0.0.1 :8000/v1") == ["http://127.0.0.1 :8000/v1"]
    assert split_urls(f"{A},{B} {C}") == [A, B, C]
    assert split_urls(" , ") == [] and split_urls("") == []


def test_an_empty_base_url_still_means_no_server() -> None:
    with environment():
        assert server_urls(parse_args(["run", "hi", "--base-url", ""])) == []
    with environment(QWENKIT_BASE_URL=""):
        args = parse_args(["run", "hi"])
    assert server_urls(args) == [] and args.base_url == ""


@pytest.mark.parametrize("command", [["run", "hi"], ["chat"], ["serve"], ["bench", "bfcl"], ["bench", "tooluse"],
                                     ["bench", "codeinterp"]])
def test_each_url_is_checked_and_the_error_names_which_one(command: list[str]) -> None:
    message = config_error(*command, "--model", "m", "--base-url", A, "--base-url", "http://[::1/v1")
    assert message.startswith("--base-url (URL 2 of 2): the model server URL 'http://[::1/v1' is not a valid URL")
    message = config_error(*command, "--model", "m", QWENKIT_BASE_URL=f"{A} ftp://h/v1 {B}")
    assert message.startswith("QWENKIT_BASE_URL (URL 2 of 3): the model server URL 'ftp://h/v1' must start with")
    message = config_error(*command, "--model", "m", "--base-url", A, "--base-url", B, "--base-url", A)
    assert message.startswith("--base-url (URL 3 of 3): the model server URL") and "more than once" in message


def test_bench_commands_pass_every_url_to_the_client() -> None:
    from qwenkit.bench.cli import _model

    with environment():
        args = parse_args(["bench", "bfcl", "--base-url", A, "--base-url", B, "--model", "m"])
    model = _model(args)
    assert model.base_urls == (A, B) and model.timeout == args.request_timeout


def test_serve_builds_its_agents_over_every_replica() -> None:
    with environment():
        args = parse_args(["serve", "--base-url", A, "--base-url", B, "--model", "m"])
    agent = make_agent(args)
    assert isinstance(agent.model, OpenAICompatible) and agent.model.base_urls == (A, B)


def test_a_bad_url_among_several_in_a_real_process() -> None:
    p = qwenkit("run", "hi", "--model", "m", "--base-url", A, "--base-url", "http://127.0.0.1:99999/v1")
    assert "--base-url (URL 2 of 2): the model server URL 'http://127.0.0.1:99999/v1' is not a valid URL" in (
        one_line_exit_2(p))


# ------------------------------------------------------------------------------------------ whole runs

def test_run_spreads_requests_over_replicas_and_skips_one_that_is_down() -> None:
    down = refused_url()
    with ThreadedStub([Reply(body=chat_body(call("calculator", expression="6*7")))]) as one, \
            ThreadedStub([Reply(body=chat_body("The answer is 42."))]) as two:
        p = qwenkit("run", "What is 6*7?", "--base-url", one.base_url, "--base-url", down, "--base-url",
                    two.base_url, "--model", "m", "--format", "nous", "--tool", "calculator")
    assert p.returncode == 0, p.stderr
    assert "The answer is 42." in p.stdout
    # The first request went to the first replica, the second to the least used one that answers.
    assert len(one.requests) == 1 and len(two.requests) == 1
    assert "<tool_response>\n42\n</tool_response>" in two.requests[0]["messages"][-1]["content"]


def test_chat_reads_several_urls_from_the_variable() -> None:
    with ThreadedStub([Reply(body=chat_body("Hello Ann."))]) as one, \
            ThreadedStub([Reply(body=chat_body("You are Ann."))]) as two:
        p = qwenkit("chat", "--format", "nous", stdin="I am Ann.\nWho am I?\n",
                    env={"QWENKIT_BASE_URL": f"{one.base_url},{two.base_url}", "QWENKIT_MODEL": "m"})
    assert p.returncode == 0, p.stderr
    assert "Hello Ann." in p.stdout and "You are Ann." in p.stdout
    assert len(one.requests) == 1 and len(two.requests) == 1


def test_every_replica_down_is_one_line_naming_them() -> None:
    first, second = refused_url(), refused_url()
    p = qwenkit("run", "hi", "--base-url", first, "--base-url", second, "--model", "m", "--format", "nous")
    line = one_line_exit_2(p)
    assert "none of the 2 model servers answered" in line
    assert f"cannot reach the model server at {first}" in line and f"at {second}" in line


def test_replicas_serving_different_models_are_one_line_naming_the_odd_one() -> None:
    good, odd = ThreadedStub([]), ThreadedStub([])
    good.server.routes = {"/v1/models": models_reply("m")}
    odd.server.routes = {"/v1/models": models_reply("other-model")}
    with good as g, odd as o:
        p = qwenkit("run", "hi", "--base-url", g.base_url, "--base-url", o.base_url, "--model", "m",
                    "--format", "nous")
        assert not g.requests and not o.requests  # refused before any chat request
    line = one_line_exit_2(p)
    assert f"the model server at {o.base_url} serves 'other-model', not 'm' as {g.base_url} does" in line
