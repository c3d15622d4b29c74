"""Scoring rules of the code-interpreter benchmark: final numbers, figure checks, the optional vision judge."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qwenkit.bench.codeinterp.tasks import FigureCheck

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (thousands separators allowed), or ``None``."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def number_matches(text: str, gold: float) -> bool:
    """Whether the last number of ``text`` equals ``gold`` (up to float rounding noise)."""
    got = last_number(text)
    return got is not None and math.isclose(got, gold, rel_tol=1e-9, abs_tol=1e-9)


def _norm(text: str) -> str:
    return re.sub(r"[\s'\"“”‘’]+", "", text).lower()


def figure_passes(fig: dict[str, Any], check: FigureCheck) -> tuple[bool, str]:
    """Check one figure description (as the sandbox hooks report it) against ``check``."""
    axes: list[dict[str, Any]] = fig.get("axes", [])
    if check.axes is not None and len(axes) != check.axes:
        return False, f"{len(axes)} axes, expected {check.axes}"
    if check.title is not None:
        titles = [fig.get("suptitle", "")] + [a.get("title", "") for a in axes]
        if not any(_norm(check.title) in _norm(t) for t in titles):
            return False, f"no title containing {check.title!r} (titles: {[t for t in titles if t]})"
    if check.kind is not None:
        with_kind = [a for a in axes if check.kind in a.get("kinds", [])]
        if not with_kind:
            return False, f"no {check.kind} chart (kinds: {sorted({k for a in axes for k in a.get('kinds', [])})})"
        if check.min_items is not None:
            key = {"bar": "bars", "line": "lines"}.get(check.kind)
            if key is not None and max(a.get(key, 0) for a in with_kind) < check.min_items:
                return False, f"fewer than {check.min_items} {key}"
    return True, "ok"


def figures_pass(figures: Sequence[dict[str, Any]], check: FigureCheck | None) -> tuple[bool, str]:
    """Whether some figure passes ``check`` (no check: passes); the reason of the last failure otherwise."""
    if check is None:
        return True, "no figure checks"
    if not figures:
        return False, "no figure was drawn"
    reason = ""
    for fig in figures:
        ok, reason = figure_passes(fig, check)
        if ok:
            return True, "ok"
    return False, reason


JUDGE_PROMPT = {
    "en": "Does the image match the request below? Answer \"right\" if it does and \"wrong\" if it does not.\n"
          "[Request]: {query}",
    "zh": "请判断图片是否符合下面的[请求]，符合请回答“right”，不符合请回答“wrong”。\n[请求]：{query}",
}


class VisionJudge:
    """A vision model on an OpenAI-compatible server that says whether plots match their request.

    Args:
        model: Model name.
        base_url: Server URL (``.../v1``).
        api_key: API key.
    """

    def __init__(self, model: str, base_url: str, api_key: str = "EMPTY") -> None:
        import openai

        self.model = model
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=120.0, max_retries=2)

    async def judge(self, images: Sequence[str | Path], query: str, lang: str = "en") -> tuple[bool, str]:
        """Ask the model; ``right`` in its reply (case-insensitive) is a pass. Returns the verdict and reply."""
        content: list[dict[str, Any]] = [{"type": "text", "text": JUDGE_PROMPT.get(lang, JUDGE_PROMPT["en"]).format(
            query=query)}]
        for img in images:
            data = base64.b64encode(Path(img).read_bytes()).decode()
            content.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}})
        resp = await self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
            max_tokens=64, temperature=0,
        )
        reply = (resp.choices[0].message.content or "") if resp.choices else ""
        return "right" in reply.lower(), reply

    async def aclose(self) -> None:
        await self.client.close()
