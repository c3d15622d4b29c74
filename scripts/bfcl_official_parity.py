r"""Record-for-record comparison of the official bfcl-eval harness with a qwenkit ``bench bfcl`` run.

Reads the official harness's result file (``BFCL_v4_<category>_result.json``, one JSON object per line with
``id`` and the raw model text in ``result``) and score file (``BFCL_v4_<category>_score.json``: a summary line,
then one line per *failed* record), and a qwenkit ``results.jsonl``; prints, per record id, the official
verdict, qwenkit's verdict, and whether both runs got the same raw model text, then the totals. Stdlib only.

The official verdict of a record is ``valid`` when the record is in the result file and not listed as failed
in the score file. Only ids present in both runs are compared (the totals say how many that is).

How the measurement for issue 11 item 3 was made (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, llama-cpp-python server
on port 18050 serving the GGUF under the alias ``q05``, the first 40 ``simple_python`` records)::

    # 1. the official harness in its own venv (no torch: sentence-transformers and faiss-cpu are only
    #    needed by the memory_vector category, so they are left out)
    python3 -m venv /root/.cache/qwenkit/bfcl-official
    V=/root/.cache/qwenkit/bfcl-official/bin
    $V/pip download --no-deps bfcl-eval==2026.3.23 -d /tmp/bfcldl
    $V/pip install --no-deps /tmp/bfcldl/bfcl_eval-2026.3.23-py3-none-any.whl
    unzip -p /tmp/bfcldl/bfcl_eval-2026.3.23-py3-none-any.whl 'bfcl_eval-2026.3.23.dist-info/METADATA' \
      | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' | grep -vi -e sentence-transformers -e faiss \
      > /tmp/bfcldl/reqs.txt
    $V/pip install -r /tmp/bfcldl/reqs.txt transformers jinja2 soundfile   # qwen-agent imports soundfile

    # 2. a tokenizer + config folder from the GGUF (the handler loads both with AutoTokenizer/AutoConfig:
    #    the tokenizer only counts prompt tokens, config.max_position_embeddings caps max_tokens). transformers
    #    5 needs torch to read a GGUF, so this one step runs in an environment that has torch+transformers+gguf
    #    (here qwenkit's vLLM venv). The saved chat template equals the GGUF's tokenizer.chat_template.
    /root/.cache/qwenkit/vllm-venv/bin/python - <<'EOF'
    from pathlib import Path
    from transformers import AutoConfig, AutoTokenizer
    d = Path.home() / ".cache/qwenkit/models"; f = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    AutoTokenizer.from_pretrained(str(d), gguf_file=f).save_pretrained("/tmp/bfclrun/q05-tok")
    AutoConfig.from_pretrained(str(d), gguf_file=f).save_pretrained("/tmp/bfclrun/q05-tok")
    EOF

    # 3. generate: the first 40 simple_python ids, temperature 0, against the running server. bfcl-eval has
    #    no Qwen2.5 entry; Qwen/Qwen3-0.6B (QwenHandler, prompt mode) and Qwen/Qwen3-0.6B-FC (QwenFCHandler)
    #    are the Qwen handlers. Both write ChatML by hand (the tokenizer's template is not used). For one system
    #    + one user turn without tools (prompt mode) that text is exactly what Qwen2.5's template renders; in FC
    #    mode Qwen2.5's template would add its default system line "You are Qwen, created by Alibaba Cloud.
    #    You are a helpful assistant." before "# Tools", which the Qwen3 handler does not write.
    mkdir -p /tmp/bfclrun && cd /tmp/bfclrun
    python3 -c "import json; json.dump({'simple_python': [f'simple_python_{i}' for i in range(40)]}, \
      open('test_case_ids_to_generate.json', 'w'))"
    export BFCL_PROJECT_ROOT=/tmp/bfclrun LOCAL_SERVER_ENDPOINT=127.0.0.1 LOCAL_SERVER_PORT=18050 HF_HUB_OFFLINE=1
    for m in Qwen/Qwen3-0.6B Qwen/Qwen3-0.6B-FC; do
      $V/bfcl generate --model $m --run-ids --temperature 0 --skip-server-setup \
        --local-model-path /tmp/bfclrun/q05-tok --include-input-log --allow-overwrite
    done

    # 4. evaluate (only the 40 generated records)
    $V/bfcl evaluate --model Qwen/Qwen3-0.6B,Qwen/Qwen3-0.6B-FC --test-category simple_python --partial-eval

    # 5. compare (qwenkit: qwenkit bench bfcl --mode prompt ... --limit 40 --out /tmp/meas/b05-prompt)
    python3 scripts/bfcl_official_parity.py \
      --official-result /tmp/bfclrun/result/Qwen_Qwen3-0.6B/non_live/BFCL_v4_simple_python_result.json \
      --official-score /tmp/bfclrun/score/Qwen_Qwen3-0.6B/non_live/BFCL_v4_simple_python_score.json \
      --fc-result /tmp/bfclrun/result/Qwen_Qwen3-0.6B-FC/non_live/BFCL_v4_simple_python_result.json \
      --fc-score /tmp/bfclrun/score/Qwen_Qwen3-0.6B-FC/non_live/BFCL_v4_simple_python_score.json \
      --qwenkit /tmp/meas/b05-prompt/results.jsonl \
      --also nous=/tmp/meas/b05-nous/results.jsonl --also pythonic=/tmp/meas/b05-pythonic/results.jsonl

    # 6. FC mode against the qwenkit format that writes the same Hermes <tool_call> system text (nous)
    python3 scripts/bfcl_official_parity.py \
      --official-result /tmp/bfclrun/result/Qwen_Qwen3-0.6B-FC/non_live/BFCL_v4_simple_python_result.json \
      --official-score /tmp/bfclrun/score/Qwen_Qwen3-0.6B-FC/non_live/BFCL_v4_simple_python_score.json \
      --qwenkit /tmp/meas/b05-nous/results.jsonl

What it showed (2026-11-30): prompt mode 27/40 official, 27/40 qwenkit, 40/40 verdicts agree, 40/40 raw texts
identical (the rendered prompts are byte-identical too). Official FC mode 0/40: this model answers with a
```json block and no <tool_call> tags, which QwenFCHandler does not read; qwenkit's nous format reads such a
block (and reports it as a problem), so it scores where the official FC handler does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Verdict:
    """One run's outcome for one record: its verdict, the raw model text and why it failed (if it did)."""

    valid: bool
    text: str
    why: str = ""


