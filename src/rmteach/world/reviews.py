"""Off-policy responses for the real world's Bradley-Terry RMs: short reviews written from word lists, seeded.

The paper's off-policy preference data is written by other models and people (UltraFeedback), not sampled
from the policy being trained. Here it is written from templates: for a review request, a response is one of
`KINDS`, drawn per sample (positive, negative, mixed, off-task, a repetition of one praising word, or one
terse sentence), filled with the request's product and opener and with adjectives drawn from word lists. The
texts are fluent and varied where SmolLM2's samples ramble, so an RM trained on them sees a distribution
unlike the policy's, which is what an off-policy set is for.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

KINDS = ("positive", "negative", "mixed", "off_task", "repetitive", "terse")
GOOD = ("sturdy", "comfortable", "well made", "easy to use", "quiet", "reliable", "light", "beautiful", "fast",
        "solid", "great value", "a joy to use")
BAD = ("flimsy", "uncomfortable", "cheaply made", "hard to use", "noisy", "unreliable", "heavy", "ugly", "slow",
       "overpriced", "a pain to clean", "smaller than described")
PRAISE = ("I love it", "I would buy it again", "It was worth every penny", "I recommend it to everyone",
          "It makes my day easier", "My family loves it too")
COMPLAINTS = ("I regret buying it", "It broke within a week", "I am sending it back", "It was a waste of money",
              "I would not recommend it", "The seller never answered my questions")
OFF_TASK = ("The weather was lovely today and I went for a long walk.", "My cousin is visiting next week.",
            "I think the train was late again this morning.", "Here is a recipe for pancakes: flour, eggs, milk.",
            "The meeting moved to Thursday afternoon.", "Cats sleep for most of the day.")
REPEATED = ("great", "love", "amazing", "perfect", "best")
REQUEST = re.compile(r'review of the (?P<product>.+?) you .*Begin with "(?P<opener>[^"]+)"')


def request_parts(prompt: str) -> tuple[str, str]:
    """(product, opener) of a review request; ("product", "Honestly,") for any other prompt.

    >>> request_parts('Write a two-sentence review of the yoga mat you bought on sale. Begin with "Well,"')
    ('yoga mat', 'Well,')
    """
    m = REQUEST.search(prompt)
    return (m["product"], m["opener"]) if m else ("product", "Honestly,")


def review(prompt: str, kind: str, rng: np.random.Generator) -> str:
    """One response of `kind` to `prompt`, its words drawn with `rng`.

    >>> review('a review of the desk lamp you got. Begin with "Overall,"', "terse", np.random.default_rng(0))[:8]
    'Overall,'
    """
    product, opener = request_parts(prompt)
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    good, bad = rng.permutation(len(GOOD))[:2], rng.permutation(len(BAD))[:2]
    if kind == "positive":
        return f"{opener} the {product} is {GOOD[good[0]]} and {GOOD[good[1]]}. {pick(PRAISE)}."
    if kind == "negative":
        return f"{opener} the {product} is {BAD[bad[0]]} and {BAD[bad[1]]}. {pick(COMPLAINTS)}."
    if kind == "mixed":
        return f"{opener} the {product} is {GOOD[good[0]]}, but it is {BAD[bad[0]]}. {pick(PRAISE + COMPLAINTS)}."
    if kind == "off_task":
        return f"{pick(OFF_TASK)} {pick(OFF_TASK)}"
    if kind == "repetitive":
        return " ".join([pick(REPEATED)] * int(rng.integers(5, 11)))
    if kind == "terse":
        return f"{opener} {pick(GOOD + BAD)}."
    raise ValueError(f"unknown kind {kind!r} (allowed: {', '.join(KINDS)})")


def reviews(prompts: Sequence[str], k: int, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """`k` responses per prompt, each of a kind drawn uniformly from `KINDS`; seeded by (seed, prompt index).

    Returns:
        (responses, kinds), both (n, k).

    >>> texts, kinds = reviews(["a", "b"], 3, seed=0)
    >>> len(texts), len(texts[0]), kinds == reviews(["a", "b"], 3, seed=0)[1]
    (2, 3, True)
    """
    texts, kinds = [], []
    for i, p in enumerate(prompts):
        rng = np.random.default_rng([seed, i])
        row = [KINDS[int(j)] for j in rng.integers(len(KINDS), size=k)]
        kinds.append(row)
        texts.append([review(p, kind, rng) for kind in row])
    return texts, kinds
