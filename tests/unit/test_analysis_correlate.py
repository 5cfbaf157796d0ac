"""Loss-ceiling correlation (PAPER 1.6) on the study's numbers and on hand-checked cases."""
import math

import pytest

from plasticity.analysis.correlate import (best_ceilings, loss_ceiling_correlation, pearson,
                                           spearman)

# PAPER 5.3 minimum validation losses; SFT889K's best A_post 84.0 is Table 4's. The other ceilings are
# read from the study's Figure 8 ordering only (monotone), so the test checks the sign and Spearman.
LOSSES = {"S1K": 0.51, "Easy102K": 0.44, "Uniform102K": 0.42, "Hard102K": 0.40, "SFT889K": 0.37}


def test_pearson_and_spearman_basics():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)   # ties
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError):
        pearson([1], [2])


def test_study_direction():
    ceilings = {"S1K": 66.0, "Easy102K": 80.5, "Uniform102K": 81.5, "Hard102K": 82.5, "SFT889K": 84.0}
    res = loss_ceiling_correlation(LOSSES, ceilings)
    assert res["spearman"] == pytest.approx(-1.0)
    assert res["pearson"] < -0.9 and res["slope"] < 0
    assert res["datasets"] == sorted(LOSSES)


def test_best_ceilings_skips_pure_rl_and_failed():
    fits = [{"dataset": "A", "a_post": 80.0, "status": "ok"},
            {"dataset": "A", "a_post": 82.0, "status": "ok"},
            {"dataset": "A", "a_post": 99.0, "status": "failed"},
            {"dataset": "A", "a_post": 98.0, "status": "bound"},
            {"dataset": "pure_rl", "a_post": 90.0, "status": "ok"},
            {"dataset": "B", "a_post": float("nan"), "status": "ok"}]
    best = best_ceilings(fits)
    assert list(best) == ["A"] and best["A"]["a_post"] == 82.0
    with pytest.raises(ValueError, match="need >= 2 datasets"):
        loss_ceiling_correlation({"A": 0.4}, {"A": 82.0})