def _json_lines(path: Path) -> Iterable[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (blank lines skipped; a non-object line is an error)."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: not a JSON object")
            yield obj


def load_official(result_file: Path, score_file: Path) -> dict[str, Verdict]:
    """The official harness's verdict and raw text per record id.

    Args:
        result_file: ``BFCL_v4_<category>_result.json`` written by ``bfcl generate``.
        score_file: ``BFCL_v4_<category>_score.json`` written by ``bfcl evaluate`` (summary line first, then
            the failed records only).

    Returns:
        Id to verdict, for every record of the result file.
    """
    failed: dict[str, str] = {}
    for i, row in enumerate(_json_lines(score_file)):
        if i == 0 and "accuracy" in row:  # the summary line
            continue
        if "id" in row and not row.get("valid", False):
            errors = row.get("error") or []
            first = errors[0] if isinstance(errors, list) and errors else str(errors)
            failed[str(row["id"])] = f"{row.get('error_type', '?')}: {first}"
    out: dict[str, Verdict] = {}
    for row in _json_lines(result_file):
        rid = str(row["id"])
        raw = row.get("result", "")
        text = raw if isinstance(raw, str) else json.dumps(raw)
        out[rid] = Verdict(valid=rid not in failed, text=text, why=failed.get(rid, ""))
    return out


def load_qwenkit(results_file: Path) -> dict[str, Verdict]:
    """qwenkit's verdict and raw text per record id (``type: result`` rows; a later row for an id wins).

    Args:
        results_file: A ``results.jsonl`` written by ``qwenkit bench bfcl``.

    Returns:
        Id to verdict. A row without a score (an errored record) counts as not valid.
    """
    out: dict[str, Verdict] = {}
    for row in _json_lines(results_file):
        if row.get("type") != "result":
            continue
        score = row.get("score") or {}
        result = row.get("result") or {}
        why = "" if score.get("valid") else f"{score.get('reason', row.get('status', '?'))}: {score.get('detail', '')}"
        out[str(row["id"])] = Verdict(valid=bool(score.get("valid")), text=str(result.get("text", "")), why=why)
    return out


def _order(rid: str) -> tuple[str, int]:
    """Sort key: category prefix, then the numeric suffix (``simple_python_10`` after ``simple_python_9``)."""
    head, _, tail = rid.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (rid, -1)


def _mark(v: Verdict | None) -> str:
    return "-" if v is None else ("ok" if v.valid else "FAIL")


def _tally(run: dict[str, Verdict], ids: list[str]) -> str:
    """``valid/n`` on the compared ids, then on all of the run's records."""
    shared = [run[r] for r in ids if r in run]
    return (f"{sum(v.valid for v in shared)}/{len(shared)} (all its records: "
            f"{sum(v.valid for v in run.values())}/{len(run)})")


