"""Pure text helpers shared by the data stages: normalisation, CJK detection, format and words.

Nothing here imports anything heavy; every function is a pure function of its arguments.
"""
from __future__ import annotations

import re

from plasticity.extraction import last_boxed  # the grader's extractor: one notion of "a box" everywhere

# Chinese characters: CJK unified ideographs (base block, extension A, compatibility ideographs,
# extensions B-F) plus CJK punctuation and full-width forms, which only occur in CJK text.
_CJK = re.compile("[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
                  "\U00020000-\U0002ebef]")
_WORD = re.compile(r"\w+|[^\w\s]")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_TAG_TAIL = "think>"                   # the common end of both tags


def normalise_prompt(text: str) -> str:
    """The key of exact-prompt dedup and of the RL set difference: whitespace runs collapsed, ends
    stripped, case folded. ``" What  is 2+2? "`` and ``"what is 2+2?"`` are the same prompt."""
    return " ".join(text.split()).casefold()


def has_cjk(text: str) -> bool:
    """True if ``text`` contains a Chinese character (or CJK punctuation / full-width form)."""
    return _CJK.search(text) is not None


def format_problem(response: str) -> str | None:
    """Why ``response`` is not in the study's trajectory format, or None when it is.

    The format (PAPER 2.2, Table 8): a ``<think>`` block that is opened and closed, then a final
    answer containing a ``\\boxed{}`` with balanced braces after ``</think>`` (found by
    ``plasticity.extraction``, as the grader finds it: escaped braces ``\\{`` are literal).
    """
    open_at = response.find(_THINK_OPEN)
    if open_at < 0:
        return "no <think>"
    close_at, nested = _think_close(response, open_at + len(_THINK_OPEN))
    if close_at < 0:
        return "no </think>"
    if nested:
        return "nested <think>"
    if last_boxed(response[close_at:]) is None:
        return "no \\boxed{} after </think>"
    return None


def _think_close(response: str, start: int) -> tuple[int, bool]:
    """(index of the first ``</think>`` at or after ``start`` or -1, whether a ``<think>`` opens
    between ``start`` and it), in one scan of the think block instead of two.

    Both tags end in ``think>``, so each occurrence of ``think>`` is classified by what precedes
    it. ``start`` is just past an opening tag, so a preceding ``<`` or ``</`` lies at or after it.
    """
    nested = False
    at = response.find(_TAG_TAIL, start)
    while at >= 0:
        if response[at - 2:at] == "</":
            return at - 2, nested
        if response[at - 1] == "<":
            nested = True
        at = response.find(_TAG_TAIL, at + len(_TAG_TAIL))
    return -1, nested


def final_answer(response: str) -> str | None:
    """The boxed final answer after ``</think>`` (None if the response has none)."""
    close_at = response.rfind(_THINK_CLOSE)
    return last_boxed(response[close_at:] if close_at >= 0 else response)


def squash(answer: str) -> str:
    """An answer with all whitespace removed (LaTeX math ignores spaces): the exact-match key."""
    return "".join(answer.split())


def words(text: str) -> list[str]:
    """Lower-cased word tokens for n-gram overlap. Punctuation and operators are tokens of their
    own (``7-3+5=`` is 6 tokens), so ``7-3+5=`` and ``7+3-5=`` never collide."""
    return _WORD.findall(text.lower())

