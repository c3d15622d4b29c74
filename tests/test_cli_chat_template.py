"""``--chat-template PATH`` for ``qwenkit run`` and ``chat``: the embedded model renders with the file, and
``--format auto`` reads it to choose the prompt format (with ``--base-url`` it only chooses: the server
renders with its own). A missing or broken file is one line naming it, exit code 2.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from qwenkit.agents.cli import make_agent, make_model, template_format_choice
from qwenkit.cli import parse_args
from qwenkit.errors import ConfigError
from tests.llm.stub_server import Reply, ThreadedStub, chat_body
from tests.test_cli import one_line_exit_2, qwenkit
from tests.test_cli_validation import environment

REAL = Path(__file__).parent / "data" / "templates"

# Small templates written for the test: each writes the probe's tool call its own way.
NOUS = """{%- for m in messages %}
{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
{{ {"name": c.function.name, "arguments": c.function.arguments} | tojson }}
</tool_call>{% endfor %}
{%- else %}{{ m.role }}: {{ m.content }}
{% endif %}{% endfor %}"""
CODER = """{%- for m in messages %}
{%- if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>
<function={{ c.function.name }}>
{% for k, v in c.function.arguments.items() %}<parameter={{ k }}>
{{ v }}
</parameter>
{% endfor %}</function>
</tool_call>{% endfor %}
{%- else %}{{ m.role }}: {{ m.content }}
{% endif %}{% endfor %}"""
NO_TOOLS = """{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def choice_for(path: Path | str) -> tuple[str, str]:
    with environment():
        args = parse_args(["run", "hi", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                           "--chat-template", str(path)])
    choice = template_format_choice(args)
    assert choice is not None
    return choice.name, choice.reason


@pytest.mark.parametrize(("text", "expected", "why"), [
    (NOUS, "nous", "<tool_call> JSON"),
    (CODER, "qwen3_coder", "<function=...> XML"),
    (NO_TOOLS, "qwen", "no tool support"),
])
def test_the_template_file_chooses_the_format(tmp_path: Path, text: str, expected: str, why: str) -> None:
    path = write(tmp_path, "chat.jinja", text)
    name, reason = choice_for(path)
    assert name == expected and why in reason and str(path) in reason


@pytest.mark.parametrize(("file", "expected"), [
    ("Qwen2.5-Instruct.jinja", "nous"), ("Qwen3.jinja", "nous"), ("Qwen3-Coder.jinja", "qwen3_coder"),
    ("Qwen1.5-Chat.jinja", "qwen"),
])
def test_real_qwen_templates_choose_their_format(file: str, expected: str) -> None:
    assert choice_for(REAL / file)[0] == expected


def test_a_tokenizer_folder_is_read_like_transformers(tmp_path: Path) -> None:
    config = tmp_path / "tok"
    config.mkdir()
    (config / "tokenizer_config.json").write_text(json.dumps({"chat_template": CODER}), encoding="utf-8")
    assert choice_for(config)[0] == "qwen3_coder"
    (config / "chat_template.jinja").write_text(NOUS, encoding="utf-8")  # preferred when both are there
    assert choice_for(config)[0] == "nous"


def test_the_embedded_model_renders_with_the_file(tmp_path: Path) -> None:
    gguf = write(tmp_path, "tiny.gguf", "not read until a request")
    template = write(tmp_path, "coder.jinja", CODER)
    with environment():
        args = parse_args(["run", "hi", "--local", str(gguf), "--chat-template", str(template)])
    assert template_format_choice(args) is None  # LocalModel shows the file to auto itself
    model = make_model(args)
    assert model.chat_template == CODER  # type: ignore[attr-defined]
    assert model._template_source == f"the chat template file {template}"  # type: ignore[attr-defined]


def test_the_embedded_model_chooses_the_format_from_the_file(tmp_path: Path) -> None:
    from qwenkit.llm.store import DEFAULT_MODEL, ModelStore

    store = ModelStore(progress=False)
    if not store.is_pulled(DEFAULT_MODEL):
        pytest.skip("the embedded default model is not pulled (qwenkit models pull)")
    template = write(tmp_path, "coder.jinja", CODER)
    with environment():
        args = parse_args(["run", "hi", "--local", str(store.target(DEFAULT_MODEL)), "--chat-template",
                           str(template)])
    agent = make_agent(args)
    asyncio.run(agent.resolve_format())  # reads the GGUF's metadata, not its weights
    assert agent.format_choice is not None and agent.format_choice.name == "qwen3_coder"
    assert str(template) in agent.format_choice.reason


def test_run_against_a_server_prints_the_choice_naming_the_file(tmp_path: Path) -> None:
    template = write(tmp_path, "coder.jinja", CODER)
    with ThreadedStub([Reply(body=chat_body("Done."))]) as srv:
        p = qwenkit("run", "hi", "--base-url", srv.base_url, "--model", "m", "--tool", "calculator",
                    "--chat-template", str(template))
    assert p.returncode == 0, p.stderr
    assert f"prompt format: qwen3_coder (from the chat template file {template}" in " ".join(p.stdout.split())
    system = srv.requests[0]["messages"][0]["content"]
    assert "<function=" in system and "<tools>" in system  # the qwen3_coder prompt, not nous's


def test_chat_uses_the_file_too(tmp_path: Path) -> None:
    template = write(tmp_path, "plain.jinja", NO_TOOLS)
    with ThreadedStub([Reply(body=chat_body("Hello."))]) as srv:
        p = qwenkit("chat", "--base-url", srv.base_url, "--model", "m", "--tool", "calculator",
                    "--chat-template", str(template), stdin="hi\n")
    assert p.returncode == 0, p.stderr
    assert "prompt format: qwen" in p.stdout and str(template) in " ".join(p.stdout.split())
    assert "✿FUNCTION✿" in srv.requests[0]["messages"][0]["content"]


def test_bad_template_files_are_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jinja"
    broken = write(tmp_path, "broken.jinja", "{% for m in messages %}{{ m.content }")
    failing = write(tmp_path, "failing.jinja", "{{ raise_exception('no tools here') }}")
    no_template = write(tmp_path, "tokenizer_config.json", json.dumps({"eos_token": "x"}))
    nested = write(tmp_path, "nested.jinja", "{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}")
    looping = write(tmp_path, "looping.jinja", "{% for i in range(10**5) %}{% for j in range(10**5) %}"
                                               "{% endfor %}{% endfor %}")
    server = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    cases = [
        (["run", "hi", *server], nested, f"--chat-template: the chat template file {nested} does not parse: it is "
                                         "nested too deeply"),
        (["run", "hi", *server], looping, "cannot be rendered: the chat template failed: its range() calls asked for "
                                          "more than 1,000,000 numbers"),
        (["run", "hi", "--local", "x.gguf"], missing, f"--chat-template: the chat template file {missing} cannot "
                                                       "be read"),
        (["run", "hi", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], broken,
         f"--chat-template: the chat template file {broken} does not parse"),
        (["chat"], failing, f"--chat-template: the chat template from the chat template file {failing} cannot be "
                            "rendered"),
        (["run", "hi"], no_template, f"--chat-template: the chat template file {no_template} has no chat_template"),
    ]
    for argv, path, says in cases:
        assert says in one_line_exit_2(qwenkit(*argv, "--chat-template", str(path))), argv


def test_an_explicit_format_makes_the_file_useless_with_a_server(tmp_path: Path) -> None:
    template = write(tmp_path, "chat.jinja", NOUS)
    with environment(), pytest.raises(ConfigError, match="no use with --format react"):
        parse_args(["run", "hi", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--format", "react",
                    "--chat-template", str(template)])
    with environment():  # the embedded model still renders with it
        args = parse_args(["run", "hi", "--local", "x.gguf", "--format", "react", "--chat-template", str(template)])
    assert template_format_choice(args) is None
