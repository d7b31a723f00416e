"""The training mix of `rmteach rm train`, pure: how many pairs each set gives, a seeded draw, the held-out split.

No file is read here: sets come in as sequences of rows (any type), so the draw is checked on plain lists.
The draw from set i depends only on (seed, i, the set's size, its count): a larger fraction of a set extends
the same selection, so the 100 % and 50 % on-policy mixes of one seed share their on-policy pairs, as the
paper's mixes are nested.
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import numpy as np

from ..core.errors import UserError
from .config import check_fractions

T = TypeVar("T")


def allocate(fractions: Sequence[float], total: int) -> list[int]:
    """Pairs per set: `fraction * total` rounded so that the counts sum to `total` (largest remainders).

    Arguments:
        fractions: shares summing to 1.
        total: pairs wanted.

    Returns:
        One count per set; ties between equal remainders go to the earlier set.

    >>> allocate([0.5, 0.25, 0.25], 10)
    [5, 3, 2]
    >>> allocate([1.0, 0.0], 7)
    [7, 0]
    """
    exact = [f * total for f in fractions]
    counts = [int(np.floor(x + 1e-9)) for x in exact]  # 1e-9: 0.3 * 10 is 2.9999999999999996
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def draw_mix(
    sets: Sequence[Sequence[T]], fractions: Sequence[float], total: int, *, seed: int, names: Sequence[str],
) -> list[list[T]]:
    """Draw `allocate(fractions, total)` rows from each set, without replacement, seeded.

    Arguments:
        sets: the preference sets, each a sequence of rows.
        fractions: each set's share of `total` (in [0, 1], summing to 1).
        total: rows wanted in all.
        seed: seed of the draw.
        names: the sets' names, for the messages.

    Returns:
        The rows drawn from each set, in the order drawn. Raises `UserError` for fractions that do not sum
        to 1 or a set with fewer rows than its share needs.

    >>> [len(rows) for rows in draw_mix([["a", "b", "c"], ["x", "y"]], [0.5, 0.5], 4, seed=0, names=["s", "t"])]
    [2, 2]
    """
    if not len(sets) == len(fractions) == len(names):
        raise ValueError("sets, fractions and names must have the same length")
    try:
        check_fractions(list(fractions))
    except ValueError as e:
        raise UserError(str(e)) from None
    counts = allocate(fractions, total)
    for rows, name, f, n in zip(sets, names, fractions, counts):
        if n > len(rows):
            raise UserError(f"mix entry '{name}' has {len(rows)} pairs, but {f:g} of total {total} needs {n}: "
                            "lower its fraction or the total, or give it more pairs")
    drawn = []
    for i, (rows, n) in enumerate(zip(sets, counts)):
        order = np.random.default_rng([seed, i]).permutation(len(rows))[:n]  # a prefix: nested in larger draws
        drawn.append([rows[j] for j in order])
    return drawn


def split_held_out(rows: Sequence[T], fraction: float, *, seed: int) -> tuple[list[T], list[T]]:
    """Shuffle `rows` (seeded) and split off `round(fraction * len(rows))` of them.

    Returns:
        (train rows, held-out rows); the held-out part is empty for fraction 0.

    >>> [len(part) for part in split_held_out(list(range(10)), 0.2, seed=0)]
    [8, 2]
    """
    order = np.random.default_rng([seed, 1_000_003]).permutation(len(rows))
    n_held = int(round(fraction * len(rows)))
    if n_held >= len(rows) and len(rows):
        raise UserError(f"held_out_fraction {fraction:g} of {len(rows)} pairs leaves none to train on")
    held = sorted(order[:n_held].tolist())
    kept = sorted(order[n_held:].tolist())
    return [rows[i] for i in kept], [rows[i] for i in held]


def shuffled(rows: Sequence[T], *, seed: int) -> list[T]:
    """`rows` in a seeded random order (the mix's sets interleaved before they are written).

    >>> sorted(shuffled([3, 1, 2], seed=0))
    [1, 2, 3]
    """
    return [rows[i] for i in np.random.default_rng([seed, 2_000_003]).permutation(len(rows))]


def identical(chosen: Sequence[str], rejected: Sequence[str]) -> list[int]:
    """Indices of the pairs whose chosen and rejected are the same text (they carry no preference).

    >>> identical(["a", "b"], ["a", "c"])
    [0]
    """
    return [i for i, (c, r) in enumerate(zip(chosen, rejected)) if c == r]
