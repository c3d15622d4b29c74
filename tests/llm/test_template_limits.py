"""A hostile chat template (a GGUF's, a file's) ends a render with a clear error: no freeze, no memory flood."""

from __future__ import annotations

from pathlib import Path

import pytest

from qwenkit.errors import ConfigError, ModelError
from qwenkit.llm._template_limits import BoundedEnvironment, TemplateLimit
from qwenkit.llm.chat_template import check_template, render_chat

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi\nthere"}]
TEMPLATES = Path(__file__).parents[1] / "data" / "templates"

HOSTILE = {
    "nested ranges": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "self-recursive macro": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "string repeat": "{{ 'x' * 10**10 }}",
    "list repeat": "{{ ([0] * 10**9)|length }}",
    "big power": "{{ 9 ** 9999999 }}",
    "wide %-format": "{{ '%999999999d' % 1 }}",
    "%-format width from an argument": "{{ '%*d' % (999999999, 1) }}",
    "wide str.format": "{{ '{:>999999999}'.format(1) }}",
    "str.format width from an argument": "{{ '{0:>{1}}'.format(1, 999999999) }}",
    "center filter": "{{ 'x'|center(999999999) }}",
    "format filter": "{{ '%999999999s'|format(1) }}",
    "indent filter": "{{ messages[1].content|indent(999999999) }}",
    "replace filter chain": "{{ ('a' * 1000)|replace('a', 'a' * 1000)|replace('a', 'a' * 1000) }}",
    "replace method chain": "{{ ('a' * 1000).replace('a', 'a' * 1000).replace('a', 'a' * 1000) }}",
    "ljust method": "{{ 'x'.ljust(999999999) }}",
    "tojson indent": "{{ messages|tojson(indent=999999999) }}",
    "output flood": "{% for i in range(1000000) %}{{ 'x' * 1000 }}{% endfor %}",
    "doubling with ~": "{% set ns = namespace(x='a') %}{% for i in range(60) %}{% set ns.x = ns.x ~ ns.x %}"
                       "{% endfor %}{{ ns.x|length }}",
    "doubling with +": "{% set ns = namespace(x='a') %}{% for i in range(60) %}{% set ns.x = ns.x + ns.x %}"
                       "{% endfor %}{{ ns.x|length }}",
}


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_fails_fast_with_a_clear_error(template: str) -> None:
    with pytest.raises(ModelError, match=r"^the chat template failed: ") as failed:
        render_chat(template, MESSAGES)
    assert "ran longer than" not in str(failed.value)  # a bound stopped it before the time limit had to


def test_a_template_that_keeps_calling_is_stopped_at_the_time_limit() -> None:
    # 2**60 macro calls, each one cheap and the recursion shallow: only the deadline ends it.
    env = BoundedEnvironment(time_limit=0.3)
    with pytest.raises(TemplateLimit, match=r"it ran longer than 0\.3 s"):
        env.render_bounded("{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}")


def test_the_environment_is_reusable_after_a_limit() -> None:
    env = BoundedEnvironment(time_limit=5.0)
    with pytest.raises(TemplateLimit):
        env.render_bounded("{% for i in range(2000000) %}{% endfor %}")
    assert env.render_bounded("{% for i in range(3) %}{{ i }}{% endfor %}") == "012"  # the budget starts over


@pytest.mark.parametrize("template", [
    "{{ 'ab' * 3 }}|{{ 2 ** 10 }}|{{ '%5d' % 7 }}|{{ '{:>4}'.format('x') }}|{{ 'x'|center(5) }}",
    "{{ messages|tojson(indent=2) }}|{{ 'a-b'|replace('-', '--') }}|{{ messages[1].content|indent(2) }}",
    "{% for i in range(10) %}{{ loop.index }}{% endfor %}|{{ 'ab' + 'cd' }}|{{ 3 + 4 }}|{{ [1] + [2] }}",
])
def test_ordinary_operations_render_as_jinja2s_own_sandbox_does(template: str) -> None:
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    plain.filters["tojson"] = lambda x, indent=None: __import__("json").dumps(x, indent=indent, ensure_ascii=False)
    assert render_chat(template, MESSAGES) == plain.from_string(template).render(messages=MESSAGES)


@pytest.mark.parametrize("name", ["Qwen1.5-Chat", "Qwen2.5-Instruct", "Qwen3", "Qwen3-Coder"])
def test_real_qwen_templates_render_within_the_bounds(name: str) -> None:
    template = (TEMPLATES / f"{name}.jinja").read_text()
    parameters = {"type": "object", "properties": {"x": {"type": "string"}}}
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": parameters}}]
    many = [*MESSAGES, *[{"role": r, "content": f"turn {i}"} for i in range(200) for r in ("assistant", "user")]]
    prompt = render_chat(template, many, tools=tools)
    assert "turn 199" in prompt and "Be brief." in prompt


@pytest.mark.parametrize("template", [
    "{{ " + "(" * 50_000 + "1" + ")" * 50_000 + " }}",
    "{% if true %}" * 5_000 + "x" + "{% endif %}" * 5_000,
    "{{ " + "[" * 50_000 + "]" * 50_000 + " }}",
])
def test_a_template_nested_too_deeply_is_a_clear_error_when_checked_and_when_rendered(template: str) -> None:
    with pytest.raises(ConfigError, match=r"^the file x\.jinja does not parse: it is nested too deeply$"):
        check_template(template, "the file x.jinja")
    with pytest.raises(ModelError, match=r"^the chat template failed: it recursed too deeply$"):
        render_chat(template, MESSAGES)
