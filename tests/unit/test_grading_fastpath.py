"""The in-process fast path decides only where its verdict equals math-verify's."""
from __future__ import annotations

import random

from plasticity.extraction import extract
from plasticity.grading import Grader, gold_text, math_verify_verdict, prediction_texts
from plasticity.grading_fastpath import fast_verdict, integers_verdict


def _fast_verdict(gold: str, pred: str, kind: str = "box") -> bool | None:
    decided = fast_verdict(gold, pred, kind)
    return None if decided is None else decided[0]


def _number(rng: random.Random) -> str:
    k = rng.random()
    sign = rng.choice(["", "", "-", "+"])
    if k < 0.3:
        s = str(rng.randint(0, 120))
    elif k < 0.4:
        s = "0" * rng.randint(1, 2) + str(rng.randint(0, 99))                       # leading zeros: 072
    elif k < 0.5:
        s = f"{rng.randint(1, 999)},{rng.randint(0, 999):03d}"                        # 1,000
        s += f",{rng.randint(0, 999):03d}" if rng.random() < 0.3 else ""
    elif k < 0.6:
        s = str(rng.randint(0, 10 ** rng.randint(5, 25)))                             # big integers
    elif k < 0.75:
        s = f"{rng.randint(0, 50)}.{rng.randint(0, 10 ** rng.randint(1, 8)):0{rng.randint(1, 8)}d}"
    elif k < 0.8:
        s = "." + str(rng.randint(0, 9999))                                           # .5
    elif k < 0.85:
        s = rng.choice(["0", "-0", "0.0", "-0.0", "00", "3.0", "3", "3.00", "1,000", "1000", "1000.0",
                        "12.", "1,00", "0,5", "1 000", "1e3"])
    elif k < 0.9:
        s = f"{rng.randint(0, 10 ** 12)}.{rng.randint(0, 999)}"                          # large decimals
    else:
        s = f"{rng.randint(0, 100)}.{'0' * rng.randint(1, 3)}{rng.randint(0, 9)}"
    return s if s.startswith("-") else sign + s


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = _number(rng)
        r = rng.random()
        if r < 0.35:
            b = a
        elif r < 0.6:
            b = a.lstrip("+")
            if "." not in b and "," not in b:
                b = rng.choice([b + ".0", "0" + b if not b.startswith("-") else b, b + ".000", "+" + b])
            else:
                b += "0"
        else:
            b = _number(rng)
        out.append((a.lstrip("+") if rng.random() < 0.7 else a, b))
    return out


def test_fast_path_equals_math_verify_on_generated_pairs():
    decided = 0
    mismatches = []
    for gold, pred in _pairs(2500, seed=7):
        for kind in ("box", "span"):
            fast = _fast_verdict(gold, pred, kind)
            if fast is None:
                continue
            decided += 1
            mv, _ = math_verify_verdict(gold_text(gold), prediction_texts(pred, kind))
            if mv != fast:
                mismatches.append((kind, gold, pred, fast, mv))
    assert not mismatches, mismatches[:10]
    assert decided > 3000            # the fast path really carries the load
    both = sum(1 for g, p in _pairs(2500, seed=7) if _fast_verdict(g, p) is True)
    assert both > 500                # ... for equal pairs too, not just unequal ones


# ---- fractions, radicals, scientific notation, intervals (boxed answers) -----------------------

def _rational(rng: random.Random) -> str:
    a, b = rng.randint(-30, 30), rng.randint(1, 40)
    return rng.choice([
        str(a), f"\\frac{{{a}}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}", f"{'-' if a < 0 else ''}\\dfrac{{{abs(a)}}}{{{b}}}",
        f"{a}/{b}", f"-\\frac{{{a}}}{{{b}}}", f"\\tfrac{{{a}}}{{{b}}}", f"\\frac{{{a}}}{{0}}",
        f"{round(a / b, rng.randint(1, 7))}", f"{round(a / b, rng.randint(1, 7))}",
        f"{rng.randint(1, 9)} \\times 10^{{{rng.randint(-20, 12)}}}", f"{rng.randint(1, 9)}\\cdot10^{rng.randint(0, 9)}"])


