"""Hostile completions through every consumer of the grader (issue: a completion can crash the grader).

``N_ITEMS`` seeded hostile (completion, reference) pairs (``hostile_inputs``: digit runs of 1 to
100,000 characters inside and outside boxes, as gold and as prediction; deep brace nesting; unclosed
boxes; 1 MB inside a box; power towers and huge factorials; NUL bytes, lone surrogates,
right-to-left marks, the digits of all 66 Unicode decimal scripts; empty strings) go through

* the answer extraction alone, both orders;
* strict ``Grader.grade_many``, one item per call, each call within the grader's timeout plus its
  first-item grace plus ``MARGIN_S``; the pool healthy afterwards;
* lenient ``grade_many`` on the whole batch, which never calls wrong what strict called right;
* the RL reward function with the released reward, in batches of 64 completions as RL calls it;
* the data filter (its correctness check with THE grader) on rows built from the same pairs.

No item's grading may raise even inside the grader (``stats["error"] == 0``): the parsing itself
handles these inputs; catching is the second line (tests/unit/test_grading_errors.py).

Each strict item is timed once every worker is up (``start_workers`` before each call, untimed: it
also shows that the replacement of every killed worker starts). ``MARGIN_S`` covers the in-process
work on a 1 MB item (extraction, fast path, fallbacks; well under 0.5 s on an idle machine), the
dispatch and the killing of a timed-out worker, with room for a loaded 2-core machine.

Cost (2,000 items, a 0.5 s timeout, 2 workers; per grader the timeouts of two nesting shapes and
three towers, plus any the load adds, each a worker restart): 93 s wall and 52 s of CPU (this process and its workers) on the shared 2-core machine at a
load average of 8-10; the CPU time bounds the idle-machine run at about 30-50 s.
"""
from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest

from hostile_inputs import labelled_items
from plasticity import schema as S
from plasticity.data import filters
from plasticity.data.tables import write_rows
from plasticity.extraction import ORDERS, extract
from plasticity.grading import _FIRST_ITEM_GRACE_S, Grader
from plasticity.train.rewards import make_reward_fn

N_ITEMS = 2000
SEED = 24
TIMEOUT_S = 0.5
WORKERS = 2
MARGIN_S = 2.0
EXTRACT_BOUND_S = 2.0           # one extraction of any item (a 1 MB completion costs milliseconds)


@pytest.fixture(scope="module")
def items():
    return labelled_items(SEED, N_ITEMS)


@pytest.fixture(scope="module")
def strict_verdicts(items):
    """Strict verdicts of every item, one call each; the grader stays open for the filter test."""
    bound = TIMEOUT_S + _FIRST_ITEM_GRACE_S + MARGIN_S
    with Grader("strict", workers=WORKERS, timeout_s=TIMEOUT_S) as g:
        verdicts, slow = [], []
        for label, completion, reference in items:
            g.start_workers()      # untimed: the replacements of killed workers are up (the pool heals)
            start = time.perf_counter()
            [v] = g.grade_many([completion], [reference])
            if time.perf_counter() - start > bound:
                slow.append((label, round(time.perf_counter() - start, 1), completion[:60], reference[:20]))
            verdicts.append(v)
        assert not slow, f"items over {bound} s: {slow}"
        _assert_healthy(g)
        yield verdicts, g


def _assert_healthy(g: Grader) -> None:
    assert g.stats["error"] == 0, g.stats
    assert g.grade("\\boxed{(x+1)^2}", "x^2+2x+1").correct         # the pool still answers
    assert all(w.proc.poll() is None for w in g._pool)


def test_generator_covers_every_class(items):
    labels = {label for label, _, _ in items}
    assert labels == {"digits", "nesting", "megabyte", "towers", "characters", "empty", "random"}
    assert len(items) == N_ITEMS and labelled_items(SEED, N_ITEMS) == items
    assert max(len(c) for _, c, _ in items) >= 1_000_000 and max(len(r) for *_, r in items) >= 100_000
    assert any("\ud800" in c for _, c, _ in items) and any("\x00" in r for *_, r in items)


