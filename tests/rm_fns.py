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
