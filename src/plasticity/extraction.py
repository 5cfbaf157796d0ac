"""Where the answer of a completion is: the one extractor of the grader and the data filters.

PAPER.md 2.5 describes two orders, one per consumer of the study's code:

* ``eval`` (the evaluator, ``reward_rule.py``): the last ``<answer>...</answer>`` span first
  (within it, its last ``\\boxed{}`` when it has one, else the span as prose), then the last
  ``\\boxed{}`` anywhere, then math-verify on the response itself. A box inside the reasoning
  therefore never beats the answer the model wrote in its ``<answer>`` span.
* ``reward`` (the RL reward, ``no_format_custom_reward_fn.py``): math-verify on the whole
  response, whose extraction reads the last ``\\boxed{}`` first, then the ``<answer>`` span, then
  the response itself. Modelled as: last box, then last span, then the response.

The response fallback (kind ``text``) hands math-verify the part after the last ``</think>``
(the whole completion when there is none), cut to its last ``TEXT_TAIL`` characters: the answer
of a response that wrote no box and no span is at its end, and the cut bounds parsing. For
evaluation a completion cut off inside ``<think>`` has no answer (a number in unfinished
reasoning is not an answer); the reward reads it, as the study's reward reads every response. The
study's reward then compares the ``<answer>`` span as a string, number or choice and by a
Levenshtein ratio above 0.6: the grader's ``released`` mode (``plasticity.grading_released``,
selected by ``rl.reward``); evaluation never uses it.

Boxes are brace-balanced (escaped braces ``\\{``/``\\}`` are literal) and found in one linear
pass, so a 1 MB completion costs milliseconds. ``\\fbox`` counts as a box. Only the last
``MAX_BOXES`` non-empty boxes of a region are kept (and copied): nested boxes inside an unclosed
one all count, and copying each of 100,000 nested contents would be quadratic; a multi-answer
reference is graded against the kept ones.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ORDERS = ("eval", "reward")
TEXT_TAIL = 2000
MAX_BOXES = 32

_BRACE_TOKEN = re.compile(r"\\(?:boxed|fbox)[ \t\n]*\{|\\[{}]|[{}]", re.ASCII)
_NON_SPACE = re.compile(r"\S")
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class Extraction:
    text: str | None                 # the answer graded; None when the completion has none
    kind: str | None                 # box | span | text (see module docstring); None with text
    boxes: tuple[str, ...] = ()      # every outermost box of the answer region, in order (kind box)


NONE = Extraction(None, None)


def boxes(text: str) -> list[tuple[int, int]]:
    """(content start, content end) of every closed outermost box, in order, in one linear pass.

    When an unclosed opening swallowed the rest (no outermost box ever closes), every closed box
    counts, innermost included: ``\\boxed{ \\boxed{3}`` has the box ``3``."""
    return _closed_boxes(text, outermost=True) or _closed_boxes(text, outermost=False)


def _closed_boxes(text: str, outermost: bool) -> list[tuple[int, int]]:
    stack: list[int] = []            # content start for box openings, -1 for plain braces
    found: list[tuple[int, int]] = []
    open_boxes = 0                   # boxes on the stack (a box inside a box is not outermost)
    for m in _BRACE_TOKEN.finditer(text):
        tok = m.group()
        if tok == "}":
            if stack:
                start = stack.pop()
                if start >= 0:
                    open_boxes -= 1
                    if open_boxes == 0 or not outermost:
                        found.append((start, m.start()))
        elif tok == "{":
            stack.append(-1)
        elif tok[0] == "\\" and len(tok) == 2:
            continue
        else:
            stack.append(m.end())
            open_boxes += 1
    return found if outermost else sorted(found)


def last_boxed(text: str) -> str | None:
    """The stripped content of the last closed box (its outermost box), or None."""
    found = boxes(text)
    return text[slice(*found[-1])].strip() if found else None


def _last_filled(text: str, found: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """The last ``most`` boxes of ``found`` with content other than whitespace, in order (no copy)."""
    kept = []
    for a, b in reversed(found):
        if _NON_SPACE.search(text, a, b):
            kept.append((a, b))
            if len(kept) == most:
                break
    return kept[::-1]


def _last_span(completion: str) -> str | None:
    end = completion.rfind(_ANSWER_CLOSE)
    if end < 0:
        return None
    start = completion.rfind(_ANSWER_OPEN, 0, end)
    return None if start < 0 else completion[start + len(_ANSWER_OPEN):end]


def _from_boxes(region: str, found: list[tuple[int, int]] | None = None) -> Extraction | None:
    found = boxes(region) if found is None else found
    kept = [region[a:b].strip() for a, b in _last_filled(region, found, MAX_BOXES)]
    return Extraction(kept[-1], "box", tuple(kept)) if kept else None


def _from_span(span: str) -> Extraction:
    """The span's last box, else the span as prose; NONE for an empty span or only empty boxes."""
    found = boxes(span)
    inner = _from_boxes(span, found)
    if inner is not None:
        return inner
    if found:
        return NONE
    span = span.strip()
    return Extraction(span, "span") if span else NONE


def _from_text(completion: str, whole: bool) -> Extraction:
    """The response after its last ``</think>``. For evaluation (``whole`` False) a completion that
    opened ``<think>`` and never closed it has no answer: it was cut off while reasoning."""
    close = completion.rfind(_THINK_CLOSE)
    if close >= 0:
        tail = completion[close + len(_THINK_CLOSE):]
    elif not whole and _THINK_OPEN in completion:
        return NONE
    else:
        tail = completion
    tail = tail[-TEXT_TAIL:].strip()
    return Extraction(tail, "text") if tail else NONE


def extract(completion: str, order: str = "eval") -> Extraction:
    """The answer of ``completion`` in the evaluator's (``eval``) or the reward's order.

    For evaluation an ``<answer>`` span, when there is one, is the answer: an empty span is no
    answer (the box in the reasoning is not consulted)."""
    if order == "eval":
        span = _last_span(completion)
        if span is not None:
            return _from_span(span)
        return _from_boxes(completion) or _from_text(completion, whole=False)
    if order == "reward":
        span = _last_span(completion)
        return (_from_boxes(completion) or (_from_span(span) if span is not None else None)
                or _from_text(completion, whole=True))
    raise ValueError(f"extraction order must be one of {ORDERS}, got {order!r}")


# ----------------------------------------------------------------------------------------------
# Tidying an extracted answer before it is compared

# An integer or a choice letter, optionally in parentheses, bold or text, optionally with a dot.
_AOPS = re.compile(r"(?:\\(?:textbf|mathbf|text|mathrm)[ \t]*\{)?[ \t]*\(?[ \t]*([0-9]+|[A-E])[ \t]*\)?[ \t]*\}?"
                   r"[ \t]*\.?", re.ASCII)
_TRAILING_DOT = re.compile(r"([0-9A-Za-z}])[ \t]*\.\Z", re.ASCII)


def tidy(answer: str) -> str:
    """An answer without the decorations of competition write-ups (AoPS): ``104.`` -> ``104``,
    ``\\textbf{(073)}`` -> ``073``, ``\\text{(B)}`` -> ``B``. Only an integer or a choice letter
    is unwrapped (``\\text{Monday}`` keeps its wrapper: math-verify reads it as text), and a
    sentence-final dot is dropped (a value never depends on it); ``1.5`` is kept."""
    s = answer.strip()
    m = _AOPS.fullmatch(s)
    if m and s.count("{") == s.count("}") and s.count("(") == s.count(")"):
        return m.group(1)
    return _TRAILING_DOT.sub(r"\1", s) or s