def _radical(rng: random.Random) -> str:
    c, d = rng.randint(0, 9), rng.randint(1, 6)
    r = rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 18, 20, 27, 50, 75, 1000003])
    co = "" if c == 1 and rng.random() < 0.5 else str(c)
    sp = " " if rng.random() < 0.2 else ""
    return rng.choice([f"{co}{sp}\\sqrt{{{r}}}", f"\\frac{{{co}\\sqrt{{{r}}}}}{{{d}}}",
                       f"-\\frac{{\\sqrt{{{r}}}}}{{{d}}}", f"{co}\\sqrt{{{r}}}/{d}",
                       f"{round(c * r ** 0.5 / d, rng.randint(2, 8))}", f"\\sqrt{{{c * c * r}}}",
                       f"\\frac{{{c}}}{{{d}}}"])


def _endpoint(rng: random.Random, low: bool) -> str:
    k = rng.random()
    if k < 0.15:
        return ("-" if low else rng.choice(["", "+"])) + "\\infty"
    if k < 0.2:
        return ("" if low else "-") + "\\infty"                                  # the wrong infinity
    if k < 0.6:
        return str(rng.randint(-5, 5))
    if k < 0.8:
        return f"\\frac{{{rng.randint(-5, 5)}}}{{{rng.randint(1, 4)}}}"
    return rng.choice([f"{rng.randint(-5, 5)}.5", "\\sqrt{2}"])


def _interval(rng: random.Random) -> str:
    left, right = rng.choice("[("), rng.choice("])")
    a, b = _endpoint(rng, True), _endpoint(rng, False)
    if rng.random() < 0.15:
        return f"\\left{left} {a}, {b} \\right{right}"
    return f"{left}{a},{rng.choice(['', ' '])}{b}{right}"


def _exact_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    makers = [_rational, _radical, _interval]
    out = []
    for _ in range(n):
        make = rng.choice(makers)
        gold, r = make(rng), rng.random()
        if r < 0.05:
            pred = gold
        elif r < 0.5:                                       # another spelling, or a near miss
            pred = rng.choice([gold.replace(" ", ""), gold.replace("\\frac", "\\dfrac"),
                               gold.replace(",", ", "), gold.replace("[", "(", 1), gold.replace(")", "]"),
                               gold.replace("2", "3", 1)])
        elif r < 0.8:
            pred = rng.choice(makers)(rng)
        else:
            pred = make(rng)
        out.append((gold, pred))
    return out


def test_exact_forms_equal_math_verify_on_generated_pairs():
    mismatches, verdicts = [], {True: 0, False: 0}
    for gold, pred in _exact_pairs(2000, seed=11):
        fast = _fast_verdict(gold, pred)
        if fast is None:
            continue
        verdicts[fast] += 1
        mv, _ = math_verify_verdict(gold_text(gold), prediction_texts(pred, "box"))
        if mv != fast:
            mismatches.append((gold, pred, fast, mv))
    assert not mismatches, mismatches[:10]
    assert verdicts[True] > 300 and verdicts[False] > 300, verdicts


def test_identical_answers_equal_math_verify():
    """Random LaTeX/text/unit soups graded against themselves, as extraction produces them."""
    rng = random.Random(5)
    atoms = ["x", "2", "\\frac{1}{2}", "\\text{Monday}", " ", "\\\\", "%", "&", "中文", "\\infty", "(", ")",
             "[", "]", ",", ".", "=", "<", "\\le", "\\pi", "^", "_", "\\{", "\\}", "{", "}", "A", "(B)",
             "\\emptyset", "\\cup", "!", "'", '"', "\\$", "~", "\\,", "\\quad", "\\%", "\\circ", "-",
             "\\text{", "\\mathrm{", "\\mbox{", "cm", " m", "meters", "\\displaystyle", "\\!", "\\left(",
             "\\right)", "and", "or", "\\text{ cm}", "''"]
    checked, mismatches = 0, []
    for _ in range(700):
        text = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 6)))
        found = extract("<answer>\\boxed{" + text + "}</answer>")
        extracted, kind = found.text, found.kind
        if not extracted or kind != "box":
            continue
        decided = fast_verdict(extracted, extracted, kind)
        if decided is None:
            continue
        assert decided[0] is True
        checked += 1
        mv, _ = math_verify_verdict(gold_text(extracted), prediction_texts(extracted, kind), timeout_s=10)
        if not mv:
            mismatches.append(extracted)
    assert not mismatches, mismatches[:10]
    assert checked > 200
    for empty_for_math_verify in ("\\text{}", "\\displaystyle", "\\$", "'", "''"):
        assert fast_verdict(empty_for_math_verify, empty_for_math_verify) is None


