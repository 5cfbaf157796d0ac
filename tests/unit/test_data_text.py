"""Pure text helpers of the data stages."""
from plasticity.data import text


def test_normalise_prompt_collapses_whitespace_and_case():
    assert text.normalise_prompt("  What  is\n2+2? ") == text.normalise_prompt("what is 2+2?")
    assert text.normalise_prompt("7-3+5=") != text.normalise_prompt("7 -3+5=")


def test_has_cjk():
    assert text.has_cjk("计算 2+2")
    assert text.has_cjk("x，y")            # full-width comma
    assert not text.has_cjk("Compute 2+2, café")


def test_last_boxed_balances_braces():
    assert text.last_boxed(r"\boxed{1} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert text.last_boxed(r"\boxed{unclosed") is None
    assert text.last_boxed("no box") is None


def test_format_problem():
    good = "<think>\n1+1=2\n</think>\n<answer>\\boxed{2}</answer>"
    assert text.format_problem(good) is None
    assert text.format_problem(good.replace("</think>", "")) == "no </think>"
    assert text.format_problem(good.replace("<think>", "")) == "no <think>"
    assert text.format_problem("<think>\\boxed{2}</think> 2") == "no \\boxed{} after </think>"
    assert text.final_answer(good) == "2"


def test_shingles_short_text_is_one_whole_shingle():
    assert text.words("7-3+5=") == ["7", "-", "3", "+", "5", "="]
    assert text.shingles("7-3+5=", 8) == ["7 - 3 + 5 ="]
    assert text.shingles("7+3-5=", 8) != text.shingles("7-3+5=", 8)
    grams = text.shingles("one two three four", 2)
    assert grams == ["one two", "two three", "three four"]
    assert text.shingles("", 8) == []
