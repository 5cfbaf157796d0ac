"""What counts as a training text overlapping a benchmark problem (the decontaminate stage's n-gram side).

Both sides are normalised the same way before they are cut into words (``normalise``):
  * Unicode NFKC (full-width digits and letters, ligatures, compatibility forms);
  * a zero-width space (U+200B) becomes a space, as it separates words; every other format
    character (zero-width joiners, word joiner, soft hyphen, byte-order mark) is removed, and every
    control character becomes a space;
  * LaTeX spacing (``\\,`` ``\\;`` ``\\:`` ``\\!`` ``\\ `` ``~`` ``\\quad`` ``\\qquad``) becomes a space,
    ``\\left`` / ``\\right`` / ``\\displaystyle`` are removed, and ``\\dfrac`` / ``\\tfrac`` become ``\\frac``;
  * ``\\frac`` with two one-character arguments written together (``\\frac12``, ``\\frac ab``) gets
    them split.
Words (``overlap_words``) are then lower-cased LaTeX commands (``\\frac``), runs of letters and digits
and single punctuation characters (``_`` included) other than braces, which only group: ``\\frac{1}{2}``, ``\\frac1{2}``,
``\\frac12`` are all ``\\frac 1 2``, ``\\sqrt2`` is ``\\sqrt{2}``, ``x^2`` is ``x^{2}``. Dropping the braces
also keeps an n-gram from being mostly markup: with them ``\\frac{1}{2}`` alone was a whole 8-gram,
shared by any two texts that contain it. Operators stay words, so ``7-3+5=`` never matches ``7+3-5=``.

A benchmark problem of at least ``n`` words is found through its word n-grams (any shared n-gram is an
overlap). A shorter problem has no n-gram, so it is found as a contained word sequence: a training
text overlaps it when the problem's words occur consecutively in the training text's words (the
miniature's benchmark prompts are mostly this short).
"""
from __future__ import annotations

import functools
import re
import sys
import unicodedata

_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LATEX_SPACE = re.compile(r"\\[,;:! ]|~|\\q?quad(?![a-zA-Z])")
_LATEX_DROP = re.compile(r"\\(?:left|right|displaystyle)(?![a-zA-Z])")
_FRAC_VARIANT = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_FRAC_GLUED = re.compile(r"\\frac\s*([a-zA-Z0-9])([a-zA-Z0-9])(?![a-zA-Z0-9])")
_WORD = re.compile(r"\\[a-z]+|[^\W_]+|[^\w\s{}]|_")   # commands, letter/digit runs, punctuation


@functools.cache
def _invisible() -> tuple[re.Pattern, re.Pattern]:
    """(format characters but U+200B, control characters), as regex classes: built once per process."""
    fmt, ctrl = [], []
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category == "Cf" and code != 0x200B:
            fmt.append(code)
        elif category == "Cc":
            ctrl.append(code)

    def char_class(codes: list[int]) -> re.Pattern:
        return re.compile("[" + "".join(re.escape(chr(c)) for c in codes) + "]")

    return char_class(fmt), char_class(ctrl)


def normalise(text: str) -> str:
    """``text`` with the Unicode and LaTeX variants listed in the module docstring unified."""
    if text.isascii():                       # NFKC and the format characters cannot change it
        text = _ASCII_CONTROL.sub(" ", text)
    else:
        fmt, ctrl = _invisible()
        text = unicodedata.normalize("NFKC", text).replace("\u200b", " ")
        text = ctrl.sub(" ", fmt.sub("", text))
    text = _FRAC_VARIANT.sub(r"\\frac", _LATEX_DROP.sub("", _LATEX_SPACE.sub(" ", text)))
    return _FRAC_GLUED.sub(r"\\frac{\1}{\2}", text)


def overlap_words(text: str) -> list[str]:
    """The words both sides are compared by (see the module docstring)."""
    return _WORD.findall(normalise(text).lower())


class OverlapIndex:
    """The benchmark problems, indexed for ``first_hit``: word n-grams of problems of at least ``n``
    words, and the whole word sequence (by its first word) of shorter ones."""

    def __init__(self, n: int):
        self.n = n
        self.grams: dict[str, str] = {}                       # n-gram -> owner of its first problem
        self.short: dict[str, list[tuple[tuple[str, ...], str]]] = {}   # first word -> (words, owner)

    def add(self, text: str, owner: str) -> None:
        tokens = overlap_words(text)
        if len(tokens) >= self.n:
            for i in range(len(tokens) - self.n + 1):
                self.grams.setdefault(" ".join(tokens[i:i + self.n]), owner)
        elif tokens:
            entries = self.short.setdefault(tokens[0], [])
            if all(seq != tuple(tokens) for seq, _ in entries):
                entries.append((tuple(tokens), owner))

    def __len__(self) -> int:
        return len(self.grams) + sum(len(v) for v in self.short.values())

    def first_hit(self, text: str) -> tuple[str, str] | None:
        """(what is shared, owner) of the first benchmark problem ``text`` overlaps, or None: n-grams
        in text order first, then contained short problems in text order."""
        tokens = overlap_words(text)
        n = self.n
        for i in range(len(tokens) - n + 1):
            gram = " ".join(tokens[i:i + n])
            owner = self.grams.get(gram)
            if owner is not None:
                return f"shares {n}-gram {gram[:80]!r} with", owner
        if self.short:
            for i, token in enumerate(tokens):
                for seq, owner in self.short.get(token, ()):
                    if tuple(tokens[i:i + len(seq)]) == seq:
                        return f"contains {' '.join(seq)[:80]!r}, the whole prompt of", owner
        return None
