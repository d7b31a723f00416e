"""Hugging Face loading shared by the policy and reward-model backends.

Turns loading failures (missing directory, offline hub, corrupt weights, wrong head) into one-line
`UserError`s and resolves device and dtype. Formatting prompts and conversations with a tokenizer's chat
template is `rmteach.core.chat`'s.

A checkpoint must fit the class it is loaded as: `load_weights` refuses one whose weights are missing
(transformers would fill them with random values), unexpected (a reward model's folder loaded as a policy)
or of another shape, naming the weights. Weights tied to others (GPT-2's `lm_head` to its embedding) are
not missing. A reward model may be allowed a new head explicitly (`new_head_ok`).
"""

from __future__ import annotations

from contextlib import contextmanager

import hashlib
import os
from pathlib import Path
from typing import Any, Iterator

from .chat import format_prompt
from .errors import ItemError, UserError, first_line

# Any of these makes a local model folder hold a tokenizer (AutoTokenizer invents a 1-token one otherwise).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")


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
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise UserError(f"device '{device}' asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                        f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if device == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps' asked for, but Apple's MPS is not available here: use device: cpu or auto")
    return device


def torch_dtype(dtype: str, device: str) -> Any:
    """Map a config dtype to a torch dtype ('auto': bfloat16 on CUDA, float32 elsewhere)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def _local(path: str) -> Path | None:
    """The local folder or file `path` names, or None for a hub id."""
    looks_local = path.startswith((".", "/", "~")) or os.sep in path.rstrip(os.sep).split(os.sep, 1)[-1]
    p = Path(path).expanduser()
    return p if looks_local or p.exists() else None


def check_model_ref(path: str, what: str) -> None:
    """Fail early when `path` looks like a local path that does not exist, is a file, or is a folder that holds
    no saved model (no config.json, or adapter_config.json for an adapter)."""
    p = _local(path)
    if p is None:
        return
    if not p.exists():
        raise UserError(f"{what} path does not exist: {path}")
    if not p.is_dir():
        raise UserError(f"{what} path {path} is a file; expected a model folder (config.json, weights, tokenizer)")
    if not any((p / name).is_file() for name in ("config.json", "adapter_config.json")):
        raise UserError(f"{what} folder {path} has no config.json: not a model saved with save_pretrained")


def from_pretrained(loader: Any, path: str, what: str, *, check: bool = True, **kwargs: Any) -> Any:
    """Call `loader.from_pretrained(path, **kwargs)`, turning load failures into a `UserError`.

    Whatever goes wrong inside (no config, corrupt or truncated weights, a config the class cannot build) is
    the folder's fault, not rmteach's: one line names the folder, and `--debug` shows transformers' traceback.
    `check=False` skips `check_model_ref` (a caller that checked the folder its own way: a tokenizer's).
    """
    if check:
        check_model_ref(path, what)
    try:
        return loader.from_pretrained(path, **kwargs)
    except Exception as e:  # noqa: BLE001 - see the docstring
        first = first_line(e)
        kind = "" if isinstance(e, (OSError, ValueError)) else f"{type(e).__name__}: "
        raise UserError(f"could not load {what} from '{path}': {kind}{first}") from e


def _names(keys: list[str], n: int = 3) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def weights_problem(model: Any, info: dict[str, Any], *, new_head_ok: bool = False) -> str | None:
    """What is wrong with a checkpoint loaded into `model` (from `output_loading_info`), or None.

    With `new_head_ok`, weights outside the backbone (`base_model_prefix`: the head) may be missing,
    unexpected or reshaped: the model gets a new head.

    >>> class GPT2ForSequenceClassification:
    ...     base_model_prefix = "transformer"
    >>> weights_problem(GPT2ForSequenceClassification(), {"missing_keys": {"score.weight"}})
    'no weights in the checkpoint for score.weight'
    >>> weights_problem(GPT2ForSequenceClassification(), {"missing_keys": {"score.weight"}}, new_head_ok=True) is None
    True
    """
    prefix = getattr(model, "base_model_prefix", "") or ""

    def keep(key: str) -> bool:
        return not (new_head_ok and prefix and not key.startswith(prefix + "."))

    missing = sorted(k for k in info.get("missing_keys") or () if keep(k))
    unexpected = sorted(k for k in info.get("unexpected_keys") or () if keep(k))
    mismatched = sorted((m for m in info.get("mismatched_keys") or () if keep(m[0])), key=lambda m: m[0])
    parts = []
    if missing:
        parts.append(f"no weights in the checkpoint for {_names(missing)}")
    if unexpected:
        parts.append(f"weights a {type(model).__name__} has no place for: {_names(unexpected)}")
    if mismatched:
        k, got, want = mismatched[0]
        parts.append(f"{len(mismatched)} weight{'s' if len(mismatched) > 1 else ''} of another shape than "
                     f"config.json says, e.g. {k} ({list(got)} in the checkpoint, {list(want)} in the model)")
    if not parts and info.get("error_msgs"):
        parts.append(str(info["error_msgs"][0]).strip().splitlines()[0])
    return "; ".join(parts) or None


def load_weights(loader: Any, path: str, what: str, *, hint: str, new_head_ok: bool = False, **kwargs: Any) -> Any:
    """`from_pretrained` of a model class, refusing a checkpoint whose weights do not fit it.

    Arguments:
        loader: an `AutoModelFor...` class.
        path, what: the model's folder or hub id, and what it is (for the message).
        hint: how to fix a checkpoint that does not fit, appended to the message.
        new_head_ok: accept a new head (see `weights_problem`).
        kwargs: passed to `from_pretrained`.

    Returns:
        The model. Raises `UserError` naming the missing, unexpected or reshaped weights.
    """
    model, info = from_pretrained(loader, path, what, output_loading_info=True, ignore_mismatched_sizes=True,
                                  **kwargs)
    problem = weights_problem(model, info, new_head_ok=new_head_ok)
    if problem:
        saved = ", ".join(a for a in getattr(model.config, "architectures", None) or [] if isinstance(a, str))
        if problem.startswith(("no weights", "weights a")):  # the checkpoint is of another kind of model
            problem += f"; {hint}"
        else:
            problem += "; its config.json does not describe these weights (save config and weights together)"
        raise UserError(f"{what} at '{path}' does not fit {type(model).__name__} (the folder holds "
                        f"{saved or 'an unnamed architecture'}): {problem}")
    return model


def max_positions(model: Any) -> int | None:
    """How many tokens the model reads at most (its position embeddings), when its config says."""
    n = getattr(model.config, "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def check_vocab(tok: Any, model: Any, path: str, what: str) -> None:
    """Refuse a tokenizer that yields ids past the model's embedding (the two do not belong together)."""
    try:
        rows = getattr(model.get_input_embeddings(), "num_embeddings", None)
    except (AttributeError, NotImplementedError):  # a custom model that does not say: nothing to check against
        return
    if isinstance(rows, int) and len(tok) > rows:
        raise UserError(f"{what} at '{path}': its tokenizer has {len(tok)} tokens but the model's embedding has "
                        f"{rows} rows: the tokenizer does not belong to these weights")


def load_causal_lm(path: str, what: str, *, padding_side: str, dtype: Any, device: str,
                   trust_remote_code: bool = False) -> tuple[Any, Any]:
    """A causal LM and its tokenizer, checked to fit each other, on `device` (eval mode).

    Returns:
        (model, tokenizer). Raises `UserError` for a checkpoint that is not a whole causal LM (e.g. a reward
        model's folder: transformers would give it a random LM head).
    """
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(path, what, padding_side=padding_side, trust_remote_code=trust_remote_code)
    model = load_weights(AutoModelForCausalLM, path, what, dtype=dtype, trust_remote_code=trust_remote_code,
                         hint="point it at a causal LM saved with save_pretrained (AutoModelForCausalLM), "
                         "not a reward model or a base model without its LM head")
    check_vocab(tok, model, path, what)
    model.eval()
    return model.to(device), tok


def check_context(tok: Any, model: Any, prompts: list[str], max_new_tokens: int, what: str) -> None:
    """Refuse a prompt that, formatted and followed by `max_new_tokens`, is longer than the model reads.

    Raises `ItemError` (index into `prompts`): the caller names the prompt id.
    """
    limit = max_positions(model)
    if limit is None:
        return
    for i, p in enumerate(prompts):
        n = len(tok(format_prompt(tok, p), add_special_tokens=False).input_ids)
        if n + max_new_tokens > limit:
            raise ItemError(f"{{item}} is {n} {what} tokens long; with max_new_tokens {max_new_tokens} that is "
                            f"more than the {limit} positions the {what} reads: shorten the prompt or lower "
                            "max_new_tokens", i)


def check_tokenizer_ref(path: str, what: str) -> None:
    """Fail early when `path` looks local but does not exist, is a file, or is a folder without a tokenizer."""
    local = _local(path)
    if local is not None and not local.is_dir():
        check_model_ref(path, what)
    if local is not None and not any((local / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"{what} folder {path} has no tokenizer (none of tokenizer.json, tokenizer_config.json, "
                        "...): save it there with tokenizer.save_pretrained")


def load_tokenizer(path: str, what: str, *, padding_side: str, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """Load a tokenizer (a model's folder, a folder holding only a tokenizer, or a hub id); make sure it has a pad
    token (falls back to EOS) and the given padding side. `kwargs` go to `from_pretrained` (e.g. `revision`)."""
    from transformers import AutoTokenizer

    check_tokenizer_ref(path, what)
    tok = from_pretrained(AutoTokenizer, path, f"{what} tokenizer", check=False, trust_remote_code=trust_remote_code,
                          **kwargs)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UserError(f"{what} tokenizer at '{path}' has neither a pad nor an EOS token")
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


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


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch CPU threads (None or 0: torch's own setting), then restore the count before."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
