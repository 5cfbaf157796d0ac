"""The RL reward.

Reward (PAPER 2.5): binary, 1.0 when the one grader (``plasticity.grading``, the same one the
evaluation uses) judges the completion correct against the reference answer, else 0.0. There is
no format reward.
"""
from __future__ import annotations

from typing import Any, Callable


def make_reward_fn(grader: Any) -> Callable[..., list[float]]:
    """A trl reward function: ``fn(prompts, completions, reference_answer, **kw) -> [0.0 | 1.0, ...]``."""

    def correct(prompts: list[Any], completions: list[Any], reference_answer: list[str], **kwargs: Any) -> list[float]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        verdicts = grader.grade_many(texts, [str(r) for r in reference_answer])
        return [1.0 if v.correct else 0.0 for v in verdicts]

    return correct
