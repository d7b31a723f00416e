"""Prompt and preference sets: load (any source of `rmteach.core.sources`), validate, hash.

A prompt set has a `prompt` column and an optional `id` column; a preference set has `prompt`, `chosen` and
`rejected` and an optional `id`. `columns` maps the set's own names onto these (`{prompt: instruction}`).
Ids are strings or numbers, unique within a set (the row index when absent). Anything else is refused with
one line naming the source, the line or row, and the column.

Conversations (`rmteach.core.chat`): `prompt`, `chosen` and `rejected` may be lists of `{role, content}`
messages, as UltraFeedback and HH-RLHF-style sets store them. In `chosen` and `rejected` the last message must
be the assistant's response; the turns before it are the prompt (the conversation's context) and must agree
(role by role, content up to surrounding whitespace) with the `prompt` column when the set has one, and with
each other; without a `prompt` column they are the prompt. In a `prompt` column a final assistant turn is the
set's response and is left out. A one-user-turn conversation is the same prompt as its text.

Every other column of a row (`extra`) reaches reward functions as a keyword argument, one value per pair, as
TRL passes a data set's columns: a `reference` answer for a checkable ground truth, scores, metadata. Names TRL
or rmteach pass themselves (`NOT_EXTRAS`, `rmteach_*`) are not passed on.

A preference row whose `chosen` and `rejected` are the same text carries no preference: every RM ties on
it, which pulls every RM's off-policy accuracy towards 0.5 alike. Such rows are dropped with a warning that
counts them and names the first id (they are not errors: public preference sets hold a few); a set left
with no pair is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .blocks import DataConfig
from .chat import Message, PromptInput, as_prompt, as_turns, messages, prompt_text, same_turns, split_response
from .errors import UserError
from .progress import progress_bar
from .sources import Row, read_rows

# Keyword arguments TRL (or a reward backend) passes itself: a column of that name is not handed on.
NOT_EXTRAS = ("prompt", "prompts", "completion", "completions", "completion_ids", "trainer_state", "log_extra",
              "log_metric", "environments")
BIG_SET = 100_000  # rows from which checking a set shows a progress bar


@dataclass(frozen=True)
class Prompt:
    """One prompt of a set.

    Attributes:
        id: the `id` column as a string, or the row index.
        text: the prompt's text (`rmteach.core.chat.prompt_text`): what is displayed and hashed, and what the
            scale transform picks prompts by. A one-user-turn conversation's text is that turn's content.
        chat: the messages of a longer conversation (a system message, several turns), else None.
        extra: the row's other columns (name -> value), for reward functions.
    """

    id: str
    text: str
    chat: tuple[Message, ...] | None = field(default=None, hash=False)
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def input(self) -> PromptInput:
        """What samplers and reward backends receive: the text, or the conversation's messages."""
        return self.text if self.chat is None else [dict(m) for m in self.chat]


@dataclass(frozen=True)
class PreferencePair:
    """One preference pair: the prompt as in `Prompt` (`prompt` its text), the chosen and rejected responses."""

    id: str
    prompt: str
    chosen: str
    rejected: str
    chat: tuple[Message, ...] | None = field(default=None, hash=False)
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def input(self) -> PromptInput:
        """The prompt as samplers and reward backends receive it (see `Prompt.input`)."""
        return self.prompt if self.chat is None else [dict(m) for m in self.chat]


def _where(cfg: DataConfig, what: str) -> str:
    return f"{what} set {cfg.where}"


def _ids(rows: list[Row], col: str, where: str) -> list[str]:
    for i, r in enumerate(rows):
        v = r.get(col)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (str, int, float))):
            raise UserError(f"{where}: row {i}: '{col}' must be a string or a number (got {type(v).__name__})")
    ids = [str(r[col]) if r.get(col) is not None else str(i) for i, r in enumerate(rows)]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"{where}: id '{dup}' appears more than once")
    return ids


def _extra(row: Row, used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in used and k not in NOT_EXTRAS and not k.startswith("rmteach_")}


def _turns(value: Any, col: str, i: int, where: str) -> list[Message]:
    try:
        return messages(value)
    except ValueError as e:
        got = f" (got {type(value).__name__})" if not isinstance(value, (list, tuple)) else ""
        raise UserError(f"{where}: row {i}: '{col}' {e}{got}") from None


def _prompt(value: Any, col: str, i: int, where: str) -> PromptInput:
    """A prompt column's value: a string, or a conversation less a final assistant turn (the set's response)."""
    if isinstance(value, str):
        return value
    turns = _turns(value, col, i, where)
    if turns[-1]["role"] == "assistant":
        turns = turns[:-1]
    if not turns:
        raise UserError(f"{where}: row {i}: '{col}' holds only a response (an assistant turn), no prompt before it")
    return as_prompt(turns)


def _response(value: Any, col: str, i: int, where: str) -> tuple[list[Message], str]:
    """(the turns before the response, the response) of a chosen or rejected value (a string has no turns)."""
    if isinstance(value, str):
        return [], value
    try:
        return split_response(_turns(value, col, i, where))
    except ValueError as e:
        raise UserError(f"{where}: row {i}: '{col}' is a conversation, but {e}") from None


def _made(prompt: PromptInput) -> tuple[str, tuple[Message, ...] | None]:
    """(text, chat) of a prompt input."""
    return prompt_text(prompt), (None if isinstance(prompt, str) else tuple(prompt))


