"""Write a Qwen2 model directory (safetensors + tokenizer + chat template) that vLLM can serve.

Run with the vLLM environment's python (it has torch, transformers and gguf)::

    python scripts/make_tiny_qwen2.py --gguf MODEL.gguf --out DIR            # tiny, random weights
    python scripts/make_tiny_qwen2.py --gguf MODEL.gguf --out DIR --real     # the GGUF's own weights

Both take the Qwen tokenizer and chat template from the GGUF (transformers' ``gguf_file=``).

* tiny: a randomly initialised Qwen2 (hidden 128, 2 layers, 2 heads of size 64: vLLM's CPU attention
  rejects head size 16) with a fixed seed, so every run writes the same weights. It answers with
  random tokens; it exists to test the server protocol, not answers.
* ``--real``: the GGUF's weights dequantised to bfloat16 safetensors (about 1 GB for the 0.5B model).

An existing complete directory is reused; the directory is written next to ``DIR`` and renamed into
place, so an interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

DONE = "qwenkit-model.json"
SEED = 0


def _tokenizer(gguf: Path):
    from gguf import GGUFReader  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)
    from transformers import AutoTokenizer  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not tok.chat_template:
        field = GGUFReader(str(gguf)).fields.get("tokenizer.chat_template")
        if field is None:
            raise SystemExit(f"{gguf} has no tokenizer.chat_template")
        tok.chat_template = bytes(field.parts[field.data[0]]).decode("utf-8")
    return tok


def _tiny(tok, out: Path) -> dict[str, object]:
    import torch  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM  # pyright: ignore[reportMissingImports]

    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    endoftext = tok.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=151936,  # the 0.5B model's embedding rows; a multiple of 128 above len(tok)
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
    model = Qwen2ForCausalLM(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[im_end, endoftext], pad_token_id=endoftext
    )
    model.save_pretrained(str(out), safe_serialization=True)
    return {"kind": "tiny", "seed": SEED, "parameters": sum(p.numel() for p in model.parameters())}


def _real(gguf: Path, out: Path, eos: list[int]) -> dict[str, object]:
    import torch  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)
    from safetensors.torch import save_file  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)
    from transformers import AutoModelForCausalLM  # pyright: ignore[reportMissingImports]  (the vLLM environment has it)

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # transformers marks a model read from GGUF as quantized and will not save_pretrained it; the
    # weights are already dequantised, so write them and a config without that mark.
    config = model.config
    state = {
        k: v.contiguous()
        for k, v in model.state_dict().items()
        if not (config.tie_word_embeddings and k == "lm_head.weight")
    }
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    config.architectures = ["Qwen2ForCausalLM"]
    config.save_pretrained(str(out))
    model.generation_config.eos_token_id = eos
    model.generation_config.save_pretrained(str(out))
    return {"kind": "real", "parameters": sum(p.numel() for p in model.parameters())}


def build(gguf: Path, out: Path, real: bool) -> Path:
    """Write the model directory ``out`` unless a complete one is there; return ``out``."""
    if (out / DONE).is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        tok = _tokenizer(gguf)
        eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
        info = _real(gguf, tmp, eos) if real else _tiny(tok, tmp)
        tok.save_pretrained(str(tmp))
        info["source"] = str(gguf)
        (tmp / DONE).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, required=True, help="Qwen GGUF to take the tokenizer from")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--real", action="store_true", help="convert the GGUF's weights instead")
    args = parser.parse_args(argv)
    if not args.gguf.is_file():
        parser.error(f"no such GGUF file: {args.gguf}")
    print(build(args.gguf.resolve(), args.out.resolve(), args.real))
    return 0


if __name__ == "__main__":
    sys.exit(main())
