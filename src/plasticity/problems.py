"""The procedural task of the embedded miniature: chains of single-digit sums.

A level-``n`` problem has ``n`` operands (1..9) joined by ``+``/``-``, e.g. ``7-3+5=`` (level 3).
Intermediate and final values may be negative. Everything the miniature needs is derived from here:
the simulated teacher's R1-style trajectories, the base model's "pretraining" targets and the six
embedded benchmark suites, so all of them agree on one format.

Formats (the study's trajectory format, Table 8, at miniature scale):
  prompt            ``7-3+5=``
  trajectory        ``<think>\\n7-3=4\\n4+5=9\\n</think>\\n<answer>\\boxed{9}</answer>``
  direct answer     ``\\boxed{9}``   (the weak base model is pretrained on these)

Pure functions of a ``random.Random``; no global state, so every caller controls its seed.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

MIN_LEVEL, MAX_LEVEL = 2, 8


@dataclass(frozen=True)
class Problem:
    """One chain-sum problem: ``operands[0] ops[0] operands[1] ...``."""

    operands: tuple[int, ...]
    ops: tuple[str, ...]

    @property
    def level(self) -> int:
        return len(self.operands)

    @property
    def prompt(self) -> str:
        text = str(self.operands[0])
        for op, value in zip(self.ops, self.operands[1:]):
            text += f"{op}{value}"
        return text + "="

    def steps(self) -> list[tuple[int, str, int, int]]:
        """(left, op, right, result) for each partial sum, left to right."""
        out, acc = [], self.operands[0]
        for op, value in zip(self.ops, self.operands[1:]):
            new = acc + value if op == "+" else acc - value
            out.append((acc, op, value, new))
            acc = new
        return out

    @property
    def answer(self) -> str:
        return str(self.steps()[-1][3])

    def trajectory(self) -> str:
        """The R1-style expert trajectory: one line per partial sum, then the boxed answer."""
        lines = "".join(f"{a}{op}{b}={c}\n" for a, op, b, c in self.steps())
        return f"<think>\n{lines}</think>\n<answer>\\boxed{{{self.answer}}}</answer>"

    def direct(self) -> str:
        """The answer-only target used for the base model's short pretraining."""
        return f"\\boxed{{{self.answer}}}"


def sample_problem(rng: random.Random, level: int) -> Problem:
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"level must be in [{MIN_LEVEL}, {MAX_LEVEL}], got {level}")
    operands = tuple(rng.randint(1, 9) for _ in range(level))
    ops = tuple(rng.choice("+-") for _ in range(level - 1))
    return Problem(operands, ops)


def parse_prompt(prompt: str) -> Problem:
    """Inverse of ``Problem.prompt``; raises ValueError on anything else."""
    body = prompt.strip()
    if not body.endswith("="):
        raise ValueError(f"not a chain-sum prompt: {prompt!r}")
    body = body[:-1]
    operands, ops = [int(body[0])], []
    for i in range(1, len(body), 2):
        if body[i] not in "+-" or i + 1 >= len(body) or not body[i + 1].isdigit():
            raise ValueError(f"not a chain-sum prompt: {prompt!r}")
        ops.append(body[i])
        operands.append(int(body[i + 1]))
    return Problem(tuple(operands), tuple(ops))


def problem_id(namespace: str, text: str) -> str:
    """Stable id for a problem text: the same prompt always gets the same id within a namespace."""
    return f"{namespace}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
