"""Build tiny, real Hugging Face models and word-level tokenizers on disk.

Everything here goes through `save_pretrained`, so loading goes through the same `from_pretrained` paths a
user's Pythia or Llama takes. Used by the toy world and by the tests' fixtures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

SPECIALS = ("<pad>", "<eos>", "<unk>")
# A minimal chat template over whitespace-separated words: "User: ... Assistant: ... <eos>".
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }} "
    "{% else %}Assistant: {{ m['content'] }} <eos>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
Arch = Literal["gpt2", "llama"]


def word_tokenizer(words: Sequence[str], *, chat_template: str | None = CHAT_TEMPLATE):
    """A whitespace word-level fast tokenizer over `words` (+ specials and the chat template's markers).

    Returns:
        A `PreTrainedTokenizerFast` with pad/eos/unk set.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in [*SPECIALS, "User:", "Assistant:", *words]:
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    if chat_template:
        tok.chat_template = chat_template
    return tok


def _config(arch: Arch, vocab_size: int, *, d: int, layers: int, heads: int, max_len: int, **extra):
    from transformers import GPT2Config, LlamaConfig

    ids = dict(pad_token_id=0, eos_token_id=1, bos_token_id=1)
    if arch == "gpt2":
        return GPT2Config(vocab_size=vocab_size, n_embd=d, n_layer=layers, n_head=heads, n_positions=max_len, **ids, **extra)
    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=d,
            intermediate_size=2 * d,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=max_len,
            tie_word_embeddings=False,
            **ids,
            **extra,
        )
    raise ValueError(f"unknown arch {arch!r} (allowed: gpt2, llama)")


def build_policy(
    out: str | Path, words: Sequence[str], *, arch: Arch = "gpt2", seed: int = 0, d: int = 32, layers: int = 2,
    heads: int = 2, max_len: int = 128, chat_template: str | None = CHAT_TEMPLATE, **config: Any,
):
    """Save a randomly initialised tiny causal LM with its tokenizer to `out`; return (model, tokenizer).

    Extra keyword arguments are set on the model config (e.g. `resid_pdrop=0.0` for GPT-2).
    """
    import torch
    from transformers import AutoModelForCausalLM

    tok = word_tokenizer(words, chat_template=chat_template)
    torch.manual_seed(seed)
    cfg = _config(arch, len(tok), d=d, layers=layers, heads=heads, max_len=max_len, **config)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return model, tok


def build_reward_model(
    out: str | Path, words: Sequence[str], *, arch: Arch = "llama", seed: int = 0, d: int = 32, layers: int = 1,
    heads: int = 2, max_len: int = 128, num_labels: int = 1, chat_template: str | None = CHAT_TEMPLATE,
):
    """Save a randomly initialised tiny sequence classifier (scalar head by default); return (model, tok)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    tok = word_tokenizer(words, chat_template=chat_template)
    torch.manual_seed(seed)
    cfg = _config(arch, len(tok), d=d, layers=layers, heads=heads, max_len=max_len, num_labels=num_labels)
    model = AutoModelForSequenceClassification.from_config(cfg)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return model, tok
