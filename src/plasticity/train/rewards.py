"""The RL reward.

Reward (PAPER 2.5): binary, 1.0 when the one grader (``plasticity.grading``, the same one the
evaluation uses) judges the completion correct against the reference answer, else 0.0. There is
no format reward. ``rl.reward`` chooses the grader's mode: ``released`` (the study's GPU training
reward: math-verify, then the ``<answer>`` span compared as a string, number or choice, then a
Levenshtein ratio above 0.6; ``plasticity.grading_released``) or ``strict`` (math-verify alone).
Both read a completion's answer in the reward's order (``plasticity.extraction``).

Every completion gets a reward: an item whose grading raised is graded wrong inside the grader
(``plasticity.grading``, reason ``error:<class>``), so a degenerate completion never ends a branch.
Each call reports the fraction of such items to trl (``log_metric``, ``GRADING_ERROR_METRIC``,
averaged over the generation rounds of an RL step and over processes, whose rounds are equal in
size); ``step_grading_errors`` turns it into the step's count for the branch's train log.
"""
from __future__ import annotations

from typing import Any, Callable

GRADING_ERROR_METRIC = "grading_error_rate"


def make_reward_fn(grader: Any) -> Callable[..., list[float]]:
    """A trl reward function: ``fn(prompts, completions, reference_answer, **kw) -> [0.0 | 1.0, ...]``."""
    from plasticity.grading import is_error

    def correct(prompts: list[Any], completions: list[Any], reference_answer: list[str], log_metric: Any = None,
                **kwargs: Any) -> list[float]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        verdicts = grader.grade_many(texts, [str(r) for r in reference_answer])
        if log_metric is not None and verdicts:
            log_metric(GRADING_ERROR_METRIC, sum(map(is_error, verdicts)) / len(verdicts))
        return [1.0 if v.correct else 0.0 for v in verdicts]

    return correct


def step_grading_errors(log_rows: dict[str, dict[str, float]], step: int, updates: int,
                        record: dict[str, Any]) -> int | None:
    """The number of completions of RL step ``step`` (1-based) whose grading raised, from the logs
    of its ``updates`` optimizer updates (``log_rows`` by global step; the generation's metrics land
    in one of them) and its generation record (``gen_rounds`` rounds of ``prompts`` x ``group``
    completions); None when no log of the step carries the rate."""
    logs = [log_rows.get(str(u), {}) for u in range((step - 1) * updates + 1, step * updates + 1)]
    rate = next((log[GRADING_ERROR_METRIC] for log in logs if GRADING_ERROR_METRIC in log), None)
    if rate is None:
        return None
    return round(rate * record["gen_rounds"] * record["prompts"] * record["group"])
