"""Metrics: the study's micro-average headline, avg@k over all samples, pass@k, maj@k, CI."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from plasticity.eval.metrics import (avg_at_k, bootstrap_ci, maj_at_k, mean_pass_at_k, micro_average, pass_at_k,
                                     summarize)

# ../shared beside the checkout
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "sft889k_curves.csv"
COUNTS = {"gsm8k": 1317, "olympiad_bench": 291, "minerva": 262, "math": 237, "aime": 25, "aime25": 25}


def _sft_row(x_ef: float) -> dict[str, float]:
    with open(REFERENCE, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["phase"] == "sft" and abs(float(r["x_ef"]) - x_ef) < 1.0]
    return {r["benchmark"]: float(r["accuracy"]) for r in rows}


@pytest.mark.skipif(not REFERENCE.is_file(), reason="reference curves not available")
@pytest.mark.parametrize("x_ef,expected", [(0.0, 46.7), (698.4, 77.3)])  # base, SFT889K step 7200
def test_micro_average_reproduces_the_paper(x_ef, expected):
    acc = _sft_row(x_ef)
    assert set(acc) == set(COUNTS)
    assert round(micro_average(acc, COUNTS), 1) == expected
    # the macro-average would not: the headline is problem-weighted
    assert round(sum(acc.values()) / len(acc), 1) != expected


def test_summarize_weights_by_problem_count():
    per_bench = {"a": {"role": "gsm8k", "accuracy": 90.0, "n_problems": 300, "extra": 1},
                 "b": {"role": "aime", "accuracy": 10.0, "n_problems": 100}}
    s = summarize(per_bench)
    assert s["micro"] == pytest.approx(70.0) and s["macro"] == pytest.approx(50.0)
    assert s["benchmarks"]["a"] == {"role": "gsm8k", "accuracy": 90.0, "n_problems": 300}
    with pytest.raises(KeyError, match="no problem count"):
        micro_average({"x": 1.0}, {})


def test_avg_at_k_uses_all_samples_not_the_first():
    correct = [[False, True, True, True], [False, False, False, True]]
    assert avg_at_k(correct) == pytest.approx(50.0)   # first-sample-only would say 0
    assert avg_at_k([[True], [False]]) == pytest.approx(50.0)


def test_pass_at_k_unbiased():
    assert pass_at_k(4, 0, 1) == 0.0 and pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - math.comb(3, 2) / math.comb(5, 2))
    assert pass_at_k(16, 3, 8) == pytest.approx(1 - math.comb(13, 8) / math.comb(16, 8))
    assert mean_pass_at_k([[True, False], [False, False]], 1) == pytest.approx(25.0)
    with pytest.raises(ValueError):
        pass_at_k(2, 3, 1)


def test_maj_at_k():
    answers = [["4", "5", "4", None], ["1", "2", "2", "3"], [None, None]]
    correct = [[True, False, True, False], [True, False, False, False], [False, False]]
    assert maj_at_k(answers, correct) == pytest.approx(100 / 3)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    acc = [1.0, 0.0, 1.0, 0.5, 0.25, 1.0, 0.0, 0.75, 0.1, 0.9] * 5 + [0.33]
    lo, hi = bootstrap_ci(acc, seed=3)
    assert (lo, hi) == bootstrap_ci(acc, seed=3)
    assert lo < 100 * sum(acc) / len(acc) < hi
    assert (lo, hi) != bootstrap_ci(acc, seed=4)
