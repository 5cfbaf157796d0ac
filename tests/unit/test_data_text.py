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


def test_words_split_operators():
    assert text.words("7-3+5=") == ["7", "-", "3", "+", "5", "="]
    assert text.words("7+3-5=") != text.words("7-3+5=")
    assert text.words("") == []


def _format_problem_two_scans(response):
    """The format check written plainly (first <think>, first </think> after it, no <think> between)."""
    open_at = response.find("<think>")
    if open_at < 0:
        return "no <think>"
    close_at = response.find("</think>", open_at)
    if close_at < 0:
        return "no </think>"
    if response.find("<think>", open_at + 7, close_at) >= 0:
        return "nested <think>"
    if text.last_boxed(response[close_at:]) is None:
        return "no \\boxed{} after </think>"
    return None


def test_format_problem_single_scan_agrees_with_the_plain_definition():
    import random

    pieces = ["<think>", "</think>", "think>", "<", "</", "/", "think", ">", "x", "\\boxed{1}", "{", "}",
              "<thin", "k>", "</th", "ink>", "<<", "<//", "\n"]
    rng = random.Random(0)
    for _ in range(20_000):
        response = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert text.format_problem(response) == _format_problem_two_scans(response), response
