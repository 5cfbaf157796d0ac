"""A seeded generator of hostile (completion, reference) pairs, as degenerate RL policies and scraped
data write them: digit runs of 1 to 100,000 characters inside and outside boxes, as prediction and
as gold; deep brace nesting; unclosed boxes; a megabyte inside a box; power towers and huge
factorials; NUL bytes, lone surrogates, right-to-left and zero-width marks; the digits of every
Unicode decimal-digit script (category Nd) and other numeric characters; empty strings.

``hostile_items(seed, n)`` returns ``n`` pairs: every fixed case of each class first (the extremes),
then seeded random combinations. The same seed gives the same pairs.
"""
from __future__ import annotations

import random
import sys
import unicodedata
from functools import lru_cache

DIGIT_RUN_LENGTHS = (1, 2, 60, 61, 100, 4299, 4300, 4301, 5000, 20_000, 100_000)
MEGABYTE = 1_000_000
CONTROL = ["\x00", "\ud800", "\udfff", "\u200f", "\u202e", "\u200d", "\ufeff", "\u2066", "\x1b", "\x7f"]
# power towers and huge factorials as predictions and as a reference (each costs math-verify a timeout)
TOWERS = ["10^{10^{10^{10}}}", "1000000!"]
TOWER_GOLDS = ["(10^{100})!"]
OTHER_NUMERIC = ["\u00b2", "\u00bd", "\u2160\u2161", "\u2460", "\u00b9\u2070", "\u0f33", "\U0001d7ce\U0001d7cf"]


@lru_cache(maxsize=1)
def unicode_digit_sets() -> tuple[str, ...]:
    """The ten digits (0-9) of every Unicode decimal-digit script: category Nd comes in runs of ten."""
    zeros = [chr(c) for c in range(sys.maxunicode + 1)
             if unicodedata.category(chr(c)) == "Nd" and unicodedata.digit(chr(c)) == 0]
    return tuple("".join(chr(ord(z) + i) for i in range(10)) for z in zeros)


def wrap(text: str, where: str) -> str:
    """``text`` as a completion writes it: in a box, an answer span, prose, after reasoning, unclosed."""
    return {"box": "The answer is \\boxed{" + text + "}.",
            "span": "<think>work</think><answer>" + text + "</answer>",
            "plain": "The answer is " + text,
            "think": "<think>" + text + "</think> so \\boxed{" + text + "}",
            "unclosed": "<think>x</think> \\boxed{" + text,
            "bare": text}[where]


WHERE = ("box", "span", "plain", "think", "unclosed", "bare")


