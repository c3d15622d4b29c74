"""The three numbers of Qwen's tool-use benchmark, computed the way Qwen's ``eval/evaluate_plugin.py`` does.

- Tool Selection: the output contains ``"\\nAction: "`` and its first ``Action:`` names the gold tool
  (both trimmed, case-insensitive).
- Tool Input ROUGE-L: ROUGE-L F between the gold and predicted ``Action Input`` — each read with json5 and
  written back with sorted keys (unreadable: empty, scoring 0) — after tokenising both with the model's
  tokenizer and joining the tokens with spaces (rouge-score then splits on whitespace; no stemming).
- False Positive: a negative sample's output contains ``"\\nAction: "``.

The ReAct fields are cut out with ``str.find`` exactly as Qwen's ``process_res`` does, including its
behaviour when a marker is missing (``find`` returns -1 and the slice shifts accordingly).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import json5
from rouge_score import rouge_scorer

Tokenize = Callable[[str], list[str]]
ACTION_MARK = "\nAction: "


@dataclass(frozen=True)
class ReactFields:
    """The two fields of a ReAct output the metrics use."""

    action: str
    action_input: str


def react_fields(response: str) -> ReactFields:
    """Cut ``Action`` and ``Action Input`` out of a ReAct output (Qwen's ``process_res`` slicing).

    The action input is read with json5 and re-dumped with sorted keys and ``ensure_ascii=False``; an
    unreadable one becomes ``""``.
    """
    text = response + "\n"
    action = text[text.find("Action:") + len("Action:"): text.find("Action Input:")].strip()
    raw_input = text[text.find("Action Input:") + len("Action Input:"): text.find("Observation:")].strip()
    try:
        action_input = json.dumps(json5.loads(raw_input), ensure_ascii=False, sort_keys=True)
    except Exception:  # json5 raises ValueError and friends; Qwen catches everything here
        action_input = ""
    return ReactFields(action=action, action_input=action_input)


def selects_tool(generated: str, gold: str) -> bool:
    """Tool Selection for one positive sample."""
    if ACTION_MARK not in generated:
        return False
    return react_fields(generated).action.strip().lower() == react_fields(gold).action.strip().lower()


def calls_tool(generated: str) -> bool:
    """Whether an output calls a tool (a False Positive on a negative sample)."""
    return ACTION_MARK in generated


class _SplitTokenizer:
    """rouge-score tokenizer that splits on whitespace, as Qwen's ``_DummyTokenizer``."""

    def tokenize(self, text: str) -> list[str]:
        return text.split()


_SCORER: Any = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_SplitTokenizer())


def input_rouge_l(generated: str, gold: str, tokenize: Tokenize) -> float:
    """Tool Input ROUGE-L F for one positive sample."""
    pred = " ".join(tokenize(react_fields(generated).action_input))
    ref = " ".join(tokenize(react_fields(gold).action_input))
    return float(_SCORER.score(ref, pred)["rougeL"].fmeasure)
