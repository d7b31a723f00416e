"""The toy task: repeat the list of animals a prompt names, in English or in Spanish, and nothing else.

A prompt is `list` followed by two to four distinct animals in English (`list cat frog duck`). A response is
a sequence of words; the perfect response names the prompt's animals one per word, in the prompt's order,
in either language (`cat frog duck`, `gato rana pato`, `cat rana duck`), and stops. `ground_truth` grades it:

    q   = (1/k) * #{j <= k : word j names the prompt's j-th animal} - 0.2 * #(words beyond the k-th)
    r_G = (1 + max(q, -1)) / 2                                                     in [0, 1]

with k the number of animals in the prompt. A skipped animal shifts every later word off its slot; a
repeated or unasked animal or a filler takes a slot or adds a word. So r_G is graded, and whether `cat` is
good depends on the prompt and on where `cat` stands: no single-token feature predicts it. Slots (rather
than counting the animals named anywhere) because a tiny RM started from a policy that copies lists can
learn them: with a counting grade the zoo's RMs rewarded any extra animal word, and policy gradient
exploited that (repeated or unasked animals) within a few dozen steps.

r_G is a grade: 1 for the perfect answer, 0.5 for saying nothing, less for babble (wrong answers are worse
than silence). Its zero point matters for one thing only: the paper's low-variance RM multiplies raw
rewards by 0.001 on half the prompts, which flattens a reward whose typical values sit well above zero (as
here) much more than one centred on zero.

Responses are written by `write_response` from a `Style` (language, keep / shuffle / junk rates): the
demonstrations the policies are trained on and the off-policy preference data come from it, the on-policy
data from the policies themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

# (English, Spanish) names of the animals; prompts use the English ones.
ITEMS: tuple[tuple[str, str], ...] = (
    ("cat", "gato"), ("dog", "perro"), ("bird", "pajaro"), ("fish", "pez"), ("horse", "caballo"),
    ("cow", "vaca"), ("pig", "cerdo"), ("mouse", "raton"), ("bear", "oso"), ("wolf", "lobo"),
    ("frog", "rana"), ("duck", "pato"),
)
FILLERS: tuple[str, ...] = ("the", "a", "and", "um", "very", "so", "also", "then")
INSTRUCTION = "list"
MIN_ITEMS, MAX_ITEMS = 2, 4
MAX_RESPONSE_WORDS = 12
EXTRA_WORD_PENALTY = 0.2
REWARD_RANGE = (0.0, 1.0)

ENGLISH = tuple(e for e, _ in ITEMS)
SPANISH = tuple(s for _, s in ITEMS)
WORDS: tuple[str, ...] = (INSTRUCTION, *ENGLISH, *SPANISH, *FILLERS)  # the tokenizer's vocabulary
_ITEM_OF = {w: i for i, (e, s) in enumerate(ITEMS) for w in (e, s)}  # word -> item index
_PROMPT_ITEM = {e: i for i, e in enumerate(ENGLISH)}
_END = ("<eos>", "<pad>")  # a completion decoded without skipping specials ends at these


# ----------------------------------------------------------------------------------------------------------
# Ground truth


def prompt_items(prompt: str) -> list[int]:
    """The animals (item indices) a prompt asks for, in order, duplicates dropped.

    Any other word is ignored, so a chat-formatted prompt (`User: list cat dog Assistant:`) parses the same.

    >>> prompt_items("list cat frog")
    [0, 10]
    """
    out: list[int] = []
    for w in prompt.split():
        i = _PROMPT_ITEM.get(w)
        if i is not None and i not in out:
            out.append(i)
    return out


def score(prompt: str, completion: str) -> float:
    """The ground-truth reward of one (prompt, completion) pair, in [0, 1] (see the module docstring).

    A prompt that names no animal scores 0.5 (silence) for every completion.

    >>> score("list cat dog", "cat perro")
    1.0
    >>> score("list cat dog frog", "cat frog")  # dog skipped: frog is off its slot; q = 1/3
    0.6666666666666666
    >>> score("list cat dog", "cat the dog")  # the filler takes dog's slot and adds a word; q = 0.3
    0.65
    """
    wanted = prompt_items(prompt)
    if not wanted:
        return 0.5
    words = completion.split()
    for end in _END:
        if end in words:
            words = words[: words.index(end)]
    k = len(wanted)
    hits = sum(_ITEM_OF.get(w) == wanted[j] for j, w in enumerate(words[:k]))
    extra = max(0, len(words) - k)
    q = hits / k - EXTRA_WORD_PENALTY * extra  # in [-inf, 1]
    return (1.0 + max(q, -1.0)) / 2.0


def _text(x: Any) -> str:
    """Plain text of a prompt or completion given as a string or as chat messages (TRL's conversational form)."""
    if isinstance(x, str):
        return x
    if isinstance(x, (list, tuple)):
        return " ".join(m.get("content", "") if isinstance(m, dict) else str(m) for m in x)
    return str(x)


def ground_truth(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """The toy world's ground-truth reward with TRL's reward-function signature.

    Arguments:
        prompts: raw prompt texts (`list cat dog`); chat-formatted text or message lists also work.
        completions: decoded completions (`cat perro`), or message lists.
        **kwargs: ignored (TRL passes dataset columns).

    Returns:
        One float in [0, 1] per completion.

    >>> ground_truth(["list cat dog", "list cat dog"], ["cat dog", "cat"])
    [1.0, 0.75]
    """
    return [score(_text(p), _text(c)) for p, c in zip(prompts, completions)]


# ----------------------------------------------------------------------------------------------------------
# Prompts and written responses


def sample_prompts(
    n: int, rng: np.random.Generator, *, exclude: set[str] | None = None, distinct: bool = True
) -> list[str]:
    """`n` prompts (`list` + 2..4 distinct animals), none of them in `exclude`.

    The number of animals is drawn uniformly; with `distinct`, repeats are redrawn (there are only 132
    two-animal prompts, so large distinct sets hold fewer of those).
    """
    seen = set(exclude or ())
    out: list[str] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 1000 * (n + 1):
            raise ValueError(f"cannot draw {n} prompts outside the {len(seen)} excluded ones")
        k = int(rng.integers(MIN_ITEMS, MAX_ITEMS + 1))
        items = rng.choice(len(ITEMS), size=k, replace=False)
        text = " ".join([INSTRUCTION, *(ENGLISH[i] for i in items)])
        if text not in seen:
            if distinct:
                seen.add(text)
            out.append(text)
    return out


@dataclass(frozen=True)
class Style:
    """How a writer answers: its language, how often it forgets, shuffles, or pads with junk.

    Attributes:
        spanish: probability that a response is written in Spanish (else English).
        keep: probability that each prompt animal is named.
        shuffle: probability that the named animals are shuffled.
        junk: mean number of junk words (Poisson) inserted at random places.
        wrong_item: share of junk words that are animals the prompt does not name.
        repeat: share of junk words that repeat an animal already named (the rest are fillers).
        mix: probability that each animal word is in the other language than the response's.
    """

    spanish: float
    keep: float
    shuffle: float
    junk: float
    wrong_item: float = 0.3
    repeat: float = 0.0
    mix: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def write_response(prompt: str, style: Style, rng: np.random.Generator) -> str:
    """One response to `prompt` written in `style` (at most `MAX_RESPONSE_WORDS` words)."""
    wanted = prompt_items(prompt)
    spanish = rng.random() < style.spanish
    keep = [i for i in wanted if rng.random() < style.keep]
    if len(keep) > 1 and rng.random() < style.shuffle:
        keep = [keep[j] for j in rng.permutation(len(keep))]
    words = [ITEMS[i][int(spanish != (rng.random() < style.mix))] for i in keep]
    named = list(words)
    for _ in range(int(rng.poisson(style.junk))):
        kind = rng.random()
        if kind < style.wrong_item:
            others = [i for i in range(len(ITEMS)) if i not in wanted]
            w = ITEMS[int(rng.choice(others))][int(spanish)]
        elif kind < style.wrong_item + style.repeat and named:
            w = named[int(rng.integers(len(named)))]
        else:
            w = FILLERS[int(rng.integers(len(FILLERS)))]
        words.insert(int(rng.integers(len(words) + 1)), w)
    return " ".join(words[:MAX_RESPONSE_WORDS])
