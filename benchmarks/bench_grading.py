"""Grader throughput: ``Grader.grade_many`` against a naive per-item math-verify loop.

Workload (deterministic, seed 0): the study's suite shape, 2,157 problems x 16 samples = 34,512
completions. Problems follow the cleaned per-role counts (gsm8k 1317, olympiad_bench 291, minerva
262, math 237, aime 25, aime25 25) with gold answers of the role's kind: integers (GSM8K, AIME),
fractions, radicals, intervals, decimals and scientific notation. Each completion is R1-style
(``<think>`` with a few thousand characters of reasoning and inline LaTeX, then
``<answer>...\\boxed{...}</answer>``); samples are right with a per-role rate and otherwise give a
wrong or differently-written answer; about 5% are malformed (truncated, unclosed box, no answer).

Compared, side by side in one run:
  * grader    ``Grader(mode, workers=W).grade_many`` (fast path, cache, W worker processes);
  * naive     per item ``grading.grade_naive`` (same extraction, math-verify parse + verify in
              process, no fast path / cache / pool): the same verdict definition, computed the
              slow way; verdicts must be identical;
  * open-r1   per item ``verify(parse(gold), parse(completion))`` on the whole completion with
              open-r1's accuracy_reward settings; different semantics (it scans all of the text),
              reported for throughput and agreement only.

The baselines run on every ``--stride``-th item (deterministic subsample) and are extrapolated
to the full set; the script says so in its output. ``--repeat R`` alternates R rounds of grader
and naive loop (each round a fresh Grader: cold cache, workers started inside the timing) and
reports the medians.

    .venv/bin/python benchmarks/bench_grading.py [--workers 2] [--stride 1] [--openr1-stride 16] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time

ROLE_COUNTS = {"gsm8k": 1317, "olympiad_bench": 291, "minerva": 262, "math": 237, "aime": 25, "aime25": 25}
ACCURACY = {"gsm8k": 0.9, "olympiad_bench": 0.55, "minerva": 0.3, "math": 0.65, "aime": 0.3, "aime25": 0.2}
SAMPLES = 16

_FILLER = [
    "Let me compute this carefully. ", "First, note that $x^2 - 5x + 6 = (x-2)(x-3)$. ",
    "So the sum is $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$. ", "Wait, let me double-check that step. ",
    "Substituting gives $3 \\cdot 4 = 12$, and then $12 + 7 = 19$. ", "Hmm, that doesn't look right. ",
    "By the triangle inequality, $|a+b| \\le |a| + |b|$. ", "We have $\\sqrt{16} = 4$ and $2^{3} = 8$. ",
    "Therefore the probability is $\\frac{3}{8}$ of the remaining cases. ", "Alternatively, consider the complement. ",
]


def _gold(rng: random.Random, role: str) -> tuple[str, list[str], list[str]]:
    """(gold, equivalent spellings, wrong answers) for one problem of a role."""
    if role in ("gsm8k", "aime", "aime25"):
        n = rng.randint(0, 999) if role != "gsm8k" else rng.choice([rng.randint(1, 500), rng.randint(1000, 99999)])
        eq = [str(n)] + ([f"{n:,}"] if n >= 1000 else []) + ([f"{n:03d}"] if role != "gsm8k" and n < 100 else [])
        return str(n), eq, [str(n + d) for d in (1, -1, 10, 2 * n + 3)]
    kind = rng.choice(["fraction", "radical", "interval", "decimal", "sci", "integer"] if role != "minerva"
                      else ["decimal", "sci", "decimal", "integer"])
    if kind == "fraction":
        a, b = rng.randint(1, 20), rng.randint(21, 40)
        return (f"\\frac{{{a}}}{{{b}}}", [f"\\frac{{{a}}}{{{b}}}", f"\\dfrac{{{a}}}{{{b}}}", f"{a}/{b}"],
                [f"\\frac{{{b}}}{{{a}}}", f"\\frac{{{a + 1}}}{{{b}}}"])
    if kind == "radical":
        a, b = rng.randint(2, 9), rng.choice([2, 3, 5, 7])
        return (f"{a}\\sqrt{{{b}}}", [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}"],
                [f"{a + 1}\\sqrt{{{b}}}", f"{a}\\sqrt{{{b + 1}}}"])
    if kind == "interval":
        a, b = rng.randint(-9, 0), rng.randint(1, 9)
        return (f"[{a},{b})", [f"[{a},{b})", f"[{a}, {b})"], [f"({a},{b})", f"[{a},{b}]"])
    if kind == "decimal":
        v = round(rng.uniform(0.1, 99.0), 2)
        return (f"{v}", [f"{v}", f"{v}0"], [f"{round(v * 1.5, 2)}", f"{round(v + 1, 2)}"])
    if kind == "sci":
        m, e = rng.randint(2, 9), rng.randint(3, 9)
        return (f"{m} \\times 10^{{{e}}}", [f"{m} \\times 10^{{{e}}}", f"{m}\\times10^{e}"],
                [f"{m} \\times 10^{{{e + 1}}}", f"{m + 1} \\times 10^{{{e}}}"])
    n = rng.randint(1, 200)
    return str(n), [str(n)], [str(n + 1)]


def _completion(rng: random.Random, answer: str | None, malformed: str | None) -> str:
    think = "".join(rng.choice(_FILLER) for _ in range(rng.randint(35, 90)))  # ~2-5K characters
    if malformed == "truncated":
        return "<think>\n" + think
    if malformed == "unclosed":
        return f"<think>\n{think}\n</think>\n<answer>The answer is \\boxed{{{answer}</answer>"
    if malformed == "no_box":
        return f"<think>\n{think}\n</think>\nI am not sure about the final value."
    return f"<think>\n{think}\n</think>\n<answer>The final answer is \\boxed{{{answer}}}</answer>"


def build_workload(seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    completions, references = [], []
    for role, count in ROLE_COUNTS.items():
        for _ in range(count):
            gold, equivalent, wrong = _gold(rng, role)
            for _ in range(SAMPLES):
                r = rng.random()
                malformed = None
                if r < 0.05:
                    malformed = rng.choice(["truncated", "unclosed", "no_box"])
                ans = rng.choice(equivalent) if rng.random() < ACCURACY[role] else rng.choice(wrong)
                completions.append(_completion(rng, ans, malformed))
                references.append(gold)
    return completions, references


def run_openr1(completion: str, reference: str) -> bool:
    """open-r1's accuracy_reward (src/open_r1/rewards.py): parse the whole completion, boxed first."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    gold = parse(f"${reference}$", extraction_mode="first_match")
    pred = parse(completion, extraction_config=[LatexExtractionConfig(
        normalization_config=NormalizationConfig(nits=False, malformed_operators=False, basic_latex=True,
                                                 boxed="all", units=True),
        boxed_match_priority=0, try_extract_without_anchor=False)], extraction_mode="first_match")
    return bool(verify(gold, pred)) if gold and pred else False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mode", default="strict", choices=["strict", "lenient"])
    parser.add_argument("--stride", type=int, default=1, help="naive baseline on every stride-th item")
    parser.add_argument("--openr1-stride", type=int, default=16, help="open-r1 baseline on every n-th item (0: skip)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of grader then naive loop; medians reported")
    parser.add_argument("--json", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from plasticity.grading import Grader, grade_naive, math_verify_version

    t = time.perf_counter()
    completions, references = build_workload()
    n = len(completions)
    mean_len = sum(map(len, completions)) / n
    print(f"workload: {n} completions (mean {mean_len:.0f} chars), built in {time.perf_counter() - t:.1f} s")

    idx = list(range(0, n, args.stride))
    import math_verify  # noqa: F401 - import cost is not part of the loop
    grader_times, naive_times = [], []
    for round_ in range(args.repeat):
        # A fresh Grader each round: cold cache, worker processes started inside the timed region.
        t = time.perf_counter()
        with Grader(args.mode, workers=args.workers, timeout_s=5.0) as grader:
            verdicts = grader.grade_many(completions, references)
            stats = dict(grader.stats)
        grader_times.append(time.perf_counter() - t)
        print(f"round {round_ + 1}: grader ({args.workers} workers) {grader_times[-1]:.2f} s; stats {stats}")
        t = time.perf_counter()
        naive = [grade_naive(completions[i], references[i], args.mode) for i in idx]
        naive_times.append(time.perf_counter() - t)
        print(f"round {round_ + 1}: naive loop on {len(idx)} items {naive_times[-1]:.2f} s")
    t_grader, t_naive = statistics.median(grader_times), statistics.median(naive_times)
    naive_rate = len(idx) / t_naive
    print(f"grader median {t_grader:.2f} s, {n / t_grader:.0f} items/s")
    agree = sum(naive[k].correct == verdicts[i].correct for k, i in enumerate(idx))
    print(f"naive loop on {len(idx)} items: {t_naive:.2f} s, {naive_rate:.1f} items/s "
          f"(full set extrapolated: {n / naive_rate:.0f} s); verdict agreement {agree}/{len(idx)}")

    result = {"n": n, "mean_chars": round(mean_len), "workers": args.workers, "mode": args.mode,
              "math_verify": math_verify_version(), "grader_s": round(t_grader, 2),
              "grader_items_per_s": round(n / t_grader, 1), "grader_stats": stats,
              "naive_items": len(idx), "naive_s": round(t_naive, 2), "naive_items_per_s": round(naive_rate, 1),
              "speedup": round((n / t_grader) / naive_rate, 1), "naive_agreement": f"{agree}/{len(idx)}",
              "rounds": args.repeat, "grader_round_s": [round(x, 2) for x in grader_times],
              "naive_round_s": [round(x, 2) for x in naive_times],
              "accuracy": round(100 * sum(v.correct for v in verdicts) / n, 2)}
    if args.openr1_stride:
        idx2 = list(range(0, n, args.openr1_stride))
        t = time.perf_counter()
        o = [run_openr1(completions[i], references[i]) for i in idx2]
        t_o = time.perf_counter() - t
        agree2 = sum(o[k] == verdicts[i].correct for k, i in enumerate(idx2))
        result.update({"openr1_items": len(idx2), "openr1_s": round(t_o, 2),
                       "openr1_items_per_s": round(len(idx2) / t_o, 1),
                       "openr1_speedup": round((n / t_grader) / (len(idx2) / t_o), 1),
                       "openr1_agreement": f"{agree2}/{len(idx2)}"})
        print(f"open-r1 loop on {len(idx2)} items: {t_o:.2f} s, {len(idx2) / t_o:.1f} items/s; "
              f"agreement with the grader {agree2}/{len(idx2)} (different semantics: whole-text parse)")
    print(f"speedup vs naive: {result['speedup']}x")
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0 if agree == len(idx) else 1


if __name__ == "__main__":
    raise SystemExit(main())
