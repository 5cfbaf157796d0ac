"""The fallbacks of the study's GPU training reward (PAPER.md 2.5, ``no_format_custom_reward_fn``).

The released reward tries, in order: (1) math-verify on the whole response, (2) LaTeX extraction
with ``\\boxed`` priority, (3) a string, numeric or multiple-choice comparison on the last
``<answer>...</answer>`` content, (4) a Levenshtein ratio, anything above 0.6 counting as correct.
Steps 1-2 are the grader's strict math-verify verdict in the reward's extraction order
(``plasticity.extraction``, ``order="reward"``). ``released_rule`` is steps 3-4; the grader runs
it in mode ``released`` on every item math-verify did not call correct, timeouts and unread
answers included (the released code goes on to step 3 after any exception in math-verify).

Steps 3-4 as modelled here (rule names in brackets):

* the answer is the content of the completion's last ``<answer>...</answer>`` span, else the
  whole completion; the reference is its first span's content, else itself; both stripped. An
  empty answer or reference is never correct (the released code fails on its first character).
* tidying: a reference inside ``$...$`` loses that pair, an answer inside ``$...$`` loses every
  ``$``; spaces around ``= + - * /`` are dropped. Equal texts are correct [``answer_string``].
* a reference holding a digit is numeric. Both texts are cleaned (``clean``: line breaks as
  spaces, stripped, trailing dots dropped, lower case). When both are decimal numbers their
  values decide, exactly [``answer_numeric``]; no Levenshtein then, so ``124`` is never ``123``.
  Otherwise (``\\frac{1}{2}``) the Levenshtein ratio of the cleaned texts decides.
  One deliberate departure: the released code compares Python floats, which calls every two
  numbers beyond 1.8e308 equal (a run of 400 sevens equals a run of 400 eights) and reads
  ``1_000``, ``inf`` and non-ASCII digits; here only ASCII decimals (``-1.5e3``) are numbers and
  they compare as exact decimals, at any length, without ``int()``.
* a reference without digits that holds a standalone capital letter (after upper-casing: ``B``,
  ``(C)``, but also ``x``) is a choice: correct when the answer's choice is the same letter
  [``answer_choice``], never by Levenshtein. The released code picks among several letters of
  the answer by nearby keywords and position; here the last standalone letter is the choice (the
  released scoring favours the last 30% of the text).
* any other reference: the Levenshtein ratio of the cleaned texts.
* the ratio is python-Levenshtein's ``ratio``, the normalised InDel similarity
  ``2 * LCS / (len(a) + len(b))`` (LCS: longest common subsequence), computed here with a
  bit-parallel LCS (Hyyroe 2004) on Python integers rather than with a compiled dependency. A
  ratio above ``LEVENSHTEIN_THRESHOLD`` is correct [``levenshtein``]: the released reward is binary
  (PAPER 2.5). Bounds: the ratio cannot exceed ``2 * min / (len(a) + len(b))``, so texts whose
  lengths differ more than 4.67-fold are decided (not correct) without computing it; texts longer
  than ``LEVENSHTEIN_MAX_LEN`` characters are not compared (not correct), which keeps one item's
  cost in milliseconds. RL references are short, so a long answer against one is decided by the
  length bound exactly.

Pure Python; the grader runs it in-process, per item (it reads the completion, so its verdicts are
not cached with math-verify's).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

LEVENSHTEIN_THRESHOLD = 0.6
LEVENSHTEIN_MAX_LEN = 10_000
RULES = ("answer_string", "answer_numeric", "answer_choice", "levenshtein")

# Every pattern runs in linear time on a megabyte of hostile text: no pattern can backtrack into a
# run it consumed (possessive quantifiers), and whitespace runs are taken from their first character.
_SPACES_BEFORE_OPERATOR = re.compile(r"(?<!\s)\s++(?=[=+\-*/])")
_SPACES_AFTER_OPERATOR = re.compile(r"(?<=[=+\-*/])\s++")
_BREAK_AFTER_SPACE = {c: re.compile(rf"(?<=\s){c}") for c in ("\n", "\r")}
_DECIMAL = re.compile(r"[+-]?(?:[0-9]++(?:\.[0-9]*+)?|\.[0-9]++)(?:[eE][+-]?[0-9]++)?", re.ASCII)
_STANDALONE_LETTER = re.compile(r"(?<![A-Z])[A-Z](?![A-Z])")
_DIGIT = re.compile(r"\d")
_OPEN, _CLOSE = "<answer>", "</answer>"


def _spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the contents of ``<answer>...</answer>`` spans as a non-greedy regex finds
    them (each from an opening to the next closing, left to right), in one linear pass."""
    found, pos = [], 0
    while (start := text.find(_OPEN, pos)) >= 0 and (end := text.find(_CLOSE, start + len(_OPEN))) >= 0:
        found.append((start + len(_OPEN), end))
        pos = end + len(_CLOSE)
    return found


