"""extract_answer: last balanced box, then the last <answer> span; linear on huge inputs."""
from __future__ import annotations

from plasticity.grading import extract_answer


def test_last_box_and_span():
    assert extract_answer("\\boxed{1} then \\boxed{2}") == "2"
    assert extract_answer("\\fbox{7}") == "7"
    assert extract_answer("\\boxed {\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_answer("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"          # escaped braces are literal
    assert extract_answer("<answer> 12 </answer>") == "12"
    assert extract_answer("<answer>1</answer> <answer>2</answer>") == "2"
    assert extract_answer("<answer>1</answer> \\boxed{3}") == "3"      # a box beats a span
    assert extract_answer("\\boxed{3} and \\boxed{4") == "3"           # unclosed last box: last closed one
    assert extract_answer("no answer") is None
    assert extract_answer("") is None
    assert extract_answer("<answer>unclosed") is None


def test_huge_inputs_are_linear():
    # Each finishes in well under a second on a slow machine; a quadratic scan would take minutes.
    assert extract_answer("\\boxed{" * 200_000) is None
    assert extract_answer("{" * 500_000 + "\\boxed{5}") == "5"
    assert extract_answer("\\boxed{5}" + "\\boxed{" * 200_000) == "5"
    assert extract_answer("x" * 1_000_000 + "<answer>9</answer>") == "9"
    assert extract_answer("}" * 300_000 + "\\boxed{" + "{}" * 100_000 + "}") == "{}" * 100_000
