"""An exception while grading one item grades that item wrong (reason ``error:<class>``), never the
batch; the count reaches the grade stage's scores and the RL train log; log lines stay short."""
from __future__ import annotations

import logging

import pytest

from plasticity import grading
from plasticity.grading import QUOTE_CHARS, Grader, gold_text, is_error, math_verify_verdict, quote
from plasticity.train.rewards import GRADING_ERROR_METRIC, make_reward_fn, step_grading_errors

# in-process (fast path) items and math-verify (pool) items, with their verdicts alone
ITEMS = [("\\boxed{4}", "4", True), ("\\boxed{5}", "4", False), ("\\boxed{(x+1)^2}", "x^2+2x+1", True),
         ("\\boxed{2(x+1)}", "2x+2", True), ("\\boxed{x+3}", "x+2", False)]
LONG_LINE = 3 * QUOTE_CHARS + 200      # a log line quoting items stays below this


def _raising_on(target, answer):
    def wrapped(*args):
        if answer in args:
            raise ValueError("planted: " + "9" * 100_000)
        return target(*args)
    return wrapped


@pytest.mark.parametrize("where, answer", [("fast_verdict", "7"), ("_guard", "x+7")])
def test_one_raising_item_is_wrong_and_the_batch_goes_on(monkeypatch, caplog, where, answer):
    """A planted exception in the in-process fast path, or after math-verify (pool) answered."""
    monkeypatch.setattr(grading, where, _raising_on(getattr(grading, where), answer))
    completions = [c for c, _, _ in ITEMS]
    refs = [r for _, r, _ in ITEMS]
    completions.insert(3, f"\\boxed{{{answer}}}")        # the raising item amid the others
    refs.insert(3, "7")
    with caplog.at_level(logging.WARNING, logger="plasticity.grading"), Grader("strict", workers=1) as g:
        verdicts = g.grade_many(completions, refs)
        bad = verdicts.pop(3)
        assert [v.correct for v in verdicts] == [ok for _, _, ok in ITEMS]
        assert (bad.correct, bad.rule, bad.reason, is_error(bad)) == (False, "error", "error:ValueError", True)
        assert g.stats["error"] == 1
        assert g.grade("\\boxed{(x+2)^2}", "x^2+4x+4").correct          # the pool still works
    [record] = [r for r in caplog.records if "grading raised" in r.getMessage()]
    assert "ValueError" in record.getMessage() and len(record.getMessage()) < LONG_LINE


def test_released_fallback_raising_is_caught(monkeypatch):
    monkeypatch.setattr(grading, "released_rule", _raising_on(grading.released_rule, "<answer>oops</answer>"))
    with Grader("released", order="reward") as g:
        got = g.grade_many(["<answer>oops</answer>", "<answer>\\frac{1}{3}</answer>"], ["1", "\\frac{1}{2}"])
    assert [(v.correct, v.reason) for v in got] == [(False, "error:ValueError"), (True, None)]


def test_quote_is_short_for_any_text():
    assert quote("abc") == "'abc'"
    for text in ["9" * 1_000_000, "\ud800" * 5000, "\U0001f600\x00" * 3000, "x" * QUOTE_CHARS]:
        q = quote(text)
        assert len(q) <= QUOTE_CHARS + 40, len(q)
    assert "1,000,000 characters" in quote("9" * 1_000_000)


def test_log_lines_stay_short(caplog, capfd):
    """Items are quoted, never written whole: a timed-out item of 2,000 characters in the pool's
    warning and the workers' stderr, a 1 MB text in math-verify's own warning (in-process, as the
    naive path runs it); a 1 MB box is not parsed at all (too_long) and logs nothing."""
    slow = "\\boxed{" + "{" * 900 + "1" + "}" * 900 + "}"        # 1,808 characters, nested 900 deep
    huge = "\\boxed{" + "x+" * 500_000 + "1}"
    with caplog.at_level(logging.WARNING), Grader("strict", workers=1, timeout_s=0.5) as g:
        assert g.grade(huge, "1").reason == "too_long"
        assert g.grade(slow, "1").reason == "timeout"
        assert math_verify_verdict(gold_text("1"), (huge,), timeout_s=1) == (False, "unparseable")
    messages = [r.getMessage() for r in caplog.records]
    assert any("exceeded" in m for m in messages) and any("Timeout during parsing" in m for m in messages)
    assert max(map(len, messages)) < LONG_LINE
    err = capfd.readouterr().err
    assert max(map(len, err.splitlines() or [""])) < LONG_LINE


def test_reward_fn_reports_the_rate_and_the_train_log_the_count(monkeypatch):
    monkeypatch.setattr(grading, "fast_verdict", _raising_on(grading.fast_verdict, "7"))
    logged = []
    with Grader("released", order="reward") as g:
        reward = make_reward_fn(g)
        got = reward(prompts=["p"] * 4, completions=["\\boxed{7}", "\\boxed{4}", [{"content": "\\boxed{7}"}], "x"],
                     reference_answer=["7", 4, "7", "4"], log_metric=lambda name, value: logged.append((name, value)))
    assert got == [0.0, 1.0, 0.0, 0.0]
    assert logged == [(GRADING_ERROR_METRIC, 0.5)]
    # a step of 2 rounds of 2 prompts x 4 completions, two updates; the rate lands in the first update's log
    record = {"gen_rounds": 2, "prompts": 2, "group": 4}
    rows = {"3": {GRADING_ERROR_METRIC: 0.125, "reward": 0.5}, "4": {"loss": 1.0}}
    assert step_grading_errors(rows, 2, 2, record) == 2
    assert step_grading_errors(rows, 1, 2, record) is None
