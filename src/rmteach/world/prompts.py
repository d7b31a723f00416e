"""The real world's prompt sets, written from word lists and a seed (nothing is downloaded).

A prompt asks for a short product review: `Write a two-sentence review of the {product} you {context}. Begin
with "{opener}"`. The policy's answer is what every RM and the judge score. Train and eval sets are disjoint
draws from all the combinations, in an order fixed by the seed.
"""

from __future__ import annotations

import numpy as np

PRODUCTS: tuple[str, ...] = (
    "wireless headphones", "coffee grinder", "hiking backpack", "desk lamp", "electric kettle", "yoga mat",
    "bluetooth speaker", "rain jacket", "cast iron pan", "office chair", "phone case", "running shoes",
    "mechanical keyboard", "water bottle", "board game", "paperback novel", "robot vacuum", "travel mug",
    "winter gloves", "camping tent", "blender", "smart watch", "bike helmet", "garden hose",
)
CONTEXTS: tuple[str, ...] = (
    "bought last week", "got as a birthday present", "have used every day for a month",
    "ordered online", "took on a weekend trip", "bought on sale", "replaced your old one with",
    "tried for the first time yesterday",
)
OPENERS: tuple[str, ...] = (
    "Honestly,", "I have to say", "After a few days,", "To be fair,", "Right out of the box,", "My first impression:",
    "Overall,", "I was surprised that", "Compared to my old one,", "In short,", "The first thing I noticed",
    "Well,",
)
TEMPLATE = 'Write a two-sentence review of the {product} you {context}. Begin with "{opener}"'


def all_prompts() -> list[str]:
    """Every prompt the word lists make, in a fixed order (24 x 8 x 12 = 2304)."""
    return [TEMPLATE.format(product=p, context=c, opener=o) for p in PRODUCTS for c in CONTEXTS for o in OPENERS]


def prompt_sets(n_train: int, n_eval: int, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint train and eval prompt sets, drawn without replacement in a seeded order.

    >>> train, eval_ = prompt_sets(3, 2, seed=0)
    >>> len(train), len(eval_), len(set(train) | set(eval_))
    (3, 2, 5)
    """
    pool = all_prompts()
    if n_train + n_eval > len(pool):
        raise ValueError(f"{n_train} + {n_eval} prompts asked; the word lists make {len(pool)}")
    order = np.random.default_rng(seed).permutation(len(pool))
    picked = [pool[i] for i in order[: n_train + n_eval]]
    return picked[n_eval:], picked[:n_eval]  # eval first: its set does not change with n_train


def rows(prompts: list[str], prefix: str) -> list[dict[str, str]]:
    """JSONL rows `{id, prompt}` with ids `<prefix>-0000`, ...

    >>> rows(["a"], "eval")
    [{'id': 'eval-0000', 'prompt': 'a'}]
    """
    return [{"id": f"{prefix}-{i:04d}", "prompt": p} for i, p in enumerate(prompts)]


# A base model (Gemma-3-270M) has no chat template and, given the bare request, continues it as more
# instructions. Its folder gets this plain-text format as its chat template instead (samplers, the trainer and
# gradients all render prompts through it): one worked example (a mixed review, so that a positive one is
# still something to learn), then `Request: ...` and the cue `Review:`. Generation stops at a blank line.
BASE_EXAMPLE = (TEMPLATE.format(product="alarm clock", context="bought last month", opener="So far,"),
                "So far, the alarm clock keeps good time and the display is easy to read. The buttons feel a "
                "little cheap, though.")


def jinja_literal(s: str) -> str:
    """`s` as a Jinja string literal.

    >>> jinja_literal('a "b"\\n')
    '"a \\\\"b\\\\"\\\\n"'
    """
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def base_template() -> str:
    """The plain-text chat template of a base-model policy: BOS, the worked example, then each user turn as
    `Request: ...`, each assistant turn as `Review: ...` and a blank line, a system turn as itself and a blank
    line; the generation prompt is `Review:`."""
    request, review = BASE_EXAMPLE
    shot = jinja_literal(f"Request: {request}\nReview: {review}\n\n")
    return ("{{ bos_token }}{{ " + shot + " }}{% for m in messages %}"
            "{% if m['role'] == 'user' %}{{ 'Request: ' + m['content'] + '\\n' }}"
            "{% elif m['role'] == 'assistant' %}{{ 'Review: ' + m['content'] + '\\n\\n' }}"
            "{% else %}{{ m['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
            "{% if add_generation_prompt %}{{ 'Review:' }}{% endif %}")
