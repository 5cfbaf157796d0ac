"""Loss-ceiling correlation (PAPER 1.6) on the study's numbers and on hand-checked cases."""
import math

import pytest

from plasticity.analysis.correlate import best_ceilings, correlation_note, loss_ceiling_correlation

# PAPER 5.3 minimum validation losses; SFT889K's best A_post 84.0 is Table 4's. The other ceilings are
# read from the study's Figure 8 ordering only (monotone), so the test checks the sign and Spearman.
LOSSES = {"S1K": 0.51, "Easy102K": 0.44, "Uniform102K": 0.42, "Hard102K": 0.40, "SFT889K": 0.37}


def test_coefficients_on_hand_checked_cases():
    res = loss_ceiling_correlation({"a": 1, "b": 2, "c": 3}, {"a": 2, "b": 4, "c": 6})
    assert res["pearson"] == pytest.approx(1.0) and res["slope"] == pytest.approx(2.0)
    res = loss_ceiling_correlation({"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 1, "b": 8, "c": 27, "d": 64})
    assert res["spearman"] == pytest.approx(1.0) and res["pearson"] < 0.99     # monotone, not linear
    res = loss_ceiling_correlation({"a": 1, "b": 2, "c": 2, "d": 3}, {"a": 3, "b": 2, "c": 2, "d": 1})
    assert res["spearman"] == pytest.approx(-1.0)                             # ties
    assert math.isnan(loss_ceiling_correlation({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 3})["pearson"])


def test_study_direction():
    ceilings = {"S1K": 66.0, "Easy102K": 80.5, "Uniform102K": 81.5, "Hard102K": 82.5, "SFT889K": 84.0}
    res = loss_ceiling_correlation(LOSSES, ceilings)
    assert res["spearman"] == pytest.approx(-1.0)
    assert res["pearson"] < -0.9 and res["slope"] < 0
    assert res["datasets"] == sorted(LOSSES)


def test_best_ceilings_use_identifiable_branches_only():
    fits = [{"dataset": "A", "a_post": 80.0, "status": "ok"},
            {"dataset": "A", "a_post": 82.0, "status": "poor_fit"},
            {"dataset": "A", "a_post": 99.0, "status": "failed"},
            {"dataset": "A", "a_post": 98.0, "status": "bound"},
            {"dataset": "A", "a_post": 97.0, "status": "extrapolated"},
            {"dataset": "A", "a_post": 96.0, "status": "collapsed"},     # one peak, not a ceiling
            {"dataset": "C", "a_post": 50.0, "status": "flat"},
            {"dataset": "D", "a_post": 70.0, "status": "extrapolated"},
            {"dataset": "pure_rl", "a_post": 90.0, "status": "ok"},
            {"dataset": "B", "a_post": float("nan"), "status": "ok"}]
    best = best_ceilings(fits)
    assert sorted(best) == ["A", "C"] and best["A"]["a_post"] == 80.0
    one = loss_ceiling_correlation({"A": 0.4, "C": 0.5}, {"A": 80.0})   # C has no ceiling
    assert one["too_few"] and one["datasets"] == ["A"] and math.isnan(one["pearson"]) \
        and math.isnan(one["slope"])
    assert correlation_note(one).startswith("No correlation") and "1 here" in correlation_note(one)
    assert not loss_ceiling_correlation(LOSSES, {k: 50.0 + i for i, k in enumerate(LOSSES)})["too_few"]
