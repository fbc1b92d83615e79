"""Win rates and Wilson intervals against values computed by hand."""

import math

import pytest

from instructgpt.winrate import wilson_interval, win_rate


def test_wilson_interval_by_hand():
    # p = 0.8, n = 100, z = 1.96: centre = (0.8 + 1.9208/100) / 1.038416, half = 1.96*sqrt(0.0016 + 0.00009604)/1.038416
    low, high = wilson_interval(80, 100)
    centre = (0.8 + 1.96**2 / 200) / (1 + 1.96**2 / 100)
    half = 1.96 * math.sqrt(0.8 * 0.2 / 100 + 1.96**2 / 40000) / (1 + 1.96**2 / 100)
    assert low == pytest.approx(centre - half) and high == pytest.approx(centre + half)
    assert low == pytest.approx(0.7112, abs=1e-4) and high == pytest.approx(0.8666, abs=1e-4)


def test_ties_count_half_and_interval_contains_rate():
    wr = win_rate([1, 0, 0.5, 0.5])
    assert wr.rate == 0.5 and wr.n == 4 and wr.wins == 2.0
    assert wr.low < 0.5 < wr.high and not wr.excludes(0.5)


def test_clear_winner_excludes_half():
    wr = win_rate([1.0] * 90 + [0.0] * 10)
    assert wr.rate == 0.9 and wr.excludes(0.5)


def test_empty_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_champion_rule():
    from instructgpt.winrate import should_promote

    assert should_promote(None)  # no champion yet
    assert should_promote(win_rate([1.0] * 70 + [0.0] * 30))  # clearly better
    assert not should_promote(win_rate([1.0] * 30 + [0.0] * 70))  # worse
    assert not should_promote(win_rate([1.0, 0.0] * 50))  # a tie
    assert not should_promote(win_rate([1.0] * 55 + [0.0] * 45))  # better, but not significantly
