"""Per-benchmark curve forms (PAPER 1.3): for each benchmark of a branch, the best of linear, log,
power, exponential and logistic by validation RMSE (trained on the first 71% of the points by compute,
scored on the rest). Library; ``python -m plasticity fit --per-benchmark OUT.csv`` writes its rows
(dataset, sft_step, benchmark, form, rmse_val, params).
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Sequence

import numpy as np

from plasticity.analysis.sigmoid import MAXFEV, fit_sigmoid, n_train_points, rmse

if TYPE_CHECKING:
    from plasticity.analysis.artifacts import Curves

PER_BENCHMARK_COLUMNS = ["dataset", "sft_step", "benchmark", "form", "rmse_val", "params"]


def _forms():
    return {
        "linear": (lambda x, a, b: a + b * x, lambda x, y: [0.0, 1.0]),
        "log": (lambda x, a, b: a + b * np.log1p(x), lambda x, y: [0.0, 1.0]),
        "power": (lambda x, a, b: a * np.power(np.maximum(x, 0.0), b), lambda x, y: [1.0, 0.5]),
        "exponential": (lambda x, a, c: a * (1.0 - np.exp(-x / c)), lambda x, y: [np.max(y), 1.0]),
    }


def _fit_forms(xs: np.ndarray, y: np.ndarray, n_train: int) -> list[tuple[float, str, list[float]]]:
    from scipy.optimize import OptimizeWarning, curve_fit

    out = []
    for name, (f, guess) in _forms().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(f, xs[:n_train], y[:n_train], p0=guess(xs, y), maxfev=MAXFEV)
            err = rmse(y[n_train:], f(xs[n_train:], *popt))
        except (RuntimeError, ValueError, FloatingPointError):
            continue
        if math.isfinite(err):
            out.append((err, name, [float(p) for p in popt]))
    return out


def fit_best_form(x: Sequence[float], y: Sequence[float]) -> dict:
    """Best of linear / log / power / exponential / logistic by validation RMSE (x scaled to median 1).

    Returns {"form", "rmse_val", "params"} ("form" is "none" when nothing could be fitted).
    """
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    x = np.asarray(x, dtype=float)[order]
    y = np.asarray(y, dtype=float)[order]
    pos = x[x > 0]
    scale = float(np.median(pos)) if len(pos) else 1.0
    xs = x / scale
    n_train = n_train_points(len(x))
    best = {"form": "none", "rmse_val": float("nan"), "params": []}
    if n_train >= len(x) or n_train < 3:
        return best
    candidates = []
    with np.errstate(all="ignore"):
        candidates += _fit_forms(xs, y, n_train)
    try:
        p = fit_sigmoid(x[:n_train], y[:n_train])
        candidates.append((rmse(y[n_train:], p.predict(x[n_train:])), "logistic",
                           [p.u, p.cmid, p.b, p.c0]))
    except (RuntimeError, ValueError):
        pass
    if candidates:
        err, name, params = min(candidates, key=lambda c: (c[0], c[1]))
        best = {"form": name, "rmse_val": err, "params": params}
    return best


def fit_per_benchmark(curves: Curves, fits: list[dict]) -> list[dict]:
    """Best per-benchmark form of every fitted branch (P_sft per benchmark = the x = 0 row, if any)."""
    out = []
    for f in fits:
        ds = f["dataset"]
        key = (ds, f["sft_step"]) if (ds, f["sft_step"]) in curves.per_benchmark else None
        if key is None:
            owners = sorted(d for d, b in curves.per_benchmark if b == f["sft_step"])
            if not owners:
                continue
            key = (owners[0], f["sft_step"])
        for bench, pts in sorted(curves.per_benchmark[key].items()):
            base = next((y for x, y in pts if x == 0), None)
            xs = [x for x, _ in pts]
            ys = [y - (base if base is not None else 0.0) for _, y in pts]
            if base is None:
                continue
            best = fit_best_form(xs, ys)
            out.append({"dataset": ds, "sft_step": f["sft_step"], "benchmark": bench,
                        "form": best["form"], "rmse_val": best["rmse_val"],
                        "params": " ".join(f"{p:.12g}" for p in best["params"])})
    return out