def test_extraction_alone(items):
    for label, completion, _ in items:
        for order in ORDERS:
            start = time.perf_counter()
            found = extract(completion, order)
            assert time.perf_counter() - start < EXTRACT_BOUND_S, (label, completion[:60])
            assert found.text is None or isinstance(found.text, str)


def test_strict_one_item_at_a_time(items, strict_verdicts):
    verdicts, _ = strict_verdicts
    assert len(verdicts) == len(items)
    # the hostile digit runs are decided by value, not left to a timeout
    for (label, completion, reference), v in zip(items, verdicts):
        if label == "digits" and completion == f"The answer is \\boxed{{{reference}}}.":
            assert v.correct, len(reference)


def test_lenient_whole_batch(items, strict_verdicts):
    strict, _ = strict_verdicts
    with Grader("lenient", workers=WORKERS, timeout_s=TIMEOUT_S) as g:
        lenient = g.grade_many([c for _, c, _ in items], [r for *_, r in items])
        _assert_healthy(g)
    assert len(lenient) == len(items)
    for s, v in zip(strict, lenient):
        if s.correct and v.reason != "timeout":
            assert v.correct                      # lenient only adds to strict


def test_rl_reward_in_batches(items):
    logged = []
    with Grader("released", workers=WORKERS, timeout_s=TIMEOUT_S, order="reward") as g:
        reward = make_reward_fn(g)
        for at in range(0, len(items), 64):
            batch = items[at:at + 64]
            rewards = reward(prompts=["p"] * len(batch), completions=[c for _, c, _ in batch],
                             reference_answer=[r for *_, r in batch], log_metric=lambda *a: logged.append(a))
            assert len(rewards) == len(batch) and set(rewards) <= {0.0, 1.0}
        _assert_healthy(g)
    assert {value for _, value in logged} == {0.0}                # no item's grading raised


def test_data_filter_correctness_check(tmp_path, items, strict_verdicts):
    """Rows whose response ends in a hostile completion and whose reference is hostile: every row is
    kept or dropped with a ledger row (in = kept + dropped), ledger details stay short. The filter
    grades with the strict grader above (its cache holds most of these verdicts already)."""
    _, grader = strict_verdicts
    rows = []
    for i, (label, completion, reference) in enumerate(items):
        try:
            (completion + reference).encode("utf-8")
        except UnicodeEncodeError:
            continue                              # lone surrogates: parquet text is valid UTF-8
        rows.append({"problem_id": f"h{i}", "source": "am", "source_file": "am/hostile.jsonl", "source_row": i,
                     "domain": "math", "teacher": "r1", "prompt": f"problem {i} ({label})",
                     "response": "<think>\nwork\n</think>\n" + completion, "reference_answer": reference,
                     "win_rate_small": None, "win_rate_mid": None, "win_rate_teacher": None})
    src = tmp_path / "in"
    write_rows(src / "trajectories.parquet", rows, S.TRAJECTORY)
    write_rows(src / "rl_prompts.parquet", [], S.RL_PROMPT)
    cfg = {"max_prompt_tokens": 10**7, "max_response_tokens": 10**7}
    counts = filters.run(cfg, src, tmp_path / "out", count_tokens=lambda texts: [len(t) for t in texts],
                         grade=grader.grade_many)
    kept = pq.read_table(tmp_path / "out" / "trajectories.parquet").num_rows
    ledger = pq.read_table(tmp_path / "out" / "ledger.parquet").to_pylist()
    assert counts["sft"]["in"] == len(rows) == kept + len(ledger)
    assert kept > 0 and {r["reason"] for r in ledger} <= {"bad_format", "no_reference", "wrong_answer",
                                                            "duplicate_prompt"}
    assert max(len(r["detail"]) for r in ledger) < 1000
    assert grader.stats["error"] == 0
