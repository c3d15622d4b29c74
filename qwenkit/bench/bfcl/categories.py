"""BFCL v4 category names, the ``--categories`` groups, and the leaderboard's score arithmetic.

The names, groups, weights and averaging rules are those of ``bfcl-eval`` 2026.3.23
(``constants/category_mapping.py`` and ``eval_checker/eval_runner_helper.generate_leaderboard_csv``):

- non-live = unweighted mean of (simple = mean of simple_python/java/javascript), multiple, parallel,
  parallel_multiple;
- live = mean of live_simple, live_multiple, live_parallel, live_parallel_multiple weighted by their sizes;
- irrelevance = unweighted mean of irrelevance and live_irrelevance (live_relevance is shown, not scored);
- multi-turn = unweighted mean of the four multi-turn categories;
- agentic = unweighted mean of (web search = mean of its two) and (memory = mean of its three);
- overall = 10 % non-live + 10 % live + 10 % irrelevance + 30 % multi-turn + 40 % agentic.

A category that was not run counts as 0 in BFCL's arithmetic (and is shown as N/A); `v4_scores` does the
same and says which categories are missing, so a partial overall is never passed off as the real one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from qwenkit.errors import ConfigError

NON_LIVE: tuple[str, ...] = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
                             "parallel_multiple", "irrelevance")
LIVE: tuple[str, ...] = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                         "live_irrelevance", "live_relevance")
MULTI_TURN: tuple[str, ...] = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                               "multi_turn_long_context")
WEB_SEARCH: tuple[str, ...] = ("web_search_base", "web_search_no_snippet")
MEMORY: tuple[str, ...] = ("memory_kv", "memory_vector", "memory_rec_sum")
MEMORY_RUNNABLE: tuple[str, ...] = ("memory_kv", "memory_rec_sum")
"""The memory categories that run offline (``memory_vector`` needs an embedding model download)."""
SINGLE_TURN: tuple[str, ...] = NON_LIVE + LIVE
AGENTIC: tuple[str, ...] = MEMORY + WEB_SEARCH
RUNNABLE: tuple[str, ...] = SINGLE_TURN + MULTI_TURN + MEMORY_RUNNABLE
"""Every category qwenkit runs, in report order."""

GROUPS: Mapping[str, tuple[str, ...]] = {
    "all": RUNNABLE, "single_turn": SINGLE_TURN, "non_live": NON_LIVE, "live": LIVE,
    "multi_turn": MULTI_TURN, "python": ("simple_python", "irrelevance", "parallel", "multiple",
                                         "parallel_multiple", "live_simple", "live_multiple", "live_parallel",
                                         "live_parallel_multiple", "live_irrelevance", "live_relevance"),
    "non_python": ("simple_java", "simple_javascript"),
}
"""``--categories`` group names. ``all`` means every category that can run offline."""

_WEB = ("needs the network and a paid search API key: bfcl-eval's WebSearchAPI queries SerpAPI (SERPAPI_API_KEY) "
        "and fetches the result pages live; it cannot run offline.")
_VECTOR = ("needs the all-MiniLM-L6-v2 sentence-transformers embedding model (downloaded from Hugging Face when "
           "bfcl-eval's memory_vector module is imported) and faiss; it cannot run offline")
AGENTIC_REFUSALS: Mapping[str, str] = {
    "web_search_base": f"web_search_base {_WEB}",
    "web_search_no_snippet": f"web_search_no_snippet {_WEB}",
    "web_search": f"web_search {_WEB}",
    "memory_vector": f"memory_vector {_VECTOR}.",
    "memory": f"memory: memory_vector {_VECTOR}; the other two run: --categories memory_kv,memory_rec_sum.",
    "agentic": "agentic: web_search needs the network and a paid SerpAPI key, memory_vector an embedding model "
               "download; memory_kv and memory_rec_sum run: --categories memory_kv,memory_rec_sum.",
}

SIZES: Mapping[str, int] = {
    "simple_python": 400, "simple_java": 100, "simple_javascript": 50, "multiple": 200, "parallel": 200,
    "parallel_multiple": 200, "irrelevance": 240, "live_simple": 258, "live_multiple": 1053, "live_parallel": 16,
    "live_parallel_multiple": 24, "live_irrelevance": 884, "live_relevance": 16, "multi_turn_base": 200,
    "multi_turn_miss_func": 200, "multi_turn_miss_param": 200, "multi_turn_long_context": 200,
    "web_search_base": 100, "web_search_no_snippet": 100, "memory_kv": 155, "memory_vector": 155,
    "memory_rec_sum": 155,
}
"""Entries per category in bfcl-eval 2026.3.23 (BFCL weights the live AST mean by these when a category is
missing, via ``get_category_score``'s ``total_count``)."""

OVERALL_WEIGHTS: Mapping[str, int] = {"non_live": 10, "live": 10, "irrelevance": 10, "multi_turn": 30,
                                      "agentic": 40}


def is_multi_turn(category: str) -> bool:
    """Whether ``category`` is one of the multi-turn categories."""
    return category in MULTI_TURN


def is_memory(category: str) -> bool:
    """Whether ``category`` is one of the memory categories qwenkit runs."""
    return category in MEMORY_RUNNABLE


def valid_names() -> str:
    """The accepted ``--categories`` names, for error messages."""
    return "groups: " + ", ".join(GROUPS) + "; categories: " + ", ".join(RUNNABLE)


def resolve_categories(names: Sequence[str]) -> list[str]:
    """Expand group names, validate, keep report order, drop duplicates.

    Raises:
        ConfigError: A name is unknown, names an agentic category (with the reason it cannot run), or
            nothing is left.
    """
    wanted: set[str] = set()
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in RUNNABLE:
            wanted.add(name)
        elif name in AGENTIC_REFUSALS:
            raise ConfigError(AGENTIC_REFUSALS[name])
        else:
            raise ConfigError(f"unknown BFCL category {name[:80]!r}; valid {valid_names()}.")
    if not wanted:
        raise ConfigError(f"no BFCL category given; valid {valid_names()}.")
    return [c for c in RUNNABLE if c in wanted]


@dataclass(frozen=True)
class Score:
    """One leaderboard number: accuracy, entries it covers, and the categories missing from it."""

    accuracy: float
    total_count: int
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing


def _cat(scores: Mapping[str, float], counts: Mapping[str, int], name: str) -> Score:
    if name in scores:
        return Score(scores[name], counts.get(name, SIZES.get(name, 0)))
    return Score(0.0, SIZES.get(name, 0), (name,))


def _unweighted(parts: Sequence[Score]) -> Score:
    return Score(sum(p.accuracy for p in parts) / len(parts), sum(p.total_count for p in parts),
                 tuple(m for p in parts for m in p.missing))


def _weighted(parts: Sequence[Score]) -> Score:
    total = sum(p.total_count for p in parts)
    acc = sum(p.accuracy * p.total_count for p in parts) / total if total else 0.0
    return Score(acc, total, tuple(m for p in parts for m in p.missing))


@dataclass(frozen=True)
class V4Scores:
    """The leaderboard's group scores and overall (see the module docstring).

    Attributes:
        groups: ``non_live``, ``live``, ``irrelevance``, ``multi_turn``, ``agentic``, ``relevance``.
        overall: The weighted overall; ``overall.missing`` lists the categories counted as 0.
    """

    groups: dict[str, Score] = field(default_factory=dict)
    overall: Score = Score(0.0, 0)


def v4_scores(scores: Mapping[str, float], counts: Mapping[str, int] | None = None) -> V4Scores:
    """Compute BFCL v4's group scores and overall from per-category accuracies.

    Args:
        scores: Category → accuracy in [0, 1] (only the categories that ran).
        counts: Category → entries run (default: the full category sizes).
    """
    counts = counts or {}

    def c(name: str) -> Score:
        return _cat(scores, counts, name)

    simple = _unweighted([c("simple_python"), c("simple_java"), c("simple_javascript")])
    non_live = _unweighted([simple, c("multiple"), c("parallel"), c("parallel_multiple")])
    live = _weighted([c("live_simple"), c("live_multiple"), c("live_parallel"), c("live_parallel_multiple")])
    irrelevance = _unweighted([c("irrelevance"), c("live_irrelevance")])
    multi_turn = _unweighted([c(n) for n in MULTI_TURN])
    agentic = _unweighted([_unweighted([c(n) for n in WEB_SEARCH]), _unweighted([c(n) for n in MEMORY])])
    groups = {"non_live": non_live, "live": live, "irrelevance": irrelevance, "multi_turn": multi_turn,
              "agentic": agentic}
    weight_sum = sum(OVERALL_WEIGHTS.values())
    overall = Score(
        sum(groups[g].accuracy * w / weight_sum for g, w in OVERALL_WEIGHTS.items()),
        sum(g.total_count for g in groups.values()),
        tuple(m for g in groups.values() for m in g.missing),
    )
    groups["relevance"] = c("live_relevance")
    return V4Scores(groups=groups, overall=overall)
