"""The in-process fast path decides only where its verdict equals math-verify's."""
from __future__ import annotations

import random

from plasticity.grading import (Grader, _extract, _fast_verdict, gold_text, math_verify_verdict,
                                prediction_texts)


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
        fast = _fast_verdict(gold, pred)
        if fast is None:
            continue
        for kind in ("box", "span"):
            decided += 1
            mv, _ = math_verify_verdict(gold_text(gold), prediction_texts(pred, kind))
            if mv != fast:
                mismatches.append((kind, gold, pred, fast, mv))
    assert not mismatches, mismatches[:10]
    assert decided > 3000            # the fast path really carries the load
    both = sum(1 for g, p in _pairs(2500, seed=7) if _fast_verdict(g, p) is True)
    assert both > 500                # ... for equal pairs too, not just unequal ones


def test_fast_path_known_pairs():
    assert _fast_verdict("72", "072") is True
    assert _fast_verdict("1000", "1,000") is True
    assert _fast_verdict("3", "3.0") is True
    assert _fast_verdict("0.5", ".5") is True
    assert _fast_verdict("0", "-0") is True
    assert _fast_verdict("72", "73") is False
    assert _fast_verdict("0.1234567", "0.1234568") is None    # grey zone: math-verify rounds
    assert _fast_verdict("1,00", "100") is None                # not a thousands separator
    assert _fast_verdict("1" * 100, "1" * 100) is None         # too long to decide in-process


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
        assert v.correct == (_extract(c)[0] == r)
        assert v.rule == "fast_numeric"
