"""Lenient mode never accepts a mathematically different answer: a table of false-accept probes.

Lenient decides what reaches the LLM judge. Each probe is (reference, answer) where the answer is
a different object than the reference; the lenient rules and the whole lenient grader must reject
every one, while the spellings that are the same object stay accepted.
"""
from __future__ import annotations

import pytest

from plasticity.grading import Grader, Reference
from plasticity.grading_lenient import lenient_rule, normalize_answer, numbers_apart, strip_unit

# The leading number of an expression is not the expression (and the other way round).
_EXPRESSIONS = ["2+\\sqrt{3}", "2-\\sqrt{3}", "2n-2", "6+9i", "3\\pi", "2^{10}", "5!", "4\\sqrt{2}", "7x+1",
                "10-\\sqrt{5}", "1+\\sqrt{2}", "3/4", "2\\cdot 5", "8e", "2^n", "9-4i", "1 + \\pi", "7!",
                "3\\sqrt{2}", "5^2", "10x", "12\\ln 2", "6\\frac{1}{2}", "2\\times 3", "1-\\frac{1}{e}"]


def _leading(expr: str) -> str:
    digits = ""
    for ch in expr:
        if not ch.isdigit():
            break
        digits += ch
    return digits


PROBES: list[tuple[str, str]] = list(dict.fromkeys(
    [(e, _leading(e)) for e in _EXPRESSIONS]
    + [(_leading(e), e) for e in _EXPRESSIONS]
    + [  # the issue's own cases
        ("2+\\sqrt{3}", "2-\\sqrt{3}"), ("2n-2", "2"), ("6+9i", "6"), ("1", "1 + \\pi"), ("7", "7!"),
        ("1,3,5", "135"), ("12345", "12346.0"),
        ("a", "a + b"), ("C", "C or D"),
    ]
    + [  # lists are not numbers, and a space is not a thousands separator unless it groups by three
        ("1,3,5", "1.35"), ("1, 2", "12"), ("2,3", "23"), ("12", "1 2"), ("1000", "10,00"), ("1000", "1,00,0"),
        ("123", "1 23"), ("1,5", "15"), ("3, 4", "34"), ("10", "1,0"),
    ]
    + [  # an integer reference admits no tolerance
        ("12345", "12345.5"), ("100", "100.4"), ("100", "99.6"), ("999", "999.9"), ("1000000", "1000001"),
        ("1000000", "1000000.1"), ("72", "72.01"), ("0", "0.0001"), ("2", "2.001"), ("30", "29.99"),
        ("\\frac{1}{3}", "0.3"), ("\\frac{1}{3}", "0.33"), ("\\frac{2}{3}", "0.67"), ("\\frac{1}{7}", "0.14"),
    ]
    + [  # no absolute tolerance: tiny references are not zero
        ("10^{-12}", "0"), ("1 \\times 10^{-10}", "0"), ("3.2 \\times 10^{-9}", "0"), ("0.000001", "0"),
        ("5 \\times 10^{-11}", "0"), ("1.6 \\times 10^{-19}", "0"), ("6.6 \\times 10^{-34}", "0"),
        ("0.0000123", "0.0000124"), ("2.5 \\times 10^{-7}", "2.6 \\times 10^{-7}"), ("1e-08", "0"),
        ("4.5 \\times 10^{33}", "4.6 \\times 10^{33}"), ("4.5 \\times 10^{33}", "4.5 \\times 10^{32}"),
    ]
    + [  # decimals: a coarser answer needs three significant digits and must round from the reference
        ("0.5", "0.6"), ("3.14", "3.15"), ("2.718", "2.7"), ("1.05", "1.1"), ("0.333", "0.3"),
        ("3.14159", "3.15"), ("9.81", "9.8"), ("1.414", "1.42"), ("0.25", "0.2"), ("12.5", "13"),
    ]
    + [  # multiple choice: one letter, alone or with its option text
        ("C", "C and D"), ("C", "C, D"), ("C", "C/D"), ("A", "AB"), ("B", "B C"), ("A", "a+b"),
        ("D", "(D) or (E)"), ("E", "E and A"), ("B", "B & C"), ("A", "A or B."), ("B", "\\text{B or C}"),
        ("C", "D"), ("(B)", "(C)"),
    ]
    + [  # Euler's number, signs and operators
        ("2e", "2"), ("e^2", "2"), ("-5", "5"), ("5", "-5"), ("x+1", "x-1"), ("1+i", "1-i"),
        ("2\\sqrt{3}", "3\\sqrt{2}"), ("\\frac{1}{2}", "2"), ("\\frac{3}{4}", "\\frac{4}{3}"), ("2^{10}", "10^2"),
    ]
))


