"""Write a tiny randomly initialised Qwen3 model directory (safetensors + tokenizer + Qwen3's chat template).

Run with the vLLM environment's python (it has torch, transformers and gguf)::

    python scripts/make_tiny_qwen3.py --gguf MODEL.gguf --out DIR [--template FILE]

The tokenizer is the Qwen2.5 GGUF's (Qwen3 uses the same byte-level BPE vocabulary) with the four tokens
Qwen3 added on top (``<tool_response>``, ``</tool_response>``, ``<think>``, ``</think>``), so vLLM's ``qwen3``
reasoning parser and ``hermes`` tool parser find their markers. The GGUF fills ids up to 151935 with padding
entries, so these four get ids from 151936 on (not Qwen3's 151665-151668); the embedding has rows for them. The chat
template is Qwen3's own (default: ``tests/servers/data/qwen3-0.6b.chat_template.jinja``, whose source is in
``tests/servers/data/PROVENANCE``).

The model is a ``Qwen3ForCausalLM`` (hidden 128, 2 layers, 2 heads of size 64: vLLM's CPU attention rejects
smaller heads) with a fixed seed, so every run writes the same weights. It answers with random tokens; it
exists to test the server protocol (reasoning split, tool parsers, template rendering), not answers.

An existing complete directory is reused; the directory is written next to ``DIR`` and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_tiny_qwen2 import DONE, SEED, _tokenizer  # a sibling script, not a package

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tests" / "servers" / "data" / "qwen3-0.6b.chat_template.jinja"
QWEN3_ADDED = ["<tool_response>", "</tool_response>", "<think>", "</think>"]
"""Tokens Qwen3's tokenizer has beyond Qwen2.5's, in id order (151665-151668)."""


def _model(tok, out: Path, vocab_size: int) -> dict[str, object]:
    import torch  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM  # pyright: ignore[reportMissingImports]

    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    endoftext = tok.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=endoftext,
        eos_token_id=im_end,
        pad_token_id=endoftext,
    )
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )
    model.save_pretrained(str(out), safe_serialization=True)
    return {"kind": "tiny-qwen3", "seed": SEED, "parameters": sum(p.numel() for p in model.parameters())}


def build(gguf: Path, out: Path, template: Path) -> Path:
    """Write the model directory ``out`` unless a complete one is there; return ``out``."""
    if (out / DONE).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        tok = _tokenizer(gguf)
        missing = [t for t in QWEN3_ADDED if t not in tok.get_vocab()]
        tok.add_tokens(missing, special_tokens=False)
        ids = tok.convert_tokens_to_ids(QWEN3_ADDED)
        if tok.unk_token_id is not None and tok.unk_token_id in ids:
            raise SystemExit(f"the tokenizer did not take {QWEN3_ADDED}: ids {ids}")
        tok.chat_template = template.read_text(encoding="utf-8")
        info = _model(tok, tmp, vocab_size=-(-len(tok) // 128) * 128)  # a multiple of 128 with a row per token
        info["added_token_ids"] = dict(zip(QWEN3_ADDED, ids, strict=True))
        tok.save_pretrained(str(tmp))
        info["source"] = str(gguf)
        info["template"] = str(template)
        (tmp / DONE).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, required=True, help="Qwen2.5 GGUF to take the tokenizer from")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="Qwen3 chat template (Jinja2)")
    args = parser.parse_args(argv)
    if not args.gguf.is_file():
        parser.error(f"no such GGUF file: {args.gguf}")
    print(build(args.gguf.resolve(), args.out.resolve(), args.template.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
