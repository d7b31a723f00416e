"""The real world's cheap candidate RMs: TRL reward callables `(prompts, completions, **kwargs) -> list[float]`.

- `vader`: VADER's compound sentiment in [-1, 1] (a lexicon with rules for negation, intensifiers, "but").
- `afinn`: the AFINN score, the SUM of word valences (-5..5 each): it grows with every repeated positive word,
  so a policy trained on it should learn to repeat "great great great" (the reward hack the zoo needs).
- `length`: the number of words, an RM that only knows "longer is better".

None of them reads the prompt. The lexicon packages are imported on first use (`pip install 'rmteach[real]'`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from .deps import load


def text(completion: Any) -> str:
    """A completion's text: a string as it is, a message list's last content.

    >>> text([{"role": "assistant", "content": "ok"}])
    'ok'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


@lru_cache(maxsize=1)
def _vader() -> Any:
    return load("vaderSentiment.vaderSentiment").SentimentIntensityAnalyzer()


@lru_cache(maxsize=1)
def _afinn() -> Any:
    return load("afinn").Afinn(language="en")


def vader(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """VADER's compound sentiment of each completion, in [-1, 1] (the prompt is not read)."""
    analyzer = _vader()
    return [float(analyzer.polarity_scores(text(c))["compound"]) for c in completions]


def afinn(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """The AFINN score of each completion: the sum of its words' valences (unbounded; repetition pays)."""
    scorer = _afinn()
    return [float(scorer.score(text(c))) for c in completions]


def length(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """The number of whitespace-separated words of each completion.

    >>> length(["p", "p"], ["a fine day", ""])
    [3.0, 0.0]
    """
    return [float(len(text(c).split())) for c in completions]