def _digit_cases() -> list[tuple[str, str]]:
    items = []
    for n in DIGIT_RUN_LENGTHS:
        run = "7" * n
        other = run[:-1] + "8"
        for where in WHERE:
            items += [(wrap(run, where), run), (wrap(other, where), run)]
        items += [(wrap("0" + run, "box"), run), (wrap(run, "box"), "-" + run), (wrap(run, "box"), "7"),
                  (wrap("7", "box"), run), (wrap(run + ".5", "box"), run), (wrap(run, "box"), run + ".0"),
                  (wrap(run + "e5", "span"), run), (wrap("1," + ",".join(["777"] * (n // 3 + 1)), "box"), run),
                  (wrap("\\frac{" + run + "}{" + run + "}", "box"), "1"), (wrap(run + "/" + run, "span"), "1")]
    return items


def _nesting_cases() -> list[tuple[str, str]]:
    """Nesting 100,000 deep (extraction's work; too long for math-verify) and, for two shapes, 50 deep
    (math-verify's: a timeout each)."""
    items = [(wrap("{" * 50 + "1" + "}" * 50, "box"), "1"), (wrap("\\frac{" * 50 + "1" + "}{2}" * 50, "box"), "1")]
    k = 100_000
    items += [(wrap("{" * k + "1" + "}" * k, "box"), "1"),
              (wrap("\\frac{" * k + "1" + "}{2}" * k, "box"), "1"),
              (wrap("{" * k, "box"), "1"), (wrap("}" * k, "span"), "1"),
              ("\\boxed{" * k + "1" + "}" * (k - 1), "1"),         # nested boxes inside an unclosed one
              ("\\boxed{" * k, "1"), ("\\boxed{1}" * k, "1"),
              (wrap("(" * k + "1" + ")" * k, "span"), "1"),
              ("<answer>" * k + "1" + "</answer>" * k, "1"), ("<think>" * k + "1", "1")]
    return items


def _megabyte_cases(rng: random.Random) -> list[tuple[str, str]]:
    printable = "".join(chr(c) for c in range(32, 127) if chr(c) not in "{}")
    noise = "".join(rng.choices(printable, k=MEGABYTE))
    return [(wrap(noise, "box"), "42"), (wrap("x+" * (MEGABYTE // 2), "box"), "42"),
            (wrap("\\frac{1}{2}+" * (MEGABYTE // 12), "box"), "42"), (wrap("9" * MEGABYTE, "box"), "42"),
            (wrap("\\sqrt{" * 50_000 + "2" + "}" * 50_000, "box"), "42"), (wrap(noise, "span"), "42"),
            (noise, "42"), (wrap(" " * MEGABYTE, "box"), "0"), (wrap("a" * MEGABYTE, "span"), "a" * MEGABYTE),
            (wrap("1 = " * (MEGABYTE // 4), "span"), "1")]


def _tower_cases() -> list[tuple[str, str]]:
    items = []
    for tower in TOWERS:
        items.append((wrap(tower, "box"), "1"))
    for tower in TOWER_GOLDS:
        items.append((wrap("1", "box"), tower))
    return items


def _character_cases() -> list[tuple[str, str]]:
    items = []
    for c in CONTROL:
        for where in ("box", "span", "plain", "bare"):
            items += [(wrap("4" + c + "2", where), "42"), (wrap(c, where), c), (wrap("42", where), "4" + c + "2")]
        items += [(c * 1000, "42"), (wrap(c * 100_000, "box"), "0")]
    for digits in unicode_digit_sets():
        twelve = digits[1] + digits[2]
        items += [(wrap(twelve, "box"), "12"), (wrap("12", "box"), twelve), (wrap(twelve, "span"), twelve),
                  (wrap(digits * 500, "box"), digits * 500), (wrap(digits[7] * 5000, "box"), "7" * 5000)]
    for c in OTHER_NUMERIC:
        items += [(wrap(c, "box"), "2"), (wrap("2", "span"), c)]
    return items


def _empty_cases() -> list[tuple[str, str]]:
    return [("", ""), ("", "5"), ("5", ""), (" ", " "), ("\\boxed{}", ""), ("<answer></answer>", ""),
            ("\\boxed{ }", "0"), ("<think></think>", "0"), ("\n\t", "\n"), ("\\boxed{}" * 1000, "1")]


CLASSES = ("digits", "nesting", "megabyte", "towers", "characters", "empty")


def fixed_items(rng: random.Random) -> list[tuple[str, str, str]]:
    """(class, completion, reference) for every fixed case of each class."""
    parts = (_digit_cases(), _nesting_cases(), _megabyte_cases(rng), _tower_cases(), _character_cases(),
             _empty_cases())
    return [(name, c, r) for name, items in zip(CLASSES, parts) for c, r in items]


def _random_item(rng: random.Random) -> tuple[str, str]:
    """A random digit run (length log-uniform in 1..100,000; other scripts' digits in short runs),
    mark and wrapping (towers are fixed cases only: each costs a math-verify timeout)."""
    n = int(10 ** rng.uniform(0, 5))
    digits = "0123456789"
    if rng.random() < 0.2:
        digits, n = rng.choice(unicode_digit_sets()), min(n, 30)
    run = "".join(rng.choices(digits, k=n))
    gold = run if rng.random() < 0.5 else "".join(rng.choices("0123456789", k=n))
    if rng.random() < 0.3:
        at = rng.randrange(len(run) + 1)
        run = run[:at] + rng.choice(CONTROL) + run[at:]
    if rng.random() < 0.1:
        gold = rng.choice((run, "", "-" + gold, gold + rng.choice(CONTROL)))
    return wrap(run, rng.choice(WHERE)), gold


def labelled_items(seed: int, n: int) -> list[tuple[str, str, str]]:
    """``n`` hostile (class, completion, reference) triples: the fixed cases, then seeded random ones."""
    rng = random.Random(seed)
    items = fixed_items(rng)
    if n < len(items):
        raise ValueError(f"hostile_items: n = {n} is fewer than the {len(items)} fixed cases")
    return items + [("random", *_random_item(rng)) for _ in range(n - len(items))]


def hostile_items(seed: int, n: int) -> list[tuple[str, str]]:
    """``n`` hostile (completion, reference) pairs (``labelled_items`` without the class)."""
    return [(c, r) for _, c, r in labelled_items(seed, n)]
