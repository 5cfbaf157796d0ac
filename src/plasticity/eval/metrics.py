"""Accuracy metrics of the evaluation (PAPER.md section 3): avg@k, pass@k, maj@k, bootstrap CI, micro.

All accuracies are in percent. ``avg@k`` is the mean over *all* k samples of every problem (the
study's avg@16 on AIME), never the first sample only. The headline is the micro-average over
problems (weights = problem counts: 1317/291/262/237/25/25 for the study's 2,157), which
reproduces the paper's 46.7 (base) and 77.3 (SFT889K step 7200); the macro-average over
benchmarks is reported beside it.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021) for one problem with n samples of which c are correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k), as a stable product
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def per_problem_accuracy(correct: Sequence[Sequence[bool]]) -> list[float]:
    """Fraction of correct samples of each problem (all samples count)."""
    out = []
    for i, samples in enumerate(correct):
        if not samples:
            raise ValueError(f"problem {i} has no samples")
        out.append(sum(map(bool, samples)) / len(samples))
    return out


def avg_at_k(correct: Sequence[Sequence[bool]]) -> float:
    """Percent: mean over problems of the mean over all of that problem's samples."""
    acc = per_problem_accuracy(correct)
    return 100.0 * sum(acc) / len(acc) if acc else 0.0


def standard_error(per_problem: Sequence[float]) -> float:
    """Percent: standard error of the mean accuracy over problems (sample std / sqrt(n); 0 for n < 2).

    Problems are the sampling unit: avg@k's samples of one problem are averaged first.
    """
    n = len(per_problem)
    if n < 2:
        return 0.0
    mean = sum(per_problem) / n
    var = sum((x - mean) ** 2 for x in per_problem) / (n - 1)
    return 100.0 * math.sqrt(var / n)


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """Percent: unbiased pass@k averaged over problems (each needs at least k samples)."""
    vals = [pass_at_k(len(s), sum(map(bool, s)), k) for s in correct]
    return 100.0 * sum(vals) / len(vals) if vals else 0.0


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """maj@k for one problem: the most frequent extracted answer (ties: first seen) decides."""
    votes = Counter(a.strip() for a in answers if a is not None and a.strip())
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a.strip() for a in answers if a is not None and a.strip() and votes[a.strip()] == top)
    return any(c for a, c in zip(answers, correct) if a is not None and a.strip() == winner)


def maj_at_k(answers: Sequence[Sequence[str | None]], correct: Sequence[Sequence[bool]]) -> float:
    vals = [majority_correct(a, c) for a, c in zip(answers, correct)]
    return 100.0 * sum(vals) / len(vals) if vals else 0.0


def bootstrap_ci(per_problem: Sequence[float], seed: int, n_boot: int = 1000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percent: percentile bootstrap CI of the mean, resampling problems with a seeded generator."""
    import numpy as np

    x = np.asarray(per_problem, dtype=np.float64)
    if x.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (100.0 * float(lo), 100.0 * float(hi))


def micro_average(acc_by_role: dict[str, float], counts: dict[str, int]) -> float:
    """Problem-weighted mean of per-benchmark accuracies (the study's headline "overall")."""
    missing = sorted(set(acc_by_role) - set(counts))
    if missing:
        raise KeyError(f"micro_average: no problem count for {missing}")
    total = sum(counts[r] for r in acc_by_role)
    if total <= 0:
        raise ValueError("micro_average: the problem counts sum to zero")
    return sum(acc_by_role[r] * counts[r] for r in acc_by_role) / total


def macro_average(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else math.nan


def summarize(per_bench: dict) -> dict:
    """summary.json: per benchmark {role, accuracy, n_problems}, plus micro and macro (percent).

    ``per_bench`` maps a benchmark name to a dict holding at least ``accuracy`` (percent avg@k) and
    ``n_problems`` (and ``role``); extra keys are dropped from the summary.
    """
    benchmarks = {name: {"role": b.get("role"), "accuracy": float(b["accuracy"]), "n_problems": int(b["n_problems"])}
                  for name, b in sorted(per_bench.items())}
    micro = micro_average({n: b["accuracy"] for n, b in benchmarks.items()},
                          {n: b["n_problems"] for n, b in benchmarks.items()}) if benchmarks else math.nan
    return {"benchmarks": benchmarks, "micro": micro,
            "macro": macro_average(b["accuracy"] for b in benchmarks.values())}