def test_fast_path_known_pairs():
    assert _fast_verdict("72", "072") is True
    assert _fast_verdict("1000", "1,000") is True
    assert _fast_verdict("3", "3.0") is True
    assert _fast_verdict("0.5", ".5") is True
    assert _fast_verdict("0", "-0") is True
    assert _fast_verdict("72", "73") is False
    assert _fast_verdict("0.1234567", "0.1234568") is None    # grey zone: math-verify rounds
    assert _fast_verdict("1,00", "100") is None                # not a thousands separator
    assert _fast_verdict("1" * 100, "1" * 99) is False         # long integers: digit strings
    assert _fast_verdict("1." + "1" * 100, "1." + "1" * 99) is None   # too long to decide in-process
    assert fast_verdict("\\frac{1}{2}", "\\dfrac{1}{2}") == (True, "fast_exact")
    assert _fast_verdict("\\frac{1}{2}", "0.5") is True
    assert _fast_verdict("\\frac{1}{3}", "0.333333") is None      # math-verify rounds floats
    assert _fast_verdict("2\\sqrt{3}", "\\sqrt{12}") is True
    assert _fast_verdict("2\\sqrt{3}", "3\\sqrt{2}") is False
    assert _fast_verdict("5 \\times 10^{3}", "5000") is True
    assert _fast_verdict("5 \\times 10^{-20}", "6 \\times 10^{-20}") is None  # math-verify chops tiny gaps
    assert _fast_verdict("[1,3)", "[1, 3)") is True
    assert _fast_verdict("[1,3)", "(1,3)") is False
    assert _fast_verdict("[-\\infty,3]", "(-\\infty, 3]") is True   # an infinite end is open
    assert _fast_verdict("(1,3)", "1,3") is None               # an open interval also equals a pair
    assert _fast_verdict("1\\frac{1}{2}", "1.5") is None        # a mixed number is not in the grammar
    assert _fast_verdict("\\frac{1}{2}", "1/2", kind="span") is None  # spans are also read as prose


def test_rl_reward_batch_stays_in_process():
    """128 R1-style integer completions: graded without starting a single worker process."""
    rng = random.Random(0)
    completions, refs = [], []
    for _ in range(128):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        ans = a - b if rng.random() < 0.7 else a + b
        completions.append(f"<think>\n{a}-{b}={ans}\n</think>\n<answer>\\boxed{{{ans}}}</answer>")
        refs.append(str(a - b))
    with Grader("strict") as g:
        verdicts = g.grade_many(completions, refs)
        assert g._pool == []
        assert g.stats["pool"] == 0 and g.stats["fast"] + g.stats["cache"] == 128
    for c, r, v in zip(completions, refs, verdicts):
        assert v.correct == (extract(c).text == r)
        assert v.rule == "fast_numeric"


# ---- Unicode: digits and spaces that Python reads as numbers and whitespace ---------------------

_DIGIT_SETS = [0xFF10, 0x0660, 0x0966, 0x06F0, 0x1D7CE]   # fullwidth, Arabic-Indic, Devanagari, Persian, bold
_SPACES = ["\u00a0", "\f", "\v", "\u2009", "\u3000", "\u202f", "\n"]


def _unicode_variant(text: str, rng: random.Random) -> str:
    base = rng.choice(_DIGIT_SETS)
    out = []
    for ch in text:
        if ch.isdigit() and rng.random() < 0.5:
            out.append(chr(base + int(ch)))
        elif ch == " " or (ch in "{}" and rng.random() < 0.2):
            out.append((rng.choice(_SPACES) if ch == " " else ch + rng.choice(_SPACES)))
        else:
            out.append(ch)
    if rng.random() < 0.3:
        out.insert(rng.randint(0, len(out)), rng.choice(_SPACES))
    return "".join(out)


