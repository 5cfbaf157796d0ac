"""The verdict table (tests/fixtures/grading/cases.jsonl, expectations computed by real math-verify)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from plasticity.grading import Grader, grade, grade_naive

CASES = [json.loads(line) for line in
         (Path(__file__).parents[1] / "fixtures" / "grading" / "cases.jsonl").read_text().splitlines()]


def test_table_is_broad():
    assert len(CASES) >= 200
    cats = Counter(c["category"] for c in CASES)
    for needed in ["integer", "thousands", "fraction", "radical", "interval", "unit", "degree", "text", "choice",
                   "percent", "set", "tuple", "malformed", "decimal"]:
        assert cats[needed] >= 3, needed
    assert sum(c["strict"] != c["lenient"] for c in CASES) >= 10   # lenient really differs somewhere
    assert 0.3 < sum(c["strict"] for c in CASES) / len(CASES) < 0.8


@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_grader_matches_table(mode):
    with Grader(mode, workers=2, timeout_s=10) as g:
        verdicts = g.grade_many([c["completion"] for c in CASES], [c["reference"] for c in CASES])
    wrong = [(c["id"], c["reference"], c["completion"][-50:], v) for c, v in zip(CASES, verdicts)
             if v.correct != c[mode]]
    assert not wrong
    for c, v in zip(CASES, verdicts):
        assert v.extracted == c["extracted"]
        if mode == "strict":
            assert v.reason == c["strict_reason"]
        elif c["lenient_rule"] in {"string", "numeric", "choice"}:
            assert v.rule == c["lenient_rule"]
        else:  # math-verify decided; the fast path may have stood in for it
            assert v.rule in {"math_verify", "fast_numeric", "fast_exact", "fast_identical", "none"}


def test_naive_path_matches_table():
    """Regrading in-process with math-verify reproduces the table (guards a math-verify upgrade)."""
    for c in CASES[::3]:
        assert grade_naive(c["completion"], c["reference"], "strict").correct == c["strict"], c


def test_module_level_grade():
    assert grade("<think>\n7-3=4\n</think>\n<answer>\\boxed{4}</answer>", "4").correct
    v = grade("no answer here", "4")
    assert (v.correct, v.rule, v.reason) == (False, "none", "no_answer")
    assert grade("<answer>B.</answer>", "B").correct                       # AoPS tidying: strict
    assert grade("<answer>B) 42 m</answer>", "B", mode="lenient").rule == "choice"
    assert grade("\\boxed{\\dfrac{1}{2}}", "0.5").correct


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        Grader("fuzzy")
    with Grader() as g, pytest.raises(ValueError, match="2 completions but 1"):
        g.grade_many(["a", "b"], ["a"])


def test_unread_responses_are_probed_once_for_all_golds():
    """Responses without box or span that math-verify reads nothing from cost one gold-independent
    probe per distinct text, with the verdicts math-verify gives item by item."""
    completions = ["<think>t</think>I am not sure about the final value."] * 6 + ["<think>t</think>The answer is 4"] * 2
    refs = ["1", "2", "\\frac{1}{2}", "x+1", "\\text{Monday}", "(1,2)", "4", "5"]
    with Grader("strict", workers=1, timeout_s=10) as g:
        verdicts = g.grade_many(completions, refs)
        assert g.stats["pool"] == 2 + 2           # two probes, then the two readable responses in full
    assert verdicts == [grade_naive(c, r) for c, r in zip(completions, refs)]
    assert [v.reason for v in verdicts[:6]] == ["no_answer"] * 6 and verdicts[6].correct and not verdicts[7].correct
