"""The lenient fallbacks of the grader: string, numeric, multiple-choice, and the benchmark's units.

``lenient_rule(reference, answer)`` names the rule that accepts an answer strict math-verify
rejected (``string``, ``numeric``, ``choice``), or None. Lenient decides what reaches the LLM
judge, so every rule accepts only answers that are the same mathematical object as the reference
written differently; tests/unit/test_grading_lenient.py holds a table of false-accept probes
(``2-\\sqrt{3}`` for ``2+\\sqrt{3}``, ``12346.0`` for ``12345``, ``C or D`` for ``C`` ...) that
must all be rejected. Decisions:

* a number must be the whole answer (after the string normalisation); a trailing unit is allowed
  only when it is the benchmark's unit or both sides carry the same one. ``2`` is not ``2n-2``.
* thousands separators only in true groups (``1,000``, ``1 000``); ``1,3,5`` is a list.
* an integer or fraction reference is exact and admits no tolerance; a decimal reference is a
  rounded value: an answer at least as precise must round to it (half a unit of its last place),
  a coarser answer must keep three significant digits and the reference must round to it. There
  is no absolute tolerance, so ``0`` is never ``10^{-12}``.
* a choice letter must stand alone or be followed by ``)``, ``.`` or ``:`` and the option text.
* the benchmark's own numeric tolerance (OlympiadBench ``error``), where given, is used as is.
* nothing longer than ``MAX_LEN`` characters is read as a number: exact arithmetic on longer
  digit strings is quadratic, and Python refuses ``int()`` of more than 4,300 digits outright. A
  longer answer is not a number for these rules nor for the strict grader's 0.1% guard
  (``numbers_apart``, ``within_tolerance``); the grader's fast path compares long integers as
  digit strings instead.

Pure Python, no math-verify; the grader runs it in-process.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

MAX_LEN = 500

_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf|mbox|operatorname)[ \t]*\{([^{}]*)\}", re.ASCII)
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~", re.ASCII)
_DEGREE = re.compile(r"\^[ \t]*\{?\\circ\}?|°|\\degree|\bdegrees?\b", re.ASCII)
# Digits separated by a space stay apart (a list), except in true thousands groups.
_SPACED_THOUSANDS = re.compile(r"(?<![0-9])([0-9]{1,3})((?:[ \t]+[0-9]{3})+)(?![0-9])", re.ASCII)
_DIGIT_GAP = re.compile(r"(?<=[0-9])\s+(?=[0-9])", re.ASCII)
_WS = re.compile(r"\s+")

_DECIMAL = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_GROUPED = r"[-+]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?"
_NUMBER = re.compile(
    rf"(?P<mant>{_GROUPED}|{_DECIMAL})"
    r"(?:[eE](?P<e>[-+]?[0-9]{1,4})|\\(?:times|cdot)10\^(?:\{(?P<p>[-+]?[0-9]{1,4})\}|(?P<p1>[0-9])))?"
    r"|(?P<pow>[-+]?)10\^(?:\{(?P<q>[-+]?[0-9]{1,4})\}|(?P<q1>[0-9]))"
    r"|(?P<fneg>-?)\\frac\{(?P<num>-?[0-9]+)\}\{(?P<den>[0-9]+)\}", re.ASCII)
_UNIT_TAIL = re.compile(r"[a-z][a-z0-9^/*.\-{}]*", re.ASCII)
_CHOICE_REF = re.compile(r"\(?([A-E])\)?", re.ASCII)
_CHOICE_PRED = re.compile(r"\(?([A-Ea-e])(\)|[.:])?", re.ASCII)
_CHOICE_WRAP = re.compile(r"\\text(?:bf)?[ \t]*\{(.*)\}", re.ASCII | re.DOTALL)


def normalize_answer(text: str) -> str:
    """The study's string normalisation: LaTeX wrappers, spacing, units of degree, case, punctuation."""
    s = text.strip().strip("$").strip()
    for _ in range(3):  # nested \text{\textbf{..}}
        s = _TEXT_CMD.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING.sub(" ", s)
    s = _DEGREE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = _SPACED_THOUSANDS.sub(lambda m: m.group(1) + _WS.sub("", m.group(2)), s)
    s = _DIGIT_GAP.sub("|", s)                       # "1 2" is not "12"
    return _WS.sub("", s).rstrip(".").lower()


class _Value:
    """A written number: exact value, and the unit of its last written place (None when exact)."""

    __slots__ = ("value", "quantum", "digits")

    def __init__(self, value: Fraction, quantum: Fraction | None, digits: int):
        self.value, self.quantum, self.digits = value, quantum, digits


def _parse_number(s: str) -> tuple[_Value, str] | None:
    """(value, the rest of ``s``) for a normalised answer that starts with a number, or None."""
    if len(s) > MAX_LEN:
        return None              # see the module docstring: long digit strings are not read here
    m = _NUMBER.match(s)
    if not m or not m.group():
        return None
    try:
        if m.group("num") is not None:
            den = int(m.group("den"))
            if den == 0:
                return None
            sign = -1 if m.group("fneg") else 1
            return _Value(sign * Fraction(int(m.group("num")), den), None, 0), s[m.end():]
        if m.group("q") is not None or m.group("q1") is not None:
            exp = int(m.group("q") or m.group("q1"))
            return _Value((-1 if m.group("pow") == "-" else 1) * Fraction(10) ** exp, Fraction(10) ** exp, 1), \
                s[m.end():]
        mant = Decimal(m.group("mant").replace(",", ""))
    except (InvalidOperation, ValueError):
        return None
    exp = int(m.group("e") or m.group("p") or m.group("p1") or 0)
    if abs(exp) > 400 or not mant.is_finite():
        return None
    value = Fraction(mant) * Fraction(10) ** exp
    _, digits, place = mant.as_tuple()
    significant = len("".join(map(str, digits)).lstrip("0"))
    exact = "." not in m.group("mant") and not m.group("e") and not (m.group("p") or m.group("p1"))
    quantum = None if exact else Fraction(10) ** (place + exp)
    return _Value(value, quantum, significant), s[m.end():]