def _unicode_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = [(g, p) for g, p in _pairs(n // 2, seed)] + _exact_pairs(n // 2, seed + 1)
    out = []
    for gold, pred in pairs:
        variant = _unicode_variant(pred, rng)
        out.append((gold, variant if variant != pred else pred + "\u00a0"))
        if rng.random() < 0.3:
            out.append((_unicode_variant(gold, rng), gold))
    return out


def test_unicode_digits_and_spaces_equal_math_verify():
    """The issue's probes and generated variants: the grader (fast path, cache, pool) gives
    math-verify's own verdict on each; the fast path leaves every non-ASCII pair to math-verify."""
    probes = [("3", "３"), ("\\frac{1}{2}", "\\frac{1}{\u00a02}"), ("2\\sqrt{3}", "٢\\sqrt{٣}"),
              ("5000", "5\f\\times 10^{3}"), ("5000", "5\v\\times\v10^3"), ("12", "١٢"), ("0.5", "０.５"),
              ("[1,3)", "[1,\u00a03)"), ("\\frac{3}{4}", "3\u2009/\u20094"), ("7", "7\u3000")]
    pairs = probes + [(g, p) for g, p in _unicode_pairs(70, seed=3) if not (g + p).isascii()]
    assert len(pairs) >= 70
    for gold, pred in pairs:
        assert fast_verdict(gold, pred, "box") is None and fast_verdict(gold, pred, "span") is None
    completions = [f"<answer>\\boxed{{{p}}}</answer>" if i % 2 else f"<answer>{p}</answer>"
                   for i, (_, p) in enumerate(pairs)]
    with Grader("strict", workers=2, timeout_s=10) as g:
        verdicts = g.grade_many(completions, [gold for gold, _ in pairs])
    mismatches = []
    for (gold, pred), completion, v in zip(pairs, completions, verdicts):
        found = extract(completion)
        if not found.text:
            continue
        mv, _ = math_verify_verdict(gold_text(gold.strip()), prediction_texts(found.text.strip(), found.kind))
        if mv != v.correct and v.rule != "relative_gap":
            mismatches.append((gold, pred, v, mv))
    assert not mismatches, mismatches[:5]


def test_long_integers_are_digit_strings_equal_to_math_verify_below_the_int_limit():
    """Integers past the fast path's length, up to Python's int-string limit (4,300 digits): the
    digit-string comparison gives math-verify's verdict (sign, leading zeros, one digit changed), for
    a box, an answer span and a bare response alike."""
    rng = random.Random(24)
    pairs = []
    for length in (61, 100, 999, 4299):
        digits = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(length - 1))
        changed = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        pairs += [(digits, digits), (digits, "0" + digits), (digits, "+" + digits), ("-" + digits, "-00" + digits),
                  (digits, "-" + digits), (digits, changed), (digits, digits[:-1])]
    pairs += [("0" * 80, "0"), ("-" + "0" * 80, "0")]
    decided = 0
    for gold, pred in pairs:
        for kind in ("box", "span", "text"):
            fast = fast_verdict(gold, pred, kind)
            if fast is None:
                assert kind == "text" and pred[0] in "+-"       # a signed bare response: math-verify's call
                continue
            mv, _ = math_verify_verdict(gold_text(gold), prediction_texts(pred, kind), timeout_s=10)
            assert fast == (mv, "fast_numeric"), (len(gold), pred[:3], kind)
            decided += 1
    assert decided == 3 * len(pairs) - 12


def test_integers_of_any_length_compare_by_value():
    """Past 4,300 digits Python refuses int() and math-verify reads text (``0777...`` is not
    ``777...`` for it); the digit strings compare values, at any length, without an exception."""
    n = "7" * 100_000
    assert integers_verdict(n, "0" + n) is True and integers_verdict("-0", "+000") is True
    assert integers_verdict(n, n[:-1] + "8") is False and integers_verdict(n, "-" + n) is False
    assert integers_verdict(n, "\\frac{1}{2}") is None and integers_verdict("1,000", "1000") is None
    assert fast_verdict(n, "0" + n, "text") == (True, "fast_numeric")