def test_probe_table_is_large():
    assert len(PROBES) >= 100


@pytest.mark.parametrize("reference,answer", PROBES)
def test_lenient_rules_reject_probe(reference, answer):
    assert lenient_rule(reference, answer) is None


def test_lenient_grader_rejects_every_probe():
    """The whole lenient grader (strict math-verify, its 0.1% guard, then the fallbacks)."""
    completions = [f"<think>work</think><answer>\\boxed{{{a}}}</answer>" for _, a in PROBES]
    with Grader("lenient", workers=2, timeout_s=10) as g:
        verdicts = g.grade_many(completions, [r for r, _ in PROBES])
    accepted = [(p, v.rule) for p, v in zip(PROBES, verdicts) if v.correct]
    assert not accepted


ACCEPTED = [  # (reference, answer, rule): the same object, spelled differently
    ("3.14159", "3.1416", "numeric"), ("1000", "1 000", "string"), ("1000", "1,000", None),
    ("0.5", "0.50004", "numeric"), ("12345", "12345.0", None), ("4.5 \\times 10^{33}", "4.5e33", "numeric"),
    ("1 \\times 10^{-8}", "1.0e-8", "numeric"), ("B", "B) 42 meters", "choice"), ("A", "A: the first one", "choice"),
    ("B", "\\text{(B)}", None), ("25\\%", "25", "string"), ("45^\\circ", "45°", "string"),
    ("2.5", "2.50", None), ("0.333", "0.33333", "numeric"), ("3.14159", "3.14", "numeric"),
]


@pytest.mark.parametrize("reference,answer,rule", ACCEPTED)
def test_same_object_stays_accepted(reference, answer, rule):
    with_rule = lenient_rule(reference, answer)
    from plasticity.grading import grade
    verdict = grade(f"\\boxed{{{answer}}}", reference, mode="lenient")
    assert verdict.correct, verdict
    if rule is not None:
        assert with_rule == rule


def test_units_and_tolerance():
    assert strip_unit("166 \\text{ cm}^2", "cm^2") == "166"
    assert strip_unit("166 \\mathrm{cm}^{2}", "cm^2") == "166"
    assert strip_unit("166", "cm^2") == "166" and strip_unit("x^2", "m") == "x^2"
    assert lenient_rule("5", "5 m/s", unit="m/s") == "numeric"
    assert lenient_rule("5", "5 km/s", unit="m/s") is None
    assert lenient_rule("5", "5.2", tolerance=0.5) == "numeric" and lenient_rule("5", "5.6", tolerance=0.5) is None
    assert numbers_apart("0.0000123", "0.0000124", 1e-3) and not numbers_apart("25\\%", "0.25", 1e-3)
    assert normalize_answer("1 2") != normalize_answer("12")
    with Grader("strict") as g:
        assert g.grade("\\boxed{166 \\text{ cm}^2}", Reference("166", unit="cm^2")).correct
        assert g.grade("\\boxed{166 cm^2}", Reference("166", unit="cm^2")).correct
        assert not g.grade("\\boxed{166 cm^2}", "166").correct      # math-verify alone reads c*m^2
        v = g.grade("\\boxed{5.2}", Reference("5", tolerance=0.5))
        assert not v.correct                                      # strict: never more than 0.1% apart
        v = g.grade("\\boxed{1000.4}", Reference("1000", tolerance=0.5))
        assert v.correct and v.rule == "tolerance"
    with Grader("lenient") as g:
        assert g.grade("\\boxed{5.2}", Reference("5", tolerance=0.5)).rule == "numeric"