def load_prompts(cfg: DataConfig) -> list[Prompt]:
    """Load and validate a prompt set.

    Arguments:
        cfg: its source (see `rmteach.core.sources`), split, column names and row limit.

    Returns:
        The prompts in the set's order; `id` is the id column as a string, or the row index.
    """
    where = _where(cfg, "prompt")
    rows = read_rows(cfg, "prompt")
    col, id_col = cfg.columns.get("prompt", "prompt"), cfg.columns.get("id", "id")
    out = []
    for i, pid, row in _checking(rows, id_col, where):
        if col not in row:
            raise UserError(f"{where}: row {i} has no '{col}' column (needs: {col})")
        text, chat = _made(_prompt(row[col], col, i, where))
        out.append(Prompt(pid, text, chat, _extra(row, {col, id_col})))
    return out


def _checking(rows: list[Row], id_col: str, where: str) -> Iterator[tuple[int, str, Row]]:
    """(index, id, row) of each row; a set of `BIG_SET` rows or more shows a progress bar (a million take seconds)."""
    shown = len(rows) >= BIG_SET and os.environ.get("RANK", "0") == "0"  # the first process of a launch only
    with progress_bar(f"checking {where.rsplit('/', 1)[-1]}", len(rows), shown=shown) as advance:
        for i, (pid, row) in enumerate(zip(_ids(rows, id_col, where), rows)):
            yield i, pid, row
            if i % 10_000 == 9_999 or i == len(rows) - 1:
                advance(i % 10_000 + 1)


def _pair(row: Row, i: int, pid: str, cols: dict[str, str], id_col: str, where: str) -> PreferencePair:
    """One preference row as a pair; its conversations' contexts checked against each other and the prompt."""
    for f in ("chosen", "rejected"):
        if cols[f] not in row:
            raise UserError(f"{where}: row {i} has no '{cols[f]}' column (needs: {', '.join(cols.values())})")
    c_turns, chosen = _response(row[cols["chosen"]], cols["chosen"], i, where)
    r_turns, rejected = _response(row[cols["rejected"]], cols["rejected"], i, where)
    if cols["prompt"] in row:
        base, base_col = as_turns(_prompt(row[cols["prompt"]], cols["prompt"], i, where)), cols["prompt"]
    elif c_turns or r_turns:
        base, base_col = (c_turns, cols["chosen"]) if c_turns else (r_turns, cols["rejected"])
    else:
        raise UserError(f"{where}: row {i} has no '{cols['prompt']}' column, and '{cols['chosen']}' is no "
                        "conversation with turns before its response (needs: " + ", ".join(cols.values()) + ")")
    for turns, col in ((c_turns, cols["chosen"]), (r_turns, cols["rejected"])):
        j = same_turns(turns, base) if turns and col != base_col else None
        if j is not None:
            raise UserError(f"{where}: row {i}: the turns before the response in '{col}' differ from '{base_col}' "
                            f"(from message {j} on): a pair's chosen and rejected must answer the same prompt")
    text, chat = _made(as_prompt(base))
    return PreferencePair(pid, text, chosen, rejected, chat, _extra(row, {*cols.values(), id_col}))


def load_preferences(cfg: DataConfig, *, keep_identical: bool = False) -> list[PreferencePair]:
    """Load and validate a preference set: `prompt`, `chosen` and `rejected` strings or conversations.

    Pairs whose chosen and rejected are the same text are dropped with a warning (see the module docstring),
    unless `keep_identical` (a caller that refuses them itself); `limit` counts rows of the set, before that.
    """
    where = _where(cfg, "preference")
    rows = read_rows(cfg, "preference")
    cols = {f: cfg.columns.get(f, f) for f in ("prompt", "chosen", "rejected")}
    id_col = cfg.columns.get("id", "id")
    pairs = [_pair(r, i, pid, cols, id_col, where) for i, pid, r in _checking(rows, id_col, where)]
    kept = [p for p in pairs if p.chosen != p.rejected]
    if len(kept) < len(pairs) and not keep_identical:
        first = next(p.id for p in pairs if p.chosen == p.rejected)
        if not kept:
            raise UserError(f"{where}: every pair has the same text as chosen and rejected "
                            f"(first: id '{first}'); such pairs carry no preference")
        from .progress import console

        console().print(f"[yellow]warning:[/yellow] {where}: dropped {len(pairs) - len(kept)} of "
                        f"{len(pairs)} pairs whose chosen and rejected are the same text (first: id '{first}')",
                        soft_wrap=True)
    return pairs if keep_identical else kept


def extras_of(items: Sequence[Prompt | PreferencePair]) -> dict[str, list[Any]]:
    """The items' extra columns as {column: one value per item}: `RewardModel.score`'s `extras` (None where an
    item lacks the column).

    >>> extras_of([Prompt("0", "a", extra={"reference": "4"}), Prompt("1", "b")])
    {'reference': ['4', None]}
    """
    names = list(dict.fromkeys(k for it in items for k in it.extra))
    return {k: [it.extra.get(k) for it in items] for k in names}


def hash_prompts(prompts: list[Prompt]) -> str:
    """A stable sha256 of the ids, texts and conversations (not the extra columns: no sample depends on them),
    for cache keys. A one-user-turn conversation hashes as its text."""
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.id, p.text] if p.chat is None else [p.id, p.text, list(p.chat)]).encode())
    return h.hexdigest()


def write_jsonl(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically."""
    from .io import write_text

    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
