"""The study's GPU training reward (``rl.reward: released``): each fallback's verdicts on hand cases.

Every row is (completion, reference, released verdict and rule, strict verdict): the strict column
shows what the fallback adds over math-verify alone (``rl.reward: strict``).
"""
from __future__ import annotations

import random

import pytest

from plasticity.grading import Grader, grade_naive
from plasticity.grading_released import (LEVENSHTEIN_MAX_LEN, answer_of, choice_letter, levenshtein_ratio,
                                         reference_of, released_rule)

CASES = [
    # steps 1-2: math-verify in the reward's order decides first
    ("<answer>\\boxed{\\frac{1}{2}}</answer>", "0.5", True, "fast_exact", True),
    ("<answer>x = 3</answer>", "x=3", True, "math_verify", True),
    # step 3, string: equal once the spaces around operators are gone (math-verify reads neither)
    ("<answer>a_1 = b_{2</answer>", "a_1=b_{2", True, "answer_string", False),
    ("<answer>$\\frac{1}{2$</answer>", "\\frac{1}{2", True, "answer_string", False),
    # step 3, numeric: a reference with a digit, both sides decimals -> their exact values decide
    ("<answer>1e3</answer>", "1000", True, "answer_numeric", False),
    ("<answer>124</answer>", "123", False, "fast_numeric", False),         # never Levenshtein: ratio 0.67
    ("<answer>" + "8" * 400 + "</answer>", "7" * 400, False, "fast_numeric", False),   # floats: inf == inf
    ("<answer>" + "8" * 400 + ".5</answer>", "7" * 400 + ".5", False, "math_verify", False),
    # step 3, choice: a reference without digits holding a standalone letter
    ("<answer>Option b is correct</answer>", "B", True, "answer_choice", False),
    ("<answer>I choose (c) here</answer>", "C", True, "answer_choice", False),
    ("<answer>(C)</answer>", "B", False, "math_verify", False),
    # step 4, Levenshtein ratio of the cleaned texts above 0.6 (how lenient the study's reward was)
    ("<answer>\\frac{1}{3}</answer>", "\\frac{1}{2}", True, "levenshtein", False),        # ratio 0.91
    ("<answer>\\frac{\\pi}{4}+1</answer>", "\\frac{\\pi}{4} + 2", True, "levenshtein", False),
    ("<answer>north-east</answer>", "northeast", True, "levenshtein", False),
    ("<answer>Red And Blue.</answer>", "red and blue", True, "levenshtein", False),     # cleaned: equal
    ("Red and blue", "red and blue", True, "levenshtein", False),          # no span: the whole response
    ("<answer>\\sqrt{5}</answer>", "\\frac{1}{2}", False, "math_verify", False),        # ratio 0.38
    ("<answer>the triangle is isosceles</answer>", "isosceles triangle", False, "math_verify", False),
    # nothing to compare
    ("<answer></answer>", "5", False, "none", False),
]


@pytest.fixture(scope="module")
def graders():
    with Grader("released", order="reward") as released, Grader("strict", order="reward") as strict:
        yield released, strict


def test_each_fallback_on_hand_cases(graders):
    released, strict = graders
    completions, refs = [c for c, *_ in CASES], [r for _, r, *_ in CASES]
    got, plain = released.grade_many(completions, refs), strict.grade_many(completions, refs)
    for (completion, ref, correct, rule, strict_correct), v, s in zip(CASES, got, plain):
        assert (v.correct, v.rule) == (correct, rule), (completion[:40], ref[:20])
        assert s.correct is strict_correct, (completion[:40], ref[:20])
    # the naive path (benchmark reference) applies the same fallbacks
    for (completion, ref, correct, rule, _), v in zip(CASES, got):
        assert grade_naive(completion, ref, "released", order="reward").correct is v.correct


def test_released_mode_reads_in_the_reward_order_only():
    with pytest.raises(ValueError, match="order 'reward'"):
        Grader("released")
    with Grader("released", order="reward") as g:
        assert g.fingerprint()["mode"] == "released"


def test_answer_and_reference_spans():
    assert answer_of("<answer>1</answer> then <answer> 2 </answer>") == "2"
    # as a non-greedy regex reads them: an opening runs to the next closing
    assert answer_of("<answer>a<answer>b</answer>") == "a<answer>b"
    assert answer_of("<answer>unclosed") == "<answer>unclosed"
    assert reference_of("<answer>7</answer><answer>8</answer>") == "7"
    assert choice_letter("I pick (b), not a") == "A" and choice_letter("ABC 12") is None


def _lcs_dp(a: str, b: str) -> int:
    row = [0] * (len(b) + 1)
    for ca in a:
        prev = 0
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if ca == cb else max(row[j], row[j - 1])
    return row[-1]


def test_levenshtein_ratio_is_python_levenshteins():
    # values of python-Levenshtein 0.25 (rapidfuzz Indel.normalized_similarity)
    assert levenshtein_ratio("kitten", "sitting") == pytest.approx(8 / 13)
    assert (levenshtein_ratio("", ""), levenshtein_ratio("abc", ""), levenshtein_ratio("ab", "ba")) == (1.0, 0.0, 0.5)
    rng = random.Random(21)
    for _ in range(300):
        a = "".join(rng.choice("ab1{}") for _ in range(rng.randint(0, 90)))
        b = "".join(rng.choice("ab1{}") for _ in range(rng.randint(0, 90)))
        lcs = _lcs_dp(a, b)
        assert levenshtein_ratio(a, b) == pytest.approx(2 * lcs / (len(a) + len(b)) if a or b else 1.0)


def test_levenshtein_bounds_keep_an_item_cheap():
    assert released_rule("red and blue", "x" * 1_000_000) is None          # length bound: decided at once
    assert released_rule("y" * (LEVENSHTEIN_MAX_LEN + 1), "y" * (LEVENSHTEIN_MAX_LEN + 2)) is None
    near = "ab" * (LEVENSHTEIN_MAX_LEN // 2)
    assert released_rule(near, near[:-1] + "c") == "levenshtein"           # 10,000 characters: computed
