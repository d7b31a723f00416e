"""Reward functions with TRL's signature, imported by the tests as `rm_fns:NAME`."""

from __future__ import annotations


def gold(prompts, completions, **kwargs):
    """A graded ground truth: count of 'w1' plus a small length bonus, plus a prompt-dependent bonus."""
    return [c.split().count("w1") + 0.1 * len(c.split()) + 0.01 * len(p) for p, c in zip(prompts, completions)]


def gold_cubed(prompts, completions, **kwargs):
    """A strictly increasing transform of `gold` (x -> x**3 + 2x): same accuracy everywhere."""
    return [g**3 + 2 * g for g in gold(prompts, completions)]


def constant(prompts, completions, **kwargs):
    return [0.5 for _ in completions]


def nan_on_w3(prompts, completions, **kwargs):
    return [float("nan") if "w3" in p else 1.0 for p in prompts]


def wrong_length(prompts, completions, **kwargs):
    return [1.0]


# Broken reward functions: each must end in one line and exit code 2, never a traceback.


def raises(prompts, completions, **kwargs):
    raise ValueError("the judge is down")


def returns_strings(prompts, completions, **kwargs):
    return ["1.5" for _ in completions]


def returns_none(prompts, completions, **kwargs):
    _ = [0.0 for _ in completions]  # forgot to return it


def returns_generator(prompts, completions, **kwargs):
    return (1.0 for _ in completions)


def returns_pairs(prompts, completions, **kwargs):
    import numpy as np

    return np.ones((len(completions), 2))


def gold_then_hang(prompts, completions, **kwargs):
    """`gold`, but when $RMTEACH_TEST_HANG names a file: create it, then hang (a test kills the process)."""
    import os
    import time
    from pathlib import Path

    marker = os.environ.get("RMTEACH_TEST_HANG")
    if marker:
        Path(marker).touch()
        time.sleep(600)
    return gold(prompts, completions)


def count_reference(prompts, completions, reference, **kwargs):
    """A checkable ground truth: how often the row's `reference` word occurs in the completion."""
    return [float(c.split().count(r)) for c, r in zip(completions, reference)]