def _same_number(ref: _Value, pred: _Value) -> bool:
    gap = abs(ref.value - pred.value)
    if gap == 0:
        return True
    if ref.quantum is None:                   # an exact reference admits no tolerance
        return False
    if pred.quantum is None or pred.quantum <= ref.quantum:
        return gap <= ref.quantum / 2         # the answer rounds to the reference
    return pred.digits >= 3 and gap <= pred.quantum / 2


def unit_key(text: str) -> str:
    """A unit spelled without LaTeX wrappers, spaces or braces: ``\\mathrm{cm}^{2}`` -> ``cm^2``."""
    s = re.sub(r"\\(?:text|mathrm|mbox|operatorname|rm)\b", "", text, flags=re.ASCII)
    s = _SPACING.sub("", s)
    return re.sub(r"[\s{}]", "", s).lower()


def strip_unit(answer: str, unit: str | None) -> str:
    """``answer`` without a trailing ``unit`` (the benchmark's), when what precedes it is balanced."""
    if not unit or len(answer) > MAX_LEN:
        return answer
    key = unit_key(unit)
    s = answer.rstrip()
    if not key:
        return answer
    best = None                               # the leftmost cut whose tail is the unit
    for cut in range(len(s) - 1, max(0, len(s) - 4 * len(unit) - 40), -1):   # wrappers lengthen a unit
        if unit_key(s[cut:]) == key:
            best = cut
    if best is not None:
        head = s[:best].rstrip()
        if head and head.count("{") == head.count("}"):
            return head
    return answer


def _choice(reference: str, answer: str) -> bool | None:
    """True/False for a choice-letter reference, None when the reference is not a letter."""
    ref = _CHOICE_REF.fullmatch(reference.strip())
    if not ref:
        return None
    s = answer.strip()
    wrapped = _CHOICE_WRAP.fullmatch(s)
    if wrapped:
        s = wrapped.group(1).strip()
    m = _CHOICE_PRED.match(s)
    if not m or m.group(1).upper() != ref.group(1):
        return False
    rest = s[m.end():].strip().rstrip(".").strip()
    return not rest or (m.group(2) is not None and not rest.startswith(("or", "and", ",", "/", "&")))


def _numeric(reference: str, answer: str, unit: str | None, tolerance: float | None) -> bool:
    ref, pred = _parse_number(normalize_answer(reference)), _parse_number(normalize_answer(answer))
    if ref is None or pred is None:
        return False
    (a, ref_rest), (b, pred_rest) = ref, pred
    if ref_rest != pred_rest:
        allowed = {"", unit_key(unit)} if unit else {""}
        if ref_rest not in allowed or pred_rest not in allowed:
            return False
    elif ref_rest and not _UNIT_TAIL.fullmatch(ref_rest):
        return False                          # "2+\sqrt{3}" vs "2+\sqrt{3}" is the string rule's job
    if tolerance is not None:
        return abs(a.value - b.value) <= Fraction(tolerance)
    return _same_number(a, b)


def lenient_rule(reference: str, answer: str, unit: str | None = None,
                 tolerance: float | None = None) -> str | None:
    """The lenient rule that accepts ``answer`` for ``reference`` (string | numeric | choice), or None."""
    if len(answer) > MAX_LEN or len(reference) > MAX_LEN:
        return None
    choice = _choice(reference, answer)
    if choice is not None:
        return "choice" if choice else None   # a multiple-choice item is judged on its letter only
    nr, np_ = normalize_answer(reference), normalize_answer(answer)
    if nr and nr == np_:
        return "string"
    if _numeric(reference, answer, unit, tolerance):
        return "numeric"
    return None


def _whole_number(text: str) -> Fraction | None:
    if "%" in text or len(text) > MAX_LEN:
        return None          # 25\% and 0.25 are one value for math-verify; not a plain number here
    parsed = _parse_number(normalize_answer(text))
    return parsed[0].value if parsed is not None and not parsed[1] else None


def numbers_apart(reference: str, answer: str, max_relative: float) -> bool:
    """Whether both are plain numbers more than ``max_relative`` apart (relative to the reference).

    math-verify rounds floats to 6 decimals before comparing, so it calls ``0.0000124`` equal to
    ``0.0000123``; the strict grader rejects such pairs with this check."""
    a, b = _whole_number(reference), _whole_number(answer)
    if a is None or b is None:
        return False
    return abs(a - b) > Fraction(max_relative) * abs(a)


def within_tolerance(reference: str, answer: str, tolerance: float, max_relative: float) -> bool:
    """Whether both are plain numbers at most ``tolerance`` apart and within ``max_relative`` of the
    reference (the strict grader's use of a benchmark tolerance)."""
    if len(reference) > MAX_LEN or len(answer) > MAX_LEN:
        return False
    ref, pred = _parse_number(normalize_answer(reference)), _parse_number(normalize_answer(answer))
    if ref is None or pred is None or ref[1] or pred[1]:
        return False
    gap = abs(ref[0].value - pred[0].value)
    return gap <= Fraction(tolerance) and gap <= Fraction(max_relative) * abs(ref[0].value)
