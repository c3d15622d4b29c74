"""``format="auto"``: pick the prompt format from what the model's own chat template does, never its name.

The probe conversation (`PROBE_MESSAGES` with `PROBE_TOOL`) is rendered by the model's template, locally with
Jinja2 when the template text is visible (the embedded GGUF, a template file) or by the server (vLLM's
``/tokenize``). How the rendered text writes the probe's tool call decides:

- ``<tool_call>`` with JSON inside (Qwen2.5, Qwen3, Qwen-Agent's default) → ``nous``;
- ``<function=qwenkit_probe_tool>`` (Qwen3-Coder's XML calls) → ``qwen3_coder``;
- no trace of the tool at all (Qwen1.5, whose template ignores ``tools``) → ``qwen`` (Qwen-Agent's
  ``✿FUNCTION✿`` prompt, which Qwen1.5 was trained on).

When nothing is visible the answer is ``nous``, what Qwen2.5+, Qwen3 and Qwen-Agent default to.
"""

from __future__ import annotations

from dataclasses import dataclass

from qwenkit.errors import ConfigError
from qwenkit.llm.template_info import PROBE_MESSAGES, PROBE_TOOL, TemplateInfo

DEFAULT_FORMAT = "nous"


@dataclass(frozen=True)
class FormatChoice:
    """The format ``auto`` chose, and a one-line reason a user can check."""

    name: str
    reason: str


def render_probe(template: str, source: str) -> str:
    """Render the probe conversation with ``template`` (Jinja2, sandboxed, as servers do).

    Raises:
        ConfigError: The template does not parse or fails to render; the message names ``source``.
    """
    from qwenkit.llm.chat_template import render_chat  # jinja2 is imported only when a template is used

    try:
        return render_chat(template, PROBE_MESSAGES, tools=[PROBE_TOOL])
    except Exception as err:  # a template is untrusted input; any failure means "cannot use it"
        raise ConfigError(f"the chat template from {source} cannot be rendered: {err}") from err


def format_from_render(text: str) -> str | None:
    """The format a rendered probe conversation shows, or ``None`` when it shows tools in no known way."""
    if "<function=qwenkit_probe_tool>" in text:
        return "qwen3_coder"
    if "<tool_call>" in text and '"qwenkit_probe_tool"' in text:
        return "nous"
    if "qwenkit_probe_tool" not in text:
        return "qwen"  # the template drops tools and calls: the model was not trained on a tool format
    return None


def choose_format(info: TemplateInfo | None) -> FormatChoice:
    """Choose the prompt format from what is known of the template.

    Raises:
        ConfigError: A visible template cannot be rendered.
    """
    if info is None or (info.template is None and info.probe_render is None):
        return FormatChoice(DEFAULT_FORMAT, "no chat template is visible; nous is what Qwen2.5+, Qwen3 and "
                                            "Qwen-Agent default to")
    rendered = info.probe_render if info.probe_render is not None else render_probe(info.template or "", info.source)
    name = format_from_render(rendered)
    if name is None:
        return FormatChoice(DEFAULT_FORMAT, f"from {info.source}: the template writes tool calls in no format "
                                            "qwenkit knows; using nous")
    why = {
        "nous": "the template writes tool calls as <tool_call> JSON",
        "qwen3_coder": "the template writes tool calls as <function=...> XML (Qwen3-Coder)",
        "qwen": "the template has no tool support (as Qwen1.5's), so the ✿FUNCTION✿ prompt is used",
    }[name]
    return FormatChoice(name, f"from {info.source}: {why}")
