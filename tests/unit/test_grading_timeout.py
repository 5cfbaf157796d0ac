"""Pathological answers are graded wrong within the timeout and never take the pool down."""
from __future__ import annotations

from plasticity.extraction import TEXT_TAIL
from plasticity.grading import MAX_ANSWER_CHARS, Grader, fingerprint, grade_naive, GRADER_VERSION


def test_pathological_inputs_time_out_and_pool_survives():
    nested = "\\boxed{" + "\\frac{" * 3000 + "1" + "}{2}" * 3000 + "}"
    items = [
        ("\\boxed{2^{10^{10^{10}}}}", "1"),
        (nested, "1"),
        ("x" * 1_000_000 + "\\boxed{" + "9" * 400_000 + "}", "3"),
        # symbolic answers that only math-verify decides (the fast path never sees them)
        ("<answer>\\boxed{(x+1)^2}</answer>", "x^2+2x+1"),
        ("\\boxed{\\{2, 1\\}}", "\\{1,2\\}"),
    ]
    with Grader("strict", workers=1, timeout_s=1.0) as g:
        verdicts = g.grade_many([c for c, _ in items], [r for _, r in items])
        for v in verdicts[:3]:
            assert not v.correct and v.reason in {"timeout", "unparseable", "too_long", None}
        assert verdicts[1].reason == "too_long"       # 30,001 characters: never handed to math-verify
        assert verdicts[0].reason == "timeout"
        assert verdicts[3].correct and verdicts[4].correct     # the pool kept working after the kills
        # a run of 400,000 digits is compared as a digit string in-process (grading_fastpath)
        assert (verdicts[2].rule, g.stats["fast"]) == ("fast_numeric", 1)
        assert g.stats["timeout"] >= 1
        # cached: the same pathological item again costs nothing
        assert g.grade_many([items[0][0]], ["1"])[0].reason == "timeout"


def test_dead_worker_is_replaced():
    with Grader("strict", workers=1, timeout_s=5.0) as g:
        assert g.grade("\\boxed{(x+1)^2}", "x^2+2x+1").correct
        g._pool[0].proc.kill()
        g._pool[0].proc.wait()
        assert g.grade("\\boxed{2(x+1)}", "2x+2").correct
        assert g._pool[0].proc.poll() is None


def test_a_stop_signal_to_the_process_group_leaves_the_workers_grading():
    """SIGTERM / SIGUSR1 / SIGINT reach the workers with the rest of the job: they keep grading (the stage
    saves at its next step boundary with the same verdicts), and stop when their parent closes them."""
    import signal

    with Grader("strict", workers=1, timeout_s=5.0) as g:
        assert g.grade("\\boxed{(x+1)^2}", "x^2+2x+1").correct
        worker = g._pool[0].proc
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            worker.send_signal(sig)
        assert g.grade("\\boxed{2(x+1)}", "2x+2").correct
        assert g._pool[0].proc is worker and worker.poll() is None
    assert worker.wait(timeout=10) is not None


def test_fingerprint():
    fp = fingerprint("lenient")
    assert fp == {"grader_version": GRADER_VERSION, "math_verify": "0.9.0", "mode": "lenient", "order": "eval"}
    with Grader("strict", order="reward") as g:
        assert g.fingerprint()["order"] == "reward"


def test_overrun_reason_is_stable_and_others_go_on():
    """An item past its deadline is always ``timeout`` (math-verify's own alarm is off in the workers,
    so it cannot turn the item into ``unparseable`` first); while its worker is replaced, the other
    worker goes on with the queue."""
    slow = "\\boxed{2^{10^{10^{10}}}}"
    easy = [f"\\boxed{{(x+{k})^2}}" for k in range(1, 7)]
    refs = [f"x^2+{2 * k}x+{k * k}" for k in range(1, 7)]
    with Grader("strict", workers=2, timeout_s=1.0) as g:
        g.start_workers()
        verdicts = g.grade_many([slow] + easy + [slow + " "], ["1"] + refs + ["2"])
        assert [v.reason for v in (verdicts[0], verdicts[-1])] == ["timeout", "timeout"]
        assert all(v.correct for v in verdicts[1:-1])
        assert g.stats["timeout"] == 2 and g.stats["pool"] == 6


def test_answers_past_the_bound_are_decided_without_math_verify():
    """Past MAX_ANSWER_CHARS an answer or reference is not parsed: integers compare as digit strings,
    anything else is wrong (too_long) at once; the naive path gives the same verdicts."""
    assert TEXT_TAIL <= MAX_ANSWER_CHARS          # a response's tail is always parsed
    long_sum = "x+" * MAX_ANSWER_CHARS + "1"
    n = "7" * 5000
    items = [("\\boxed{" + long_sum + "}", "1", False, "too_long"), ("\\boxed{1}", long_sum, False, "too_long"),
             ("<answer>0" + n + "</answer>", n, True, None), ("\\boxed{" + n + "}", n + "1", False, None)]
    with Grader("strict", workers=1) as g:
        verdicts = g.grade_many([c for c, *_ in items], [r for _, r, *_ in items])
        assert [(v.correct, v.reason) for v in verdicts] == [(ok, why) for *_, ok, why in items]
        assert (g.stats["too_long"], g.stats["pool"]) == (2, 0)
    for (completion, ref, ok, why), v in zip(items, verdicts):
        assert grade_naive(completion, ref) == v
