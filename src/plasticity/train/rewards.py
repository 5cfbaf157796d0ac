"""The RL reward and DAPO's dynamic-sampling group filter.

Reward (PAPER 2.5): binary, 1.0 when the one grader (``plasticity.grading``, the same one the
evaluation uses) judges the completion correct against the reference answer, else 0.0. There is
no format reward.

Dynamic sampling (DAPO, PAPER 2.5): a group of G completions whose rewards are all equal (0 or G
correct) has zero advantage and carries no gradient; DAPO keeps only groups with 1..G-1 correct.
trl 1.16 has no such filter, so ``group_keep_mask`` computes it and the RL trainer masks the
dropped groups out of the loss (see ``plasticity.train.rl``).
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


def group_keep_mask(rewards: Any, group: int, min_correct: int = 1, max_correct: int | None = None) -> Any:
    """Per-completion bool mask of the groups DAPO keeps: ``min_correct <= #correct <= max_correct``.

    ``rewards`` is a 1-D tensor of binary rewards ordered group by group (trl's layout: the G
    completions of a prompt are contiguous). The default keeps 1..G-1 correct, i.e. exactly the
    groups whose reward has nonzero spread.
    """
    import torch

    if rewards.dim() != 1 or rewards.numel() % group:
        raise ValueError(f"rewards must be 1-D with a multiple of group={group} entries, got {tuple(rewards.shape)}")
    max_correct = group - 1 if max_correct is None else max_correct
    n_correct = (torch.nan_to_num(rewards, nan=0.0) > 0.5).view(-1, group).sum(dim=1)
    keep = (n_correct >= min_correct) & (n_correct <= max_correct)
    return keep.repeat_interleave(group)
