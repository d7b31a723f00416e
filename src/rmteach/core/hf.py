"""Hugging Face loading shared by the policy and reward-model backends.

Turns loading failures (missing directory, offline hub, wrong head) into one-line `UserError`s, resolves
device and dtype, and formats prompts and conversations with a tokenizer's chat template when it has one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .errors import UserError


def quiet() -> None:
    """Silence transformers' per-load progress bars and info logs (rmteach shows its own progress)."""
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    tlog.disable_progress_bar()


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; other values are checked for availability."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for, but no CUDA GPU is available: use device: cpu")
    return device


def torch_dtype(dtype: str, device: str) -> Any:
    """Map a config dtype to a torch dtype ('auto': bfloat16 on CUDA, float32 elsewhere)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def check_model_ref(path: str, what: str) -> None:
    """Fail early when `path` looks like a local path that does not exist."""
    looks_local = path.startswith((".", "/", "~")) or os.sep in path.rstrip(os.sep).split(os.sep, 1)[-1]
    if looks_local and not Path(path).expanduser().exists():
        raise UserError(f"{what} path does not exist: {path}")


def from_pretrained(loader: Any, path: str, what: str, **kwargs: Any) -> Any:
    """Call `loader.from_pretrained(path, **kwargs)`, turning load failures into a `UserError`."""
    check_model_ref(path, what)
    try:
        return loader.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"could not load {what} from '{path}': {first}") from None


def load_tokenizer(path: str, what: str, *, padding_side: str, trust_remote_code: bool = False) -> Any:
    """Load a tokenizer; make sure it has a pad token (falls back to EOS) and the given padding side."""
    from transformers import AutoTokenizer

    tok = from_pretrained(AutoTokenizer, path, f"{what} tokenizer", trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UserError(f"{what} tokenizer at '{path}' has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def format_prompt(tokenizer: Any, prompt: str) -> str:
    """The text the policy continues: the chat template's user turn + generation prompt, or the raw prompt."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


def format_conversation(tokenizer: Any, prompt: str, response: str) -> str:
    """The text an RM scores: user/assistant turns through its chat template, or prompt + response."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
    return prompt + response


def fingerprint(path: str) -> str:
    """A cheap identity of a model: for a local folder, names, sizes and mtimes of its files; else the id."""
    p = Path(path).expanduser()
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:
        h.update(path.encode())
    return h.hexdigest()