def _clip(text: str, width: int) -> str:
    """The text as a Python literal (newlines visible), cut to ``width`` characters."""
    flat = repr(text)
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def compare(
    official: dict[str, Verdict],
    qwenkit: dict[str, Verdict],
    fc: dict[str, Verdict] | None = None,
    also: dict[str, dict[str, Verdict]] | None = None,
    width: int = 60,
) -> list[str]:
    """The record-for-record table and the totals, as printable lines.

    Args:
        official: Official prompt-mode verdicts.
        qwenkit: qwenkit verdicts for the same mode.
        fc: Official FC-mode verdicts (an extra column), if any.
        also: Further qwenkit runs by label (extra verdict columns, e.g. each FC format).
        width: Characters of raw text shown where the two texts differ.

    Returns:
        Lines to print.
    """
    also = also or {}
    ids = sorted(set(official) & set(qwenkit), key=_order)
    extra = ["fc"] if fc is not None else []
    extra += list(also)
    lines = [" ".join([f"{'id':<20}", f"{'official':>8}", f"{'qwenkit':>8}", f"{'agree':>5}", f"{'same_text':>9}"]
                      + [f"{e:>8}" for e in extra])]
    agree = same = off_ok = qk_ok = 0
    notes: list[str] = []
    for rid in ids:
        o, q = official[rid], qwenkit[rid]
        agree += o.valid == q.valid
        same += o.text == q.text
        off_ok += o.valid
        qk_ok += q.valid
        cols = [_mark(fc.get(rid))] if fc is not None else []
        cols += [_mark(run.get(rid)) for run in also.values()]
        agree_mark = "yes" if o.valid == q.valid else "NO"
        same_mark = "yes" if o.text == q.text else "NO"
        lines.append(" ".join([f"{rid:<20}", f"{_mark(o):>8}", f"{_mark(q):>8}", f"{agree_mark:>5}", f"{same_mark:>9}"]
                              + [f"{c:>8}" for c in cols]))
        if o.text != q.text or o.valid != q.valid:
            notes.append(f"{rid}: official={_clip(o.text, width)}")
            notes.append(f"{' ' * len(rid)}  qwenkit ={_clip(q.text, width)}")
            for label, v in (("official", o), ("qwenkit", q)):
                if not v.valid:
                    notes.append(f"{' ' * len(rid)}  {label} failed: {' '.join(v.why.split())[: 2 * width]}")
    n = len(ids)
    lines.append("")
    lines.append(f"records compared: {n} (official has {len(official)}, qwenkit has {len(qwenkit)})")
    lines.append(f"official valid:             {off_ok}/{n}")
    lines.append(f"qwenkit valid:              {qk_ok}/{n}")
    lines.append(f"verdicts agree:             {agree}/{n}")
    lines.append(f"raw text identical:         {same}/{n}")
    if fc is not None:
        lines.append(f"official FC mode valid:     {_tally(fc, ids)}")
    for label, run in also.items():
        lines.append(f"qwenkit {label + ' valid:':<19}{_tally(run, ids)}")
    if notes:
        lines.append("")
        lines.append("records whose text or verdict differ:")
        lines += notes
    return lines


def _also(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=results.jsonl, got {spec!r}")
    return label, Path(path)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point (see the module docstring); returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    p.add_argument("--official-result", type=Path, required=True, help="official prompt-mode result file")
    p.add_argument("--official-score", type=Path, required=True, help="official prompt-mode score file")
    p.add_argument("--qwenkit", type=Path, required=True, help="qwenkit results.jsonl of the same mode")
    p.add_argument("--fc-result", type=Path, help="official FC-mode result file (extra column)")
    p.add_argument("--fc-score", type=Path, help="official FC-mode score file")
    p.add_argument("--also", type=_also, action="append", default=[], metavar="LABEL=results.jsonl",
                   help="another qwenkit run shown as an extra column (repeatable)")
    p.add_argument("--width", type=int, default=60, help="characters of differing raw text shown")
    args = p.parse_args(argv)
    if (args.fc_result is None) != (args.fc_score is None):
        p.error("--fc-result and --fc-score go together")
    try:
        official = load_official(args.official_result, args.official_score)
        qwenkit = load_qwenkit(args.qwenkit)
        fc = load_official(args.fc_result, args.fc_score) if args.fc_result else None
        also: dict[str, dict[str, Verdict]] = {}
        for label, path in args.also:
            if path.exists():
                also[label] = load_qwenkit(path)
            else:  # a format whose run has not started yet: leave its column out, say so
                print(f"note: {path} not found; column {label!r} left out", file=sys.stderr)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(compare(official, qwenkit, fc, also, args.width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
