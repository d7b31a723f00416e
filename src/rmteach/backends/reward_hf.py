"""The Hugging Face reward backend: a sequence classifier with one output, scored in length-sorted batches.

The RM's tokenizer is independent of the policy's: it re-tokenizes the decoded text, through its chat template
(or the config's `chat_template`, or none), with the config's `system_prompt` first. The checkpoint must hold a
trained scalar head: a causal LM's folder, or a classifier with another number of outputs, is refused unless
the config sets `allow_new_head` (then the head is initialised from a fixed seed, so scores are reproducible).

Loading options (see `RewardModelConfig`): another `tokenizer`, a hub `revision`, a per-RM `dtype`,
`device_map: auto` (accelerate places the model; inputs go to its first parameter's device) and 8/4-bit weights
(bitsandbytes, CUDA only: checked before anything loads). `batch_size: auto` starts large and halves at each
out-of-memory (`Batches`, which the custom backend shares).
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..core.blocks import RewardModelConfig
from ..core.errors import UserError, first_line
from ..core.hf import check_vocab, from_pretrained, load_tokenizer, load_weights, max_positions, quiet, torch_dtype
from ..core.chat import format_conversation

HEAD_SEED = 0  # the seed of an allowed new head
AUTO_START = {"cuda": 64, "cpu": 16}  # `batch_size: auto`'s first try, by device kind (a CPU gains little past 16)


def length_order(ids: Sequence[Sequence[int]]) -> list[int]:
    """Indices of `ids` from shortest to longest (ties by index): batches of similar lengths pad little.

    >>> length_order([[1, 2, 3], [4], [5, 6], [7]])
    [1, 3, 2, 0]
    """
    return sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))


def pad_rows(rows: Sequence[Sequence[int]], pad: int, *, left: bool = False) -> tuple[Any, Any]:
    """Token-id rows padded with `pad` into (B, T) int64 `input_ids` and `attention_mask` tensors, on the right
    (what a reward head reads with its attention mask) or, with `left`, on the left (the next token
    after every row at position T - 1).

    >>> ids, mask = pad_rows([[5, 6], [7]], 0, left=True)
    >>> ids.tolist(), mask.tolist()
    ([[5, 6], [0, 7]], [[1, 1], [0, 1]])
    """
    import torch

    lengths = np.array([len(r) for r in rows])
    width = int(lengths.max())
    cols = np.arange(width)
    mask = cols >= width - lengths[:, None] if left else cols < lengths[:, None]  # (B, T): True on the tokens
    ids = np.full(mask.shape, pad, dtype=np.int64)
    ids[mask] = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(lengths.sum()))  # row by row
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


class Batches:
    """Work in batches of a fixed size, or of an `auto` one: start at `AUTO_START`, halve at each out-of-memory
    (what accelerate's `find_executable_batch_size` counts as one), keep the size that fits for later calls.

    Arguments:
        setting: the config's `batch_size` (a number, or "auto").
        device: where the work runs ("cuda..." starts auto larger).
        who: the RM, for the messages.
    """

    def __init__(self, setting: int | str, device: str, who: str) -> None:
        self.auto, self.who = setting == "auto", who
        self.size = AUTO_START["cuda" if device.startswith("cuda") else "cpu"] if self.auto else int(setting)

    def chunks(self, order: Sequence[int]) -> list[list[int]]:
        """`order` cut into consecutive batches of the current size."""
        return [list(order[i : i + self.size]) for i in range(0, len(order), self.size)]

    def absorbs(self, e: BaseException) -> bool:
        """Whether `run` answers `e` by halving the batch (auto, and `e` is an out-of-memory)."""
        from accelerate.utils.memory import should_reduce_batch_size

        return self.auto and isinstance(e, Exception) and should_reduce_batch_size(e)

    def run(self, order: Sequence[int], step: Callable[[list[int]], None]) -> None:
        """Call `step(batch)` on consecutive batches of `order`; with auto, an out-of-memory halves the size and the
        failed batch is tried again (the batches before it stay done)."""
        start = 0
        while start < len(order):
            idx = list(order[start : start + self.size])
            try:
                step(idx)
                start += len(idx)
                continue
            except Exception as e:  # noqa: BLE001 - only an out-of-memory is answered here; the rest goes on up
                if not self.absorbs(e):
                    raise
            self._halve(len(idx))  # out of the except block: the traceback's tensors are freed by now

    def _halve(self, tried: int) -> None:
        from accelerate.utils.memory import clear_device_cache

        from ..core.progress import console

        clear_device_cache(garbage_collection=True)
        if tried == 1:
            raise UserError(f"{self.who} runs out of memory on a single sequence: lower max_length, or load it in "
                            "bfloat16, in 8 bits (load_in_8bit) or over several GPUs (device_map: auto)")
        self.size = tried // 2
        console().print(f"{self.who}: out of memory on a batch of {tried}; batch size now {self.size}",
                        soft_wrap=True)


def check_quantization(cfg: RewardModelConfig, what: str) -> None:
    """Refuse 8/4-bit loading without bitsandbytes or a CUDA GPU, before anything loads."""
    if not (cfg.load_in_8bit or cfg.load_in_4bit):
        return
    key = "load_in_8bit" if cfg.load_in_8bit else "load_in_4bit"
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError(f"{what}: {key} needs bitsandbytes, which is not installed: pip install 'rmteach[quant]'")
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"{what}: {key} needs a CUDA GPU (bitsandbytes' 8/4-bit layers) and none is available here")


class LengthBatched:
    """What an in-process model backend shares: the pairs tokenized once (`_encode`), scored in batches of
    similar length (`plan`, the batches a sharded run deals out) by `_forward`, with out-of-memory halving
    (`self.batches`), and the model freed by `close`."""

    batches: Batches
    model: Any

    def _encode(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        """The rewards (B,) of one batch of token-id rows."""
        raise NotImplementedError

    def plan(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[list[int]]:
        """The batches (lists of indices) `score` forms: sorted by length, the current batch size each."""
        return self.batches.chunks(length_order(self._encode(prompts, completions)))

    def score(
        self, prompts: Sequence[Any], completions: Sequence[str], progress: Callable[[int], None] | None = None,
        *, extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> np.ndarray:
        import torch

        # Tokenize once, then batch by length: padding waste is what makes naive scoring slow.
        ids = self._encode(prompts, completions)
        out = np.empty(len(ids), dtype=np.float64)

        def step(idx: list[int]) -> None:
            out[idx] = self._forward([ids[i] for i in idx])
            if progress:
                progress(len(idx))

        with torch.inference_mode():
            self.batches.run(length_order(ids), step)
        return out

    def close(self) -> None:
        from accelerate.utils.memory import clear_device_cache

        del self.model
        clear_device_cache(garbage_collection=True)


class HFRewardModel(LengthBatched):
    """An `AutoModelForSequenceClassification` with `num_labels == 1`, scored in length-sorted batches."""

    def __init__(self, cfg: RewardModelConfig, *, device: str, dtype: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification

        quiet()
        assert cfg.path is not None
        self.name, self.cfg = cfg.name, cfg
        what = f"reward model '{cfg.name}'"
        check_quantization(cfg, what)
        quantized = cfg.load_in_8bit or cfg.load_in_4bit
        if quantized and not cfg.device_map and not device.startswith("cuda"):
            raise UserError(f"{what}: 8/4-bit weights need a CUDA device (device: {device}): use device: cuda")
        hub = {"trust_remote_code": cfg.trust_remote_code, **({"revision": cfg.revision} if cfg.revision else {})}
        mcfg = from_pretrained(AutoConfig, cfg.path, what, **hub)
        self._check_head(mcfg, what)
        if cfg.tokenizer is None:
            self.tokenizer = load_tokenizer(cfg.path, what, padding_side="right", **hub)
        else:  # another repo: the revision is path's
            self.tokenizer = load_tokenizer(cfg.tokenizer, f"{what} tokenizer", padding_side="right",
                                            trust_remote_code=cfg.trust_remote_code)
        self.tokenizer.truncation_side = cfg.truncation_side
        placed = cfg.device_map or quantized  # accelerate puts the weights; no .to(device) afterwards
        gpu = "cuda" if torch.cuda.is_available() else "cpu"
        tdtype = torch_dtype(cfg.dtype or dtype, gpu if cfg.device_map else device)
        load: dict[str, Any] = {**hub, "dtype": tdtype}
        if placed:
            load["device_map"] = cfg.device_map or {"": device}
        if quantized:
            from transformers import BitsAndBytesConfig

            load["quantization_config"] = BitsAndBytesConfig(
                load_in_8bit=cfg.load_in_8bit, load_in_4bit=cfg.load_in_4bit, bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=tdtype)
        with torch.random.fork_rng(devices=[]):  # a new head (allow_new_head) is the same every time
            torch.manual_seed(HEAD_SEED)
            self.model = load_weights(
                AutoModelForSequenceClassification, cfg.path, what, new_head_ok=cfg.allow_new_head, num_labels=1,
                hint="point 'path' at a trained reward model, or set allow_new_head: true to score with a new head",
                **load)
        check_vocab(self.tokenizer, self.model, cfg.tokenizer or cfg.path, what)
        if not placed:
            self.model.to(device)
        self.device = next(self.model.parameters()).device  # where inputs go (with a device map: its first part)
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.eval()
        limit = max_positions(self.model)
        self.max_length = min(cfg.max_length, limit) if limit else cfg.max_length  # beyond: an index error
        self.batches = Batches(cfg.batch_size, str(self.device), what)
        self._warned = False
        self._torch = torch
        self._texts([[{"role": "user", "content": "hi"}]], ["hello"])  # a template that fails, fails now

    def _check_head(self, mcfg: Any, what: str) -> None:
        """Refuse a checkpoint without a scalar head (unless `allow_new_head`), from its config alone."""
        cfg = self.cfg
        saved = [a for a in getattr(mcfg, "architectures", None) or [] if isinstance(a, str)]
        lm = [a for a in saved if a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"))]
        if cfg.allow_new_head:
            return
        if lm and not any("Classification" in a or "Reward" in a for a in saved):
            raise UserError(
                f"{what} at '{cfg.path}' holds a {', '.join(saved)}, not a sequence classifier: point 'path' at a "
                "reward model (AutoModelForSequenceClassification with num_labels=1), or set allow_new_head: "
                "true to score with a new, untrained head")
        if getattr(mcfg, "num_labels", 1) != 1:
            raise UserError(f"{what} has {mcfg.num_labels} outputs; rmteach needs a scalar head "
                            "(AutoModelForSequenceClassification with num_labels=1)")

    def _texts(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[str]:
        """The conversations as the RM reads them; a chat template that fails says so in one line."""
        cfg = self.cfg
        try:
            return [format_conversation(self.tokenizer, p, c, chat_template=cfg.chat_template,
                                        system_prompt=cfg.system_prompt) for p, c in zip(prompts, completions)]
        except Exception as e:  # noqa: BLE001 - jinja's errors (a template that raises, a bad syntax) are the config's
            which = "chat_template" if cfg.chat_template else "tokenizer's chat template"
            first = first_line(e)
            raise UserError(f"reward model '{self.name}': its {which} fails ({type(e).__name__}: {first}); set "
                            "chat_template (a Jinja template, or none for plain text)") from e

    def _encode(self, prompts: Sequence[Any], completions: Sequence[str]) -> list[list[int]]:
        """Token ids per pair, cut to `max_length` on the `truncation_side`."""
        texts = self._texts(prompts, completions)
        ids = self.tokenizer(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)[
            "input_ids"]
        if self.max_length < self.cfg.max_length and not self._warned and any(len(i) == self.max_length for i in ids):
            self._warn_cut(texts)
        return ids

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        batch, mask = pad_rows(rows, self.tokenizer.pad_token_id)  # (B, T), right padded
        logits = self.model(input_ids=batch.to(self.device), attention_mask=mask.to(self.device)).logits
        return logits[:, 0].float().cpu().numpy()  # (B,)

    def _warn_cut(self, texts: list[str]) -> None:
        """Say (once) that conversations longer than the model's positions were cut to fit them."""
        from ..core.progress import console

        cut = sum(len(i) > self.max_length for i in self.tokenizer(texts, add_special_tokens=False)["input_ids"])
        if cut:
            self._warned = True
            console().print(f"[yellow]warning:[/yellow] reward model '{self.name}' reads at most {self.max_length} "
                            f"tokens: {cut} of {len(texts)} conversations were cut to that length "
                            f"(on the {self.cfg.truncation_side})", soft_wrap=True)
