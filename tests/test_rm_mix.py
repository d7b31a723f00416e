"""rm.mix: the counts per set, the seeded draw (nested across fractions), the held-out split, the refusals."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rmteach.core.errors import UserError
from rmteach.rm.mix import allocate, draw_mix, identical, shuffled, split_held_out


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.integers(0, 20), min_size=1, max_size=6).filter(any), total=st.integers(0, 5000))
def test_allocate_sums_to_total_and_rounds_each_share(weights, total):
    fractions = [w / sum(weights) for w in weights]
    counts = allocate(fractions, total)
    assert sum(counts) == total
    assert all(math.floor(f * total) - 1e-9 <= c <= math.ceil(f * total) + 1e-9 for f, c in zip(fractions, counts))
    assert all(c == 0 for f, c in zip(fractions, counts) if f == 0)


@pytest.mark.parametrize("fractions, total, expected", [
    ([1.0, 0.75 - 0.75], 10, [10, 0]),
    ([0.75, 0.25], 3000, [2250, 750]),
    ([0.1, 0.2, 0.7], 10, [1, 2, 7]),  # 0.1 * 10 and 0.7 * 10 are not whole in floats
    ([1 / 3, 1 / 3, 1 / 3], 10, [4, 3, 3]),
])
def test_allocate_by_hand(fractions, total, expected):
    assert allocate(fractions, total) == expected


def test_draw_is_seeded_without_replacement_and_nested_across_fractions():
    on, off = [f"on{i}" for i in range(100)], [f"off{i}" for i in range(100)]
    half = draw_mix([on, off], [0.5, 0.5], 40, seed=3, names=["on", "off"])
    assert half == draw_mix([on, off], [0.5, 0.5], 40, seed=3, names=["on", "off"])
    assert half != draw_mix([on, off], [0.5, 0.5], 40, seed=4, names=["on", "off"])
    assert [len(p) for p in half] == [20, 20] and all(len(set(p)) == len(p) for p in half)
    full = draw_mix([on, off], [1.0, 0.0], 40, seed=3, names=["on", "off"])
    assert full[0][:20] == half[0] and full[1] == []  # the paper's mixes are nested: 100 % holds the 50 %'s pairs


def test_draw_refuses_fractions_off_one_and_a_set_too_small():
    with pytest.raises(UserError, match=r"must sum to 1 \(got 0.5 \+ 0.6 = 1.1\)"):
        draw_mix([[1], [2]], [0.5, 0.6], 2, seed=0, names=["a", "b"])
    with pytest.raises(UserError, match="mix entry 'b' has 3 pairs, but 0.5 of total 10 needs 5"):
        draw_mix([list(range(10)), [1, 2, 3]], [0.5, 0.5], 10, seed=0, names=["a", "b"])


@pytest.mark.parametrize("n, fraction, held", [(10, 0.2, 2), (10, 0.0, 0), (7, 0.5, 4), (1, 0.4, 0)])
def test_split_held_out_partitions_the_rows(n, fraction, held):
    train, test = split_held_out(list(range(n)), fraction, seed=1)
    assert len(test) == held and sorted(train + test) == list(range(n))
    assert (train, test) == split_held_out(list(range(n)), fraction, seed=1)


def test_split_keeps_a_training_pair_and_shuffle_is_a_permutation():
    with pytest.raises(UserError, match="leaves none to train on"):
        split_held_out([1, 2], 0.9, seed=0)
    assert sorted(shuffled(list(range(50)), seed=0)) == list(range(50)) != shuffled(list(range(50)), seed=0)


def test_identical_finds_pairs_without_preference():
    assert identical(["a", "b", "c"], ["a", "x", "c"]) == [0, 2]
