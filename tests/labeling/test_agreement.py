"""Inter-labeler agreement: pairwise, overall and per labeler."""

from __future__ import annotations

import pytest

from instructgpt.labeling.agreement import agreement_metrics, pairwise_agreement


def test_pairwise_agreement():
    assert pairwise_agreement([0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert pairwise_agreement([0, 1, 2, 3], [3, 2, 1, 0]) == 0.0
    assert pairwise_agreement([0, 1, 2], [1, 0, 2]) == pytest.approx(2 / 3)
    assert pairwise_agreement([1, 0], [1, 0]) == 1.0 and pairwise_agreement([1, 0], [0, 1]) == 0.0
    with pytest.raises(ValueError, match="do not rank the same items"):
        pairwise_agreement([0, 1], [0, 2])


def r(pid, responses, best_first, labeler):
    """A ranking record from the responses best first (listed in ``responses`` order)."""
    return {"prompt_id": pid, "responses": responses, "ranking": [responses.index(x) for x in best_first],
            "labeler_id": labeler}


def test_overall_and_per_labeler_over_pairs_of_different_labelers():
    rankings = [
        # p1: alice and bob agree fully; carol reverses the last two (agreement 2/3 with each)
        r("p1", ["a", "b", "c"], ["a", "b", "c"], "alice"),
        r("p1", ["c", "b", "a"], ["a", "b", "c"], "bob"),  # same set listed in another order
        r("p1", ["a", "b", "c"], ["a", "c", "b"], "carol"),
        # p2: alice and bob disagree on the only pair
        r("p2", ["x", "y"], ["x", "y"], "alice"),
        r("p2", ["x", "y"], ["y", "x"], "bob"),
        # p2 with other responses: only one labeler, not compared; same labeler twice not compared
        r("p2", ["x", "z"], ["x", "z"], "alice"),
        r("p3", ["u", "v"], ["u", "v"], "dan"),
        r("p3", ["u", "v"], ["v", "u"], "dan"),
    ]
    m = agreement_metrics(rankings)
    # pairs: (alice,bob,p1)=1, (alice,carol)=2/3, (bob,carol)=2/3, (alice,bob,p2)=0
    assert m["agreement/pairs"] == 4 and m["agreement/sets"] == 2
    assert m["agreement/overall"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 0) / 4)
    assert m["agreement/labeler/alice"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["agreement/labeler/bob"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert m["agreement/labeler/carol"] == pytest.approx(2 / 3)
    assert "agreement/labeler/dan" not in m


def test_no_overlap_reports_counts_only_and_labeler_ids_become_metric_names():
    assert agreement_metrics([r("p1", ["a", "b"], ["a", "b"], "x")]) == {"agreement/pairs": 0, "agreement/sets": 0}
    m = agreement_metrics([r("p1", ["a", "b"], ["a", "b"], "label-studio:2"),
                           r("p1", ["a", "b"], ["a", "b"], "ann/e smith")])
    assert set(m) >= {"agreement/labeler/label-studio:2", "agreement/labeler/ann_e_smith"}