def answer_of(completion: str) -> str:
    """The released reward's answer: the last ``<answer>`` span's content, else the completion."""
    spans = _spans(completion)
    return (completion[slice(*spans[-1])] if spans else completion).strip()


def reference_of(reference: str) -> str:
    """The released reward's reference: its first ``<answer>`` span's content, else itself."""
    spans = _spans(reference)
    return (reference[slice(*spans[0])] if spans else reference).strip()


def tidy_operators(text: str) -> str:
    """``text`` without the spaces around ``= + - * /``."""
    return _SPACES_AFTER_OPERATOR.sub("", _SPACES_BEFORE_OPERATOR.sub("", text))


def clean(text: str) -> str:
    """Line breaks as spaces (dropped after a space), stripped, trailing dots dropped, lower case."""
    for c, after_space in _BREAK_AFTER_SPACE.items():
        text = after_space.sub("", text).replace(c, " ")
    return text.strip().rstrip(".").lower()


def decimal_value(text: str) -> Decimal | None:
    """The exact value of an ASCII decimal number (``-1.5e3``), or None."""
    if not _DECIMAL.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError, OverflowError):
        return None


def choice_letter(text: str) -> str | None:
    """The last standalone capital letter of the upper-cased text (``(b)`` -> ``B``), or None."""
    letters = _STANDALONE_LETTER.findall(text.upper())
    return letters[-1] if letters else None


def lcs_length(a: str, b: str) -> int:
    """Length of the longest common subsequence, bit-parallel (one big-integer pass per character)."""
    if len(a) < len(b):
        a, b = b, a                       # bits over the longer text, one pass per character of the shorter
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, ch in enumerate(a):
        masks[ch] = masks.get(ch, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for ch in b:
        u = v & masks.get(ch, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def levenshtein_ratio(a: str, b: str) -> float:
    """python-Levenshtein's ``ratio``: 2 * LCS / (len(a) + len(b)); 1.0 for two empty texts."""
    total = len(a) + len(b)
    return 1.0 if total == 0 else 2 * lcs_length(a, b) / total


def _similar(a: str, b: str) -> bool:
    """Whether the Levenshtein ratio exceeds the threshold, within the bounds of the module docstring."""
    total = len(a) + len(b)
    if total == 0:
        return True
    if 2 * min(len(a), len(b)) <= LEVENSHTEIN_THRESHOLD * total or max(len(a), len(b)) > LEVENSHTEIN_MAX_LEN:
        return False
    return levenshtein_ratio(a, b) > LEVENSHTEIN_THRESHOLD


def released_rule(reference: str, completion: str) -> str | None:
    """The rule of steps 3-4 that calls ``completion`` correct for ``reference``, or None."""
    gold, answer = reference_of(reference), answer_of(completion)
    if not gold or not answer:
        return None
    if len(gold) > 1 and gold[0] == "$" and gold[-1] == "$":
        gold = gold[1:-1]
    if len(answer) > 1 and answer[0] == "$" and answer[-1] == "$":
        answer = answer.replace("$", "")
    gold, answer = tidy_operators(gold), tidy_operators(answer)
    if gold == answer:
        return "answer_string"
    if _DIGIT.search(gold):
        g, a = decimal_value(clean(gold)), decimal_value(clean(answer))
        if g is not None and a is not None:
            return "answer_numeric" if g == a else None
    elif choice_letter(gold) is not None:
        return "answer_choice" if choice_letter(answer) == choice_letter(gold) else None
    return "levenshtein" if _similar(clean(answer), clean(gold)) else None
