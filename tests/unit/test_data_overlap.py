"""Decontamination's overlap rule: each normalisation variant of a benchmark problem is caught,
short problems are found inside longer prompts, and clean controls are not touched."""
from __future__ import annotations

import re

import pytest

from plasticity.data.overlap import OverlapIndex, normalise, overlap_words

from plasticity.data.text import words

WORDY = "Let x be the number of ways to choose 3 of the 10 marbles so that x is even."
TEX = r"Find \frac{1}{2} + \frac{3}{4} - \frac{5}{6} + \frac{7}{8} - \sqrt{9} + x^{2} - y^{3}."
SPACED = "Solve x^{2} + y^{2} - 3 x y + 7 = 0 for x = 1 and y = 2 exactly."
SHORT = "Compute 17 - 3 + 5."       # 7 words: shorter than n = 8


def _raw_grams(text: str, n: int = 8) -> set[str]:
    tokens = words(text)
    return {" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def _unbraced(tex: str) -> str:
    return tex.replace(r"\sqrt{9}", r"\sqrt9").replace("^{2}", "^2").replace("^{3}", "^3")


def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in text)


@pytest.fixture(scope="module")
def index():
    idx = OverlapIndex(8)
    idx.add(WORDY, "mini_math/0")
    idx.add(TEX, "mini_math/2")
    idx.add(SPACED, "mini_math/3")
    idx.add(SHORT, "mini_math/1")
    return idx


# Each variant shares no raw 8-gram with its problem (checked below): only the normaliser finds it.
VARIANTS = [
    (WORDY, WORDY.replace(" ", " \u200b"), "zero-width space after every space"),
    (WORDY, WORDY.replace(" ", "\u200b"), "zero-width space instead of every space"),
    (WORDY, " ".join(w[:1] + "\u00ad" + w[1:] for w in WORDY.split()), "soft hyphen in every word"),
    (WORDY, " ".join(w[:1] + "\u200d" + w[1:] for w in WORDY.split()), "zero-width joiner in every word"),
    (WORDY, _full_width(WORDY), "full-width letters and digits (NFKC)"),
    (WORDY, WORDY.replace(" ", " \x07"), "a control character after every space"),
    (TEX, _unbraced(re.sub(r"\\frac\{(\d)\}", r"\\frac\1", TEX)), "brace forms: \\frac1{2}, \\sqrt9, x^2"),
    (TEX, _unbraced(re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\dfrac\1\2", TEX)), "brace forms: \\dfrac12"),
    (SPACED, SPACED.replace(" ", "~"), "LaTeX spacing: ~"),
    (SPACED, "".join(w + (r"\,", r"\;", r"\!", r"\quad ", r"\: ", r"\ ")[i % 6]
                     for i, w in enumerate(SPACED.split())), "LaTeX spacing: \\, \\; \\! \\quad \\: \\ "),
]


@pytest.mark.parametrize("problem, variant, what", VARIANTS, ids=[v[2] for v in VARIANTS])
def test_every_variant_is_caught_though_no_raw_ngram_is_shared(index, problem, variant, what):
    assert not _raw_grams(variant) & _raw_grams(problem), f"{what}: the raw text still shares an 8-gram"
    hit = index.first_hit("Before the problem. " + variant + " After it.")
    owner = {WORDY: "mini_math/0", TEX: "mini_math/2", SPACED: "mini_math/3"}[problem]
    assert hit is not None and hit[1] == owner


@pytest.mark.parametrize("variant", [
    SHORT,
    "Warm-up first. " + SHORT + " Then explain your steps carefully in detail.",
    "Please compute\u200b17 - 3 + 5. Show all work and box the final answer please.",
])
def test_short_problem_is_matched_inside_a_longer_prompt(index, variant):
    hit = index.first_hit(variant)
    assert hit is not None and hit[1] == "mini_math/1" and "whole prompt" in hit[0]


@pytest.mark.parametrize("clean", [
    "Let y be the count of ways to pick 4 of the 12 stones so that y is odd.",
    r"Find \frac{a}{b} + \frac{c}{d} - \frac{e}{f} + \frac{g}{h} - \sqrt{k} + x^{m} - y^{n}.",
    "Solve x^{3} + y^{3} - 5 x y + 2 = 0 for x = 4 and y = 6 exactly.",
    "Compute 117 - 3 + 5.",                     # 117, not 17: word-level, not character-level
    "Compute 17 - 3 + 6.",
    "Compute 17 - 3 +",                         # a prefix of the short problem is not the problem
])
def test_clean_controls_are_kept(index, clean):
    assert index.first_hit(clean) is None


def test_brace_and_command_forms_give_the_same_words():
    same = [r"\frac{1}{2}", r"\frac1{2}", r"\frac12", r"\dfrac{1}2", r"\tfrac 12", r"\frac {1} {2}"]
    assert {tuple(overlap_words(t)) for t in same} == {("\\frac", "1", "2")}
    assert overlap_words(r"\sqrt2+x^2_3") == overlap_words(r"\sqrt{2}+x^{2}_{3}") == \
        ["\\sqrt", "2", "+", "x", "^", "2", "_", "3"]
    assert overlap_words(r"\frac solve") == ["\\frac", "solve"]          # not \frac{s}{o}lve
    assert normalise(r"\left( x \right)") == "( x )"
    assert overlap_words("a\u200bb") == ["a", "b"] and overlap_words("a\u2060b") == ["ab"]
    assert len(OverlapIndex(8)) == 0


def test_markup_alone_is_not_an_ngram():
    """Two unrelated problems that share only LaTeX markup do not overlap."""
    idx = OverlapIndex(8)
    idx.add(r"Compute \frac{1}{2} of the apples Ann picked on Monday morning.", "b/0")
    assert idx.first_hit(r"Bob writes \frac{1}{2} \cdot \frac{1}{2} on a board and erases it.") is None
