"""Exact in-process verdicts for the answer forms whose math-verify verdict is provable.

``fast_verdict(gold, extracted, kind)`` returns math-verify's verdict for a (reference, extracted
answer) pair without calling math-verify, or None when only math-verify can tell. It is a pure
speed-up: the grader (``plasticity.grading``) sends every None to math-verify, and the unit tests
check every decided verdict against real math-verify on thousands of generated pairs
(tests/unit/test_grading_fastpath.py).

What it decides, and why that equals math-verify 0.9.0 (``verify(parse(gold), parse(pred))``,
float_rounding=6; see ``math_verify.grader.sympy_expr_eq``):

* numbers: integers (``72``, ``072``, ``1,000``), decimals (``3.50``, ``.5``), fractions
  (``\\frac{3}{4}``, ``\\dfrac``, ``\\tfrac``, ``3/4``, ``\\frac{-3}{4}``), radicals
  (``2\\sqrt{3}``, ``\\sqrt{12}``, ``\\frac{\\sqrt{3}}{2}``) and scientific notation with an
  integer mantissa (``5 \\times 10^{3}``, ``5\\cdot10^{-3}``). Each is reduced to c * sqrt(r) with
  c rational and r square-free. Equal (c, r) are equal for math-verify; exact numbers more than
  1e-6 apart are unequal (math-verify evaluates unevaluated products to 15 digits and chops
  differences below ~1e-15, so closer ones are left to it). When either side is a plain decimal,
  math-verify rounds both to 6 places: equal values are equal, values more than 1e-3 apart are
  unequal, anything in between is left to math-verify. A decimal mantissa in scientific notation
  is left to math-verify: sympy then compares a float product against a rational exactly.
* intervals with rational or infinite endpoints (``[1, 3)``, ``(-\\infty, \\frac{1}{2}]``,
  ``\\left[ ... \\right)``), both sides: equal when the endpoints and the open/closed ends agree
  (an infinite end is always open, as in sympy). Only proper intervals (low < high) are decided:
  ``[3, 1]`` is a tuple for math-verify and ``(1, 3)`` also equals the set ``1, 3``, so an
  interval against anything but an interval is left to math-verify.
* integers longer than ``_MAX_LEN``, of any length, compared as digit strings (sign and leading
  zeros dropped; no ``int()``, which Python refuses past 4,300 digits): equal strings are one
  value, different ones differ by at least 1. That is math-verify's verdict up to Python's
  int-string limit, which lies above the longest answer the grader hands math-verify
  (``grading.MAX_ANSWER_CHARS``); past that length ``integers_verdict`` is both grader paths'
  rule. (Past the int-string limit math-verify reads a number as text and compares spellings,
  ``0777...7`` against ``777...7``; it is never asked.) A degenerate run of digits costs
  microseconds and never an exception.
* identical texts: a boxed answer spelled exactly as the reference (up to surrounding space) is
  correct, because math-verify parses both identically and keeps the normalised matched text,
  which then compares equal. That text can normalise to nothing (``\\text{}``, ``\\$``, quotes),
  and then math-verify finds no answer at all; so the rule requires a letter or digit outside
  LaTeX command names, which normalisation keeps.

Only ASCII text is decided (digits [0-9], spaces and tabs as whitespace): fullwidth or
Arabic-Indic digits, no-break spaces, form feeds and vertical tabs go to math-verify.

Forms other than plain integers and decimals are decided only for boxed answers: an ``<answer>``
span is also parsed raw by math-verify (prose extraction), whose reading a grammar cannot mirror.
A response read raw (kind ``text``) that starts with a sign is left to math-verify too: raw, it
reads ``-5`` but finds no number in ``+5`` or ``-05``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

_MAX_LEN = 60                      # longer answers go to math-verify (also bounds the work here)
_IDENTICAL_MAX_LEN = 500
_DECIDE_GAP = Fraction(1, 1000)    # a float further than this from the other side is unequal
_DECIDE_MAGNITUDE = 10 ** 9        # floats are decided only below this magnitude ...
_DECIDE_DIGITS = 15                # ... and with at most this many digits (math-verify's precision)
_MAX_RADICAND = 10 ** 6            # square-free factoring by trial division stays cheap
_EXACT_GAP = Fraction(1, 10 ** 6)  # exact numbers closer than this are left to math-verify
_RADICAL_MAGNITUDE = 10 ** 6       # radicals are compared in floats only below this magnitude

# ASCII only: digits are [0-9] (``re.ASCII``; ``int()`` and ``Fraction()`` would also take
# fullwidth or Arabic-Indic digits, which math-verify does not read as numbers) and whitespace is
# [ \t] (``\s`` would match no-break and other Unicode spaces, form feed and vertical tab, which
# math-verify treats differently). Anything else is left to math-verify.
_A = re.ASCII
_WS = r"[ \t]*"
_INT_RE = re.compile(r"[+-]?[0-9]+|-?[1-9][0-9]{0,2}(?:,[0-9]{3})+", _A)
_DIGITS_RE = re.compile(r"[+-]?[0-9]+", _A)          # a plain integer of any length (linear to match)
_DEC_RE = re.compile(r"[+-]?(?:[0-9]+\.[0-9]+|\.[0-9]+)", _A)

# c * sqrt(r) terms, fractions of them, and scientific notation. Whitespace as LaTeX ignores it.
_TERM = rf"(?:([0-9]+){_WS})?\\sqrt{_WS}\{{{_WS}([0-9]+){_WS}\}}|([0-9]+)"
_EXACT_RE = re.compile(
    rf"(-)?{_WS}(?:"
    rf"\\[dt]?frac{_WS}\{{{_WS}(-)?{_WS}(?:{_TERM}){_WS}\}}{_WS}\{{{_WS}([0-9]+){_WS}\}}"   # \frac{-2\sqrt{3}}{5}
    rf"|(?:{_TERM}){_WS}/{_WS}([0-9]+)"                                                # 2\sqrt{3}/5, 3/4
    rf"|(?:{_TERM})"                                                                   # 2\sqrt{3}, \sqrt{12}
    r")", _A)
_SCI_RE = re.compile(rf"(-)?{_WS}([0-9]+){_WS}\\(?:times|cdot){_WS}10{_WS}\^{_WS}"
                     rf"(?:\{{{_WS}([+-]?[0-9]{{1,3}}){_WS}\}}|([0-9]))", _A)
_INTERVAL_RE = re.compile(
    rf"(?:\\left{_WS})?([\[(]){_WS}(.+?){_WS},{_WS}(.+?){_WS}(?:\\right{_WS})?([\])])", _A)
_INFINITY_RE = re.compile(rf"([+-])?{_WS}\\infty", _A)
_COMMAND, _ALNUM_OUTSIDE_COMMANDS = re.compile(r"\\[A-Za-z]+", _A), re.compile(r"[A-Za-z0-9]", _A)


@dataclass(frozen=True)
class _Number:
    """coeff * sqrt(radicand); radicand square-free (1 for rationals); is_float for decimals."""
    coeff: Fraction
    radicand: int
    is_float: bool


def _square_free(n: int) -> tuple[int, int] | None:
    """(k, m) with n = k^2 * m and m square-free; None when n is too large to factor here."""
    if n > _MAX_RADICAND:
        return None
    k, m, p = 1, n, 2
    while p * p <= m:
        while m % (p * p) == 0:
            m //= p * p
            k *= p
        p += 1
    return k, m


def _term(coeff: str | None, radicand: str | None, integer: str | None) -> tuple[Fraction, int] | None:
    if integer is not None:
        return Fraction(int(integer)), 1
    split = _square_free(int(radicand))
    if split is None:
        return None
    k, m = split
    c = Fraction(int(coeff) if coeff is not None else 1) * k
    return (c, m) if c and m else (Fraction(0), 1)


def _plain_number(text: str) -> _Number | None:
    """Integers and decimals, the grammar math-verify reads identically boxed and raw."""
    if _INT_RE.fullmatch(text):
        return _Number(Fraction(int(text.replace(",", ""))), 1, False)
    if _DEC_RE.fullmatch(text) and sum(c.isdigit() for c in text) <= _DECIDE_DIGITS:
        value = Fraction(text)
        return _Number(value, 1, True) if abs(value) < _DECIDE_MAGNITUDE else None
    return None


def _number(text: str) -> _Number | None:
    """A boxed number in any of the forms above, or None."""
    plain = _plain_number(text)
    if plain is not None:
        return plain
    m = _EXACT_RE.fullmatch(text)
    if m:
        neg, frac_neg = m.group(1), m.group(2)
        if m.group(6) is not None:                                  # \frac{term}{den}
            term, den = _term(*m.group(3, 4, 5)), int(m.group(6))
        elif m.group(10) is not None:                               # term / den
            term, den = _term(*m.group(7, 8, 9)), int(m.group(10))
        else:
            term, den = _term(*m.group(11, 12, 13)), 1
        if term is None or den == 0:
            return None
        sign = -1 if bool(neg) != bool(frac_neg) else 1
        return _Number(sign * term[0] / den, term[1], False)
    m = _SCI_RE.fullmatch(text)
    if m:
        neg, mantissa, exp = m.group(1), m.group(2), int(m.group(3) or m.group(4))
        return _Number(Fraction(int(mantissa)) * Fraction(10) ** exp * (-1 if neg else 1), 1, False)
    return None


def _approx(x: _Number) -> float:
    return float(x.coeff) * math.sqrt(x.radicand)


def _numbers_verdict(a: _Number, b: _Number) -> bool | None:
    if not (a.is_float or b.is_float):
        if a.coeff == b.coeff and a.radicand == b.radicand:
            return True
        if a.radicand == 1 and b.radicand == 1:
            gap = abs(a.coeff - b.coeff)
        elif max(abs(a.coeff), abs(b.coeff)) < _RADICAL_MAGNITUDE:
            gap = Fraction(abs(_approx(a) - _approx(b)))
        else:
            return None
        # math-verify compares unevaluated products numerically and chops differences below
        # ~1e-15 to zero, so exact numbers closer than this are left to it.
        return False if gap > _EXACT_GAP else None
    if a.radicand == 1 and b.radicand == 1:
        if a.coeff == b.coeff:
            return True
        return False if abs(a.coeff - b.coeff) > _DECIDE_GAP else None
    # A float against an irrational: never equal exactly, unequal for math-verify when far apart.
    approx_a, approx_b = _approx(a), _approx(b)
    if max(abs(approx_a), abs(approx_b)) >= _DECIDE_MAGNITUDE:
        return None
    return False if abs(approx_a - approx_b) > 2 * float(_DECIDE_GAP) else None


@dataclass(frozen=True)
class _Interval:
    low: Fraction | None           # None: -infinity
    high: Fraction | None          # None: +infinity
    left_open: bool
    right_open: bool


def _endpoint(text: str, low: bool) -> tuple[Fraction | None] | None:
    """(value,) for a rational endpoint, (None,) for the infinity on this side, None otherwise."""
    inf = _INFINITY_RE.fullmatch(text)
    if inf:
        negative = inf.group(1) == "-"
        return (None,) if negative == low else None
    x = _number(text)
    if x is None or x.is_float or x.radicand != 1:
        return None
    return (x.coeff,)


def _interval(text: str) -> _Interval | None:
    m = _INTERVAL_RE.fullmatch(text)
    if not m:
        return None
    lo, hi = _endpoint(m.group(2), low=True), _endpoint(m.group(3), low=False)
    if lo is None or hi is None:
        return None
    (low,), (high,) = lo, hi
    if low is not None and high is not None and not low < high:
        return None
    return _Interval(low, high, low is None or m.group(1) == "(", high is None or m.group(4) == ")")


def _digit_string(text: str) -> str | None:
    """The canonical spelling of a plain integer of any length (``-0`` is ``0``), or None."""
    if not _DIGITS_RE.fullmatch(text):
        return None
    negative, digits = text[0] == "-", text.lstrip("+-").lstrip("0") or "0"
    return "-" + digits if negative and digits != "0" else digits


def integers_verdict(gold: str, extracted: str) -> bool | None:
    """Whether two plain integers of any length are equal (None unless both are plain integers)."""
    g, p = _digit_string(gold), _digit_string(extracted)
    return None if g is None or p is None else g == p


def fast_verdict(gold: str, extracted: str, kind: str = "box") -> tuple[bool, str] | None:
    """(math-verify's verdict, rule) for a stripped reference and extracted answer, or None.

    ``kind`` is how the answer was extracted (``box`` or ``span``, see grading._extract). The rule
    is ``fast_numeric`` (plain integers/decimals), ``fast_exact`` (fractions, radicals, scientific
    notation, intervals) or ``fast_identical``. Only ASCII inputs are decided.
    """
    if not (gold.isascii() and extracted.isascii()):
        return None      # Unicode digits and spaces: math-verify's reading is its own
    if kind == "text" and extracted[:1] in ("+", "-"):
        return None      # read raw, ``+5`` and ``-05`` are no number for math-verify (``-5`` is)
    short = len(gold) <= _MAX_LEN and len(extracted) <= _MAX_LEN
    g = p = None
    if not short:
        verdict = integers_verdict(gold, extracted)
        if verdict is not None:
            return verdict, "fast_numeric"
    else:
        g, p = _plain_number(gold), _plain_number(extracted)
        if g is not None and p is not None:
            verdict = _numbers_verdict(g, p)
            return None if verdict is None else (verdict, "fast_numeric")
    if kind != "box" or not _boxable(gold):
        return None
    if gold == extracted and len(gold) <= _IDENTICAL_MAX_LEN and _ALNUM_OUTSIDE_COMMANDS.search(_COMMAND.sub("", gold)):
        return True, "fast_identical"
    if not short:
        return None
    g, p = g or _number(gold), p or _number(extracted)
    if g is not None and p is not None:
        verdict = _numbers_verdict(g, p)
        return None if verdict is None else (verdict, "fast_exact")
    gi = _interval(gold)
    if gi is not None:
        pi = _interval(extracted)
        if pi is not None:
            return gi == pi, "fast_exact"
    return None


def _boxable(gold: str) -> bool:
    """Whether the grader hands this reference to math-verify as ``\\boxed{gold}`` (grading.gold_text)."""
    return bool(gold) and "\\boxed" not in gold and "\\fbox" not in gold and "$" not in gold \
        and not gold.startswith("<answer>")
