"""plasticity.extraction: the evaluator's and the reward's orders (PAPER.md 2.5); linear on huge inputs."""
from __future__ import annotations

import pytest

from plasticity.data import text
from plasticity.extraction import extract, last_boxed, tidy
from plasticity.grading import extract_answer


def test_last_box_and_span():
    assert extract_answer("\\boxed{1} then \\boxed{2}") == "2"
    assert extract_answer("\\fbox{7}") == "7"
    assert extract_answer("\\boxed {\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_answer("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"          # escaped braces are literal
    assert extract_answer("<answer> 12 </answer>") == "12"
    assert extract_answer("<answer>1</answer> <answer>2</answer>") == "2"
    assert extract_answer("\\boxed{3} and \\boxed{4") == "3"           # unclosed last box: last closed one
    assert extract_answer("") is None
    assert extract_answer("<answer>unclosed") == "<answer>unclosed"    # no box, no span: the response


def test_evaluator_reads_the_span_before_a_box_in_the_reasoning():
    completion = "<think>try \\boxed{3}?</think><answer>The answer is 5.</answer>"
    assert extract(completion, "eval") == extract(completion, "eval").__class__("The answer is 5.", "span")
    assert extract(completion, "reward").text == "3"                   # the reward reads the box first
    both = "<think>\\boxed{3}</think><answer>so \\boxed{5}</answer>"
    assert extract(both, "eval").text == "5" and extract(both, "eval").kind == "box"
    assert extract("<answer>1</answer> \\boxed{3}", "eval").text == "1"
    assert extract("<answer>1</answer> \\boxed{3}", "reward").text == "3"


def test_response_fallback_reads_after_think():
    found = extract("<think>2+2 is 4, or 5</think>\nThe answer is 4", "eval")
    assert (found.text, found.kind) == ("The answer is 4", "text")
    assert extract("x" * 10_000 + " 7", "reward").text == ("x" * 10_000 + " 7")[-2000:]
    assert extract("<think>only thinking</think>  ", "eval").text is None
    with pytest.raises(ValueError, match="order"):
        extract("\\boxed{1}", "both")


def test_every_outermost_box_of_the_region():
    assert extract("\\boxed{69}, \\boxed{84}").boxes == ("69", "84")
    assert extract("\\boxed{\\boxed{2}} and \\boxed{3}").boxes == ("\\boxed{2}", "3")
    assert extract("<think>\\boxed{1}</think><answer>\\boxed{2} \\boxed{3}</answer>").boxes == ("2", "3")


def test_data_filter_uses_the_same_extractor():
    # The format filter once found no box where the grader extracted one (escaped brace inside).
    box = "\\boxed{\\left\\{1\\right.}"
    assert text.last_boxed(box) == extract_answer(box) == "\\left\\{1\\right."
    assert text.format_problem("<think>a</think> " + box) is None
    assert text.last_boxed is last_boxed


def test_tidy_aops_spellings():
    assert tidy("104.") == "104"
    assert tidy("\\textbf{(073)}") == "073"
    assert tidy("\\text{(B)}") == "B"
    assert tidy("\\frac{1}{2}.") == "\\frac{1}{2}"
    assert tidy("1.5") == "1.5" and tidy("\\text{Monday}") == "\\text{Monday}" and tidy("(1, 2)") == "(1, 2)"


def test_huge_inputs_are_linear():
    # Each finishes in well under a second on a slow machine; a quadratic scan would take minutes.
    assert extract("\\boxed{" * 200_000).kind == "text"
    assert extract_answer("{" * 500_000 + "\\boxed{5}") == "5"
    assert extract_answer("\\boxed{5}" + "\\boxed{" * 200_000) == "5"
    assert extract_answer("x" * 1_000_000 + "<answer>9</answer>") == "9"
    assert extract_answer("}" * 300_000 + "\\boxed{" + "{}" * 100_000 + "}") == "{}" * 100_000
