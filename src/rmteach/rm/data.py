"""The data of `rmteach rm train`: the mix's preference sets read and drawn, and the tokenized RewardTrainer sets.

The RM must read at training time exactly the tokens it is scored on later: `rmteach.backends.reward_hf`
scores `format_conversation(tok, prompt, response)` (the chat template's user and assistant turns, or prompt
+ response) tokenized without special tokens. TRL's RewardTrainer would append an EOS and add the tokenizer's
special tokens to a text set, so the sets here are handed over already tokenized (`chosen_ids`,
`rejected_ids`), which TRL takes as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.blocks import DataConfig
from ..core.data import load_preferences
from ..core.errors import UserError
from ..core.chat import format_conversation
from ..core.progress import console
from .config import RMTrainConfig
from .mix import draw_mix, identical, shuffled, split_held_out

Row = dict[str, Any]


def read_set(cfg: DataConfig, what: str) -> list[Row]:
    """A preference set's rows (id, prompt, chosen, rejected); a pair with the same text twice is refused.

    `rmteach.core.data.load_preferences` drops such pairs with a warning (a public set may hold a few); a
    set meant to teach an RM is refused instead, with the first such id, since `rm pairs` never writes them.
    """
    try:
        pairs = load_preferences(cfg, keep_identical=True)  # refused here rather than dropped with a warning
    except UserError as e:
        raise UserError(f"{what}: {e}") from None
    same = [p.id for p in pairs if p.chosen == p.rejected]
    if same:
        raise UserError(f"{what} {cfg.where}: {len(same)} pairs have the same text as chosen and "
                        f"rejected (first: id '{same[0]}'); they carry no preference: remove them")
    # A conversation's prompt stays messages: the RM learns on the tokens evaluate scores it on.
    rows = [{"id": p.id, "prompt": p.input, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    assert not identical([r["chosen"] for r in rows], [r["rejected"] for r in rows])
    return rows


@dataclass
class MixData:
    """The pairs of a run: training rows, held-out rows, and what was drawn from where."""

    train: list[Row]
    held_out: list[Row]
    drawn: list[dict[str, Any]]  # per mix entry: name, path, fraction, pairs available, pairs drawn


def prepare_mix(cfg: RMTrainConfig) -> MixData:
    """Read every set of the mix, draw `total` pairs (seeded), and split off the held-out pairs.

    Rows get the id `<entry name>/<id>` (unique across sets) and a `source` column with the entry's name.
    """
    names = [m.label for m in cfg.mix]
    sets = [read_set(m, f"mix entry '{name}'") for m, name in zip(cfg.mix, names)]
    drawn = draw_mix(sets, [m.fraction for m in cfg.mix], cfg.total, seed=cfg.seed, names=names)
    rows = shuffled([{**r, "id": f"{name}/{r['id']}", "source": name} for name, part in zip(names, drawn)
                     for r in part], seed=cfg.seed)
    if cfg.held_out is not None:
        train, held = rows, read_set(cfg.held_out, "held_out")
    else:
        train, held = split_held_out(rows, cfg.held_out_fraction, seed=cfg.seed)
    info = [{"name": name, "path": m.where, "fraction": m.fraction, "available": len(s), "drawn": len(d)}
            for name, m, s, d in zip(names, cfg.mix, sets, drawn)]
    return MixData(train, held, info)


def encode(tok: Any, prompt: str, response: str) -> list[int]:
    """The token ids an RM with tokenizer `tok` reads for (prompt, response), as `HFRewardModel` scores them."""
    return tok(format_conversation(tok, prompt, response), add_special_tokens=False)["input_ids"]


def tokenized(tok: Any, rows: list[Row], max_length: int, what: str) -> Any:
    """A `datasets.Dataset` of `chosen_ids` / `rejected_ids` for TRL; pairs longer than `max_length` dropped.

    Raises `UserError` when no pair fits.
    """
    from datasets import Dataset

    chosen = [encode(tok, r["prompt"], r["chosen"]) for r in rows]
    rejected = [encode(tok, r["prompt"], r["rejected"]) for r in rows]
    long = {i for i in range(len(rows)) if max(len(chosen[i]), len(rejected[i])) > max_length}
    if len(long) == len(rows):
        raise UserError(f"every {what} pair is longer than {max_length} tokens: raise max_length")
    if long:
        console().print(f"[yellow]warning:[/yellow] {len(long)} of {len(rows)} {what} pairs are longer than "
                        f"{max_length} tokens and were left out (first: id '{rows[min(long)]['id']}')")
    keep = [i for i in range(len(rows)) if i not in long]
    return Dataset.from_dict({"chosen_ids": [chosen[i] for i in keep], "rejected_ids": [rejected[i] for i in keep]})
