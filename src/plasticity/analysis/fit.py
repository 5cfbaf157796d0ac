"""Robust sigmoid fit of every RL branch: the ceiling A_post and the plasticity PL_rl (PAPER 1.2, 1.3).

Per branch, x is RL compute relative to the branch point (EF) and y the gain of the overall metric over
P_sft (the SFT checkpoint's value); the branch point enters as (0, 0). The model is

    y = c0 + (U - c0) / (1 + (Cmid / x)^B),     A_post = P_sft + U,   PL_rl = U

with c0 = eps fixed (0 unless given) or fitted (``free``); A_post = P_sft + U holds for an accepted fit
(status ``ok``; see "Degenerate branches" below for the others). The pipeline, on a set of points:

1. least squares with scipy ``curve_fit`` (maxfev 20000; bounds B in [1e-4, 10], Cmid in (1e-8 m, inf)
   with m the median positive x of the fitted points, U and c0 in [-100, 100]; initial guess B = 1,
   Cmid = m, U = max y);
2. Stage 1: iterative Modified-Z outlier rejection on the residuals, M_i = 0.6745 (r_i - median r) / MAD,
   dropping |M_i| > tau and refitting until nothing is dropped;
3. Stage 2 (optional): Least Trimmed Squares with h = floor(N * alpha) points, solved by C-steps
   (Rousseeuw & Driessen) started from the Stage 1 fit.

The branch point (0, 0) anchors the curve and is never rejected. Robust stages stop before fewer than
(number of parameters + 1) points would remain. The reported parameters come from the pipeline on all
points of the branch; a second run on the first ``TRAIN_FRACTION`` (71%, the paper's average) of the
points by compute gives the validation RMSE on the remaining points. Without given hyperparameters tau
and alpha are chosen from {2.5, 3, 4} x {none, 0.75, 0.85} by that validation RMSE (first best in this
order on ties).

Scale invariance: the model only depends on x / Cmid, so each branch is fitted on x / s with
s = the median positive x of the branch, and Cmid is mapped back (Cmid = Cmid_scaled * s). The Cmid
lower bound is relative to the data (1e-8 times the median positive x of the points being fitted).
The miniature's compute (1e-7..1e-5 EF) is therefore fitted exactly like the study's (1..1000 EF):
multiplying every x of a branch by a constant k gives the same U and B and k times Cmid.

Unstable runs: a branch is ``collapsed`` when its last max(2, ceil(N/5)) points all lie after the
peak and below peak - max(COLLAPSE_DROP, 25% of the peak gain). Then A_post is the observed peak before
the collapse (flagged), and Cmid and B come from a fit on the points up to the peak.
Degenerate branches: A_post is either a fitted ceiling (status ``ok``), the collapse peak
(``collapsed``) or, when no fitted ceiling can be trusted, the best observed value of the branch,
max_obs = P_sft + max gain (the branch point included, so PL_rl >= 0: the best point that beats the
branch point, else the branch point itself). The substitute is reported, checked in this order, when

- ``failed``: the branch cannot be fitted (too few points, optimiser failure); fit parameters empty;
- ``flat``: the gain is never clearly above zero (no point after the branch point more than
  ``FLAT_GAIN`` accuracy points above it) or the fitted curve does not rise (U <= 0), i.e. a flat or
  decreasing RL curve;
- ``bound``: the fitted U sits at the +U_BOUND bound (the asymptote is not identified);
- ``implausible``: the fitted ceiling P_sft + U lies outside [0, 100] %.

For these the rejected fit's Cmid, B, c0 and U (column ``u_fit``) stay in FITS.csv for inspection;
Table 4 and Figure 3 show points only, and correlations skip them. A reported A_post therefore always
lies in [0, 100] (it is blank only when the branch has no points).

Per-benchmark panels (``--per-benchmark``) choose among linear, log, power, exponential and logistic
forms by validation RMSE (PAPER 1.3).

Inputs:
- CURVES.csv: columns dataset, branch_step, phase, x_ef, benchmark, accuracy (schema.CURVE). Overall =
  micro-average over the weighted benchmarks (``DEFAULT_WEIGHTS``, or ``--weights JSON`` role -> count);
  rows with benchmark ``overall`` are used as they are. Benchmarks without a weight are ignored.
- HPARAMS.csv (optional): dataset, sft_step, x_sft_ef and optionally outlier_tau, lts_alpha, eps.
  x_sft_ef locates the branch point on the SFT curve (nearest SFT point, within 1% or 0.5 EF), which
  gives P_sft (a dataset without SFT rows uses the branch's own x = 0 row). tau blank or ``auto`` = chosen; lts_alpha blank = no LTS, ``auto`` = chosen; eps a number
  = c0 fixed at it, ``free`` = fitted, blank = 0. Dataset ``pure_rl`` with sft_step 0 = the branch_step 0
  curve (of the first dataset that has one), branch point = that dataset's SFT curve at x 0.
  Without HPARAMS every RL branch is fitted with tau/alpha chosen, and P_sft is the branch's own x = 0
  row (curves built by ``plasticity curves`` have one).

Output FITS.csv: one row per branch, sorted by dataset then sft_step (columns ``FIT_COLUMNS``). Floats
are written with 12 significant digits (``%.12g``), so tiny-model compute (1e-6 EF) keeps its value;
rounding is left to the human-facing tables.

By hand:

    python -m plasticity fit --curves ../shared/reference/sft889k_curves.csv \
        --hparams ../shared/reference/sft889k_table4.csv --out reports/reference/fits.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from plasticity.io import read_csv_rows

DEFAULT_WEIGHTS = {"gsm8k": 1317, "olympiad_bench": 291, "minerva": 262, "math": 237, "aime": 25,
                   "aime25": 25}
TAU_GRID = (2.5, 3.0, 4.0)
ALPHA_GRID = (None, 0.75, 0.85)
TRAIN_FRACTION = 0.71
COLLAPSE_DROP = 3.0          # accuracy points
FLAT_GAIN = 0.5              # accuracy points: a gain at or below this is not "clearly above zero"
CMID_REL_LO = 1e-8           # Cmid lower bound, relative to the median positive x of the fitted points
U_BOUND = 100.0
MAXFEV = 20000

FIT_COLUMNS = ["dataset", "sft_step", "x_sft_ef", "p_sft", "a_post", "pl_rl", "cmid_ef", "b", "eps",
               "eps_mode", "rmse_val", "r2_train", "n_points", "n_outliers", "n_trimmed", "tau", "alpha",
               "hparams", "max_obs", "collapsed", "status", "u_fit"]
SUBSTITUTED = ("failed", "flat", "bound", "implausible")   # A_post = best observed, no curve drawn


class FitError(ValueError):
    """Bad fit input; the message names the file, row and field."""


# ------------------------------------------------------------------------------- model and LSQ

def sigmoid(x: np.ndarray, u: float, cmid: float, b: float, c0: float = 0.0) -> np.ndarray:
    """y = c0 + (U - c0) / (1 + (Cmid / x)^B), with y(0) = c0."""
    x = np.asarray(x, dtype=float)
    safe = np.where(x > 0, x, 1.0)
    with np.errstate(over="ignore", divide="ignore"):
        z = np.exp(b * (np.log(cmid) - np.log(safe)))
        y = c0 + (u - c0) / (1.0 + z)
    return np.where(x > 0, y, c0)


@dataclass
class SigmoidParams:
    u: float
    cmid: float
    b: float
    c0: float

    def predict(self, x) -> np.ndarray:
        return sigmoid(x, self.u, self.cmid, self.b, self.c0)


def fit_sigmoid(x: np.ndarray, y: np.ndarray, eps: float | str = 0.0) -> SigmoidParams:
    """Plain least squares of the sigmoid; raises RuntimeError/ValueError when it cannot fit.

    x is rescaled by its median positive value m inside the optimiser (Cmid is scaled back), which is
    the same model but keeps tiny-model compute (1e-6 EF) well conditioned; the Cmid lower bound is
    CMID_REL_LO * m, so the fit does not depend on the unit of x.
    """
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    free = eps == "free"
    n_params = 4 if free else 3
    if len(x) < n_params:
        raise ValueError(f"{len(x)} points for {n_params} parameters")
    pos = x[x > 0]
    if len(pos) == 0:
        raise ValueError("no point with positive compute")
    scale = float(np.median(pos))
    xs = x / scale
    u0 = float(np.clip(np.max(y), -U_BOUND + 1e-6, U_BOUND - 1e-6))
    lo_c = CMID_REL_LO
    if free:
        def f(xv, u, c, b, c0):
            return sigmoid(xv, u, c, b, c0)
        p0 = [u0, 1.0, 1.0, 0.0]
        bounds = ([-U_BOUND, lo_c, 1e-4, -U_BOUND], [U_BOUND, np.inf, 10.0, U_BOUND])
    else:
        c0_fixed = float(eps)

        def f(xv, u, c, b):
            return sigmoid(xv, u, c, b, c0_fixed)
        p0 = [u0, 1.0, 1.0]
        bounds = ([-U_BOUND, lo_c, 1e-4], [U_BOUND, np.inf, 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)   # covariance is not used
        popt, _ = curve_fit(f, xs, y, p0=p0, bounds=bounds, maxfev=MAXFEV)
    if not np.all(np.isfinite(popt)):
        raise RuntimeError("non-finite parameters")
    return SigmoidParams(u=float(popt[0]), cmid=float(popt[1]) * scale, b=float(popt[2]),
                         c0=float(popt[3]) if free else float(eps))


@dataclass
class RobustFit:
    params: SigmoidParams
    kept: np.ndarray            # boolean mask over the input points
    n_outliers: int             # dropped by Stage 1
    n_trimmed: int              # left out by Stage 2


def robust_fit(x: Sequence[float], y: Sequence[float], tau: float | None = 3.0,
               alpha: float | None = None, eps: float | str = 0.0, anchor: int | None = 0) -> RobustFit:
    """Stage 1 (Modified-Z, threshold tau) then Stage 2 (LTS, fraction alpha) around the sigmoid.

    ``anchor`` is the index of a point that is never rejected (the branch point); None for none.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    min_keep = (4 if eps == "free" else 3) + 1
    kept = np.ones(len(x), dtype=bool)
    params = fit_sigmoid(x, y, eps)
    n_out = 0
    if tau is not None:
        for _ in range(len(x)):
            r = y - params.predict(x)
            rk = r[kept]
            med = float(np.median(rk))
            mad = float(np.median(np.abs(rk - med)))
            if mad <= 0:
                break
            m = 0.6745 * (r - med) / mad
            drop = kept & (np.abs(m) > tau)
            if anchor is not None:
                drop[anchor] = False
            if not drop.any() or kept.sum() - drop.sum() < min_keep:
                break
            kept &= ~drop
            n_out += int(drop.sum())
            params = fit_sigmoid(x[kept], y[kept], eps)
    n_trim = 0
    if alpha is not None:
        idx = np.flatnonzero(kept)
        h = int(math.floor(len(idx) * alpha))
        if min_keep <= h < len(idx):
            subset = None
            for _ in range(50):          # C-steps: refit on the h smallest squared residuals
                r2 = (y[idx] - params.predict(x[idx])) ** 2
                if anchor is not None and anchor in idx:
                    r2[np.flatnonzero(idx == anchor)[0]] = -1.0
                new = np.sort(idx[np.argsort(r2, kind="stable")[:h]])
                if subset is not None and np.array_equal(new, subset):
                    break
                subset = new
                params = fit_sigmoid(x[subset], y[subset], eps)
            n_trim = len(idx) - h
            kept = np.zeros(len(x), dtype=bool)
            kept[subset] = True
    return RobustFit(params=params, kept=kept, n_outliers=n_out, n_trimmed=n_trim)


# ----------------------------------------------------------------------------------- a branch

def n_train_points(n: int, n_params: int = 3) -> int:
    return min(n, max(n_params + 1, int(round(TRAIN_FRACTION * n))))


def detect_collapse(y: Sequence[float], drop: float = COLLAPSE_DROP) -> int | None:
    """Index of the peak before a collapse, or None when the branch did not collapse (see module doc)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    k = max(2, math.ceil(n / 5))
    if n < k + 2:
        return None
    peak = int(np.argmax(y))
    threshold = y[peak] - max(drop, 0.25 * (y[peak] - y[0]))
    if peak < n - k and np.all(y[n - k:] < threshold):
        return peak
    return None


@dataclass
class BranchFit:
    params: SigmoidParams | None
    tau: float | None
    alpha: float | None
    rmse_val: float
    r2_train: float
    n_points: int
    n_outliers: int
    n_trimmed: int
    max_gain: float
    collapsed: bool
    status: str
    peak_gain: float | None = None
    kept: np.ndarray | None = field(default=None, repr=False)
    scale: float = 1.0          # s: the branch was fitted on x / s (params.cmid is in the input's unit)

    @property
    def pl_rl(self) -> float:
        """The reported gain ceiling: U when the fit is accepted, else the observed substitute."""
        if self.collapsed and self.peak_gain is not None:
            return self.peak_gain
        if self.status in SUBSTITUTED:
            return self.max_gain
        return self.params.u if self.params is not None else float("nan")

    @property
    def u_fit(self) -> float:
        """The fitted U, accepted or not (NaN without a fit)."""
        return self.params.u if self.params is not None else float("nan")


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2))) if len(a) else float("nan")


def _validation_rmse(x, y, tau, alpha, eps) -> float:
    n_train = n_train_points(len(x), 4 if eps == "free" else 3)
    if n_train >= len(x):
        return float("nan")
    fit = robust_fit(x[:n_train], y[:n_train], tau, alpha, eps)
    return _rmse(y[n_train:], fit.params.predict(x[n_train:]))


def branch_scale(x: Sequence[float]) -> float:
    """s of a branch: its median positive x (1 when there is none)."""
    x = np.asarray(x, dtype=float)
    pos = x[x > 0]
    return float(np.median(pos)) if len(pos) else 1.0


def branch_status(params: SigmoidParams, y: np.ndarray, x: np.ndarray,
                  p_sft: float | None = None) -> str:
    """``flat``, ``bound``, ``implausible`` or ``ok`` for a fitted, non-collapsed branch (module doc)."""
    after = y[x > 0]
    if len(after) == 0 or float(np.max(after)) <= FLAT_GAIN or params.u <= 0.0:
        return "flat"
    if params.u >= U_BOUND - 1e-6:
        return "bound"
    if p_sft is not None and not 0.0 <= p_sft + params.u <= 100.0:
        return "implausible"
    return "ok"


def fit_branch(x: Sequence[float], y: Sequence[float], tau: float | str | None = "auto",
               alpha: float | str | None = "auto", eps: float | str = 0.0,
               p_sft: float | None = None) -> BranchFit:
    """Fit one branch. x, y: RL compute and gain, including the branch point (0, 0); never raises
    on degenerate data (status ``failed`` instead). The fit runs on x / s (``branch_scale``) and
    Cmid is mapped back to the unit of x. ``p_sft`` (optional) enables the ``implausible`` check."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    scale = branch_scale(x)
    x = np.asarray(x, dtype=float)[order] / scale
    y = np.asarray(y, dtype=float)[order]
    n = len(x)
    max_gain = float(np.max(y)) if n else float("nan")
    peak = detect_collapse(y)
    collapsed = peak is not None
    xf, yf = (x[:peak + 1], y[:peak + 1]) if collapsed else (x, y)
    taus = TAU_GRID if tau == "auto" else (tau,)
    alphas = ALPHA_GRID if alpha == "auto" else (alpha,)
    best = None
    for t in taus:
        for a in alphas:
            try:
                rmse = _validation_rmse(xf, yf, t, a, eps)
            except (RuntimeError, ValueError, FloatingPointError):
                rmse = float("nan")
            key = rmse if math.isfinite(rmse) else float("inf")
            if best is None or key < best[0]:
                best = (key, t, a, rmse)
    _, t, a, rmse = best
    try:
        fit = robust_fit(xf, yf, t, a, eps)
    except (RuntimeError, ValueError, FloatingPointError):
        return BranchFit(None, t, a, float("nan"), float("nan"), n, 0, 0, max_gain, collapsed,
                         "failed", peak_gain=float(y[peak]) if collapsed else None, scale=scale)
    n_train = n_train_points(len(xf), 4 if eps == "free" else 3)
    tx, ty = xf[:n_train], yf[:n_train]
    ss = float(np.sum((ty - ty.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ty - fit.params.predict(tx)) ** 2)) / ss if ss > 0 else float("nan")
    status = "collapsed" if collapsed else branch_status(fit.params, y, x, p_sft)
    pr = fit.params
    params = SigmoidParams(u=pr.u, cmid=pr.cmid * scale, b=pr.b, c0=pr.c0)
    return BranchFit(params, t, a, rmse, r2, n, fit.n_outliers, fit.n_trimmed, max_gain,
                     collapsed, status, peak_gain=float(y[peak]) if collapsed else None,
                     kept=fit.kept, scale=scale)


# --------------------------------------------------------------- per-benchmark form selection

def _forms():
    return {
        "linear": (lambda x, a, b: a + b * x, lambda x, y: [0.0, 1.0]),
        "log": (lambda x, a, b: a + b * np.log1p(x), lambda x, y: [0.0, 1.0]),
        "power": (lambda x, a, b: a * np.power(np.maximum(x, 0.0), b), lambda x, y: [1.0, 0.5]),
        "exponential": (lambda x, a, c: a * (1.0 - np.exp(-x / c)), lambda x, y: [np.max(y), 1.0]),
    }


def _fit_forms(xs: np.ndarray, y: np.ndarray, n_train: int) -> list[tuple[float, str, list[float]]]:
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    out = []
    for name, (f, guess) in _forms().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                popt, _ = curve_fit(f, xs[:n_train], y[:n_train], p0=guess(xs, y), maxfev=MAXFEV)
            rmse = _rmse(y[n_train:], f(xs[n_train:], *popt))
        except (RuntimeError, ValueError, FloatingPointError):
            continue
        if math.isfinite(rmse):
            out.append((rmse, name, [float(p) for p in popt]))
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
        candidates.append((_rmse(y[n_train:], p.predict(x[n_train:])), "logistic",
                           [p.u, p.cmid, p.b, p.c0]))
    except (RuntimeError, ValueError):
        pass
    if candidates:
        rmse, name, params = min(candidates, key=lambda c: (c[0], c[1]))
        best = {"form": name, "rmse_val": rmse, "params": params}
    return best


# ----------------------------------------------------------------------------------- reading

@dataclass
class Curves:
    """Overall (micro-averaged) points: sft[dataset] and rl[(dataset, branch_step)] -> sorted (x, y)."""
    sft: dict[str, list[tuple[float, float]]]
    rl: dict[tuple[str, int], list[tuple[float, float]]]
    per_benchmark: dict[tuple[str, int], dict[str, list[tuple[float, float]]]]


def read_curve_rows(path: str | Path) -> list[dict]:
    """Rows of a curves CSV, validated; errors name the file, the line and the field."""
    path = Path(path)
    need = ["dataset", "branch_step", "phase", "x_ef", "benchmark", "accuracy"]
    _, lines = read_csv_rows(path, need, FitError)
    rows = []
    for line, row in lines:
        where = f"{path}:{line}"
        phase = row["phase"].strip()
        if phase not in ("sft", "rl"):
            raise FitError(f"{where}: field 'phase' must be sft or rl, got {row['phase']!r}")
        try:
            x = float(row["x_ef"])
            acc = float(row["accuracy"])
        except ValueError:
            raise FitError(f"{where}: fields 'x_ef' and 'accuracy' must be numbers, got "
                           f"{row['x_ef']!r}, {row['accuracy']!r}") from None
        if not (math.isfinite(x) and x >= 0):
            raise FitError(f"{where}: field 'x_ef' must be finite and >= 0, got {row['x_ef']!r}")
        if not math.isfinite(acc):
            raise FitError(f"{where}: field 'accuracy' is not finite")
        branch = (row["branch_step"] or "").strip()
        if phase == "rl":
            try:
                branch_step = int(float(branch))
            except ValueError:
                raise FitError(f"{where}: field 'branch_step' must be an integer for phase rl, "
                               f"got {branch!r}") from None
        else:
            branch_step = None
        if not row["dataset"].strip() or not row["benchmark"].strip():
            raise FitError(f"{where}: fields 'dataset' and 'benchmark' must not be empty")
        rows.append({"dataset": row["dataset"].strip(), "branch_step": branch_step,
                     "phase": phase, "x_ef": x, "benchmark": row["benchmark"].strip(),
                     "accuracy": acc, "where": where})
    return rows


def overall_curves(rows: list[dict], weights: dict[str, float] | None = None,
                   source: str = "curves") -> Curves:
    """Micro-average each (dataset, phase, branch, x) point over the weighted benchmarks."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    points: dict[tuple, dict[str, float]] = {}
    for r in rows:
        key = (r["dataset"], r["phase"], r["branch_step"], r["x_ef"])
        bench = points.setdefault(key, {})
        if r["benchmark"] in bench:
            raise FitError(f"{r['where']}: duplicate row for {key} benchmark {r['benchmark']!r}")
        bench[r["benchmark"]] = r["accuracy"]
    sft: dict[str, list] = {}
    rl: dict[tuple, list] = {}
    per_bench: dict[tuple, dict[str, list]] = {}
    total = sum(weights.values())
    for (ds, phase, branch, x), bench in sorted(points.items(), key=lambda kv: (
            kv[0][0], kv[0][1], -1 if kv[0][2] is None else kv[0][2], kv[0][3])):
        if "overall" in bench:
            y = bench["overall"]
        else:
            missing = sorted(set(weights) - set(bench))
            if missing:
                raise FitError(f"{source}: dataset {ds} phase {phase} branch {branch} x_ef {x}: "
                               f"no accuracy for benchmark(s) {missing} (and no 'overall' row)")
            y = sum(weights[b] * bench[b] for b in weights) / total
        if phase == "sft":
            sft.setdefault(ds, []).append((x, y))
        else:
            rl.setdefault((ds, branch), []).append((x, y))
            for b, acc in bench.items():
                if b != "overall":
                    per_bench.setdefault((ds, branch), {}).setdefault(b, []).append((x, acc))
    return Curves(sft=sft, rl=rl, per_benchmark=per_bench)


def read_weights(path: str | Path) -> dict[str, float]:
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise FitError(f"{path}: cannot read weights ({exc})") from None
    if not isinstance(obj, dict) or not obj:
        raise FitError(f"{path}: expected a JSON object role -> problem count")
    for k, v in obj.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise FitError(f"{path}: weight of {k!r} must be a positive number, got {v!r}")
    return {k: float(v) for k, v in obj.items()}


def _parse_optional(value: str | None, where: str, name: str, *, blank, words: tuple[str, ...]):
    text = (value or "").strip()
    if not text:
        return blank
    if text.lower() in words:
        return text.lower()
    try:
        return float(text)
    except ValueError:
        raise FitError(f"{where}: field {name!r} must be a number, blank or one of {words}, "
                       f"got {value!r}") from None


def read_hparams(path: str | Path, default_tau="auto", default_alpha="auto",
                 default_eps: float | str = 0.0) -> list[dict]:
    """Rows of an HPARAMS.csv (see the module docstring); absent columns take the defaults."""
    path = Path(path)
    cols, lines = read_csv_rows(path, ("dataset", "sft_step", "x_sft_ef"), FitError)
    out = []
    for line, row in lines:
        where = f"{path}:{line}"
        try:
            step = int(float(row["sft_step"]))
            x_sft = float(row["x_sft_ef"])
        except ValueError:
            raise FitError(f"{where}: fields 'sft_step' and 'x_sft_ef' must be numbers, got "
                           f"{row['sft_step']!r}, {row['x_sft_ef']!r}") from None
        tau = (_parse_optional(row["outlier_tau"], where, "outlier_tau", blank=default_tau,
                               words=("auto",)) if "outlier_tau" in cols else default_tau)
        alpha = (_parse_optional(row["lts_alpha"], where, "lts_alpha", blank=None,
                                 words=("auto",)) if "lts_alpha" in cols else default_alpha)
        eps = (_parse_optional(row["eps"], where, "eps", blank=0.0, words=("free",))
               if "eps" in cols else default_eps)
        if isinstance(alpha, float) and not 0.5 <= alpha < 1:
            raise FitError(f"{where}: field 'lts_alpha' must be in [0.5, 1), got {alpha}")
        out.append({"dataset": row["dataset"].strip(), "sft_step": step, "x_sft_ef": x_sft,
                    "tau": tau, "alpha": alpha, "eps": eps, "where": where})
    return out


def sft_value_at(sft: list[tuple[float, float]], x_sft: float, where: str) -> float:
    """Accuracy of the SFT point nearest x_sft (within 1% or 0.5 EF)."""
    if not sft:
        raise FitError(f"{where}: no SFT curve to read P_sft from")
    x, y = min(sft, key=lambda p: (abs(p[0] - x_sft), p[0]))
    if abs(x - x_sft) > max(0.5, 0.01 * abs(x_sft)):
        raise FitError(f"{where}: no SFT point near x_sft_ef={x_sft} (nearest {x})")
    return y


# ------------------------------------------------------------------------------------ driving

def _fmt(v) -> str:
    """A CSV field: floats at full precision (12 significant digits), so tiny values survive."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, str):
        return v
    if not math.isfinite(v):
        return ""
    return f"{float(v) + 0.0:.12g}"     # + 0.0: no "-0"


def _branch_row(dataset, step, x_sft, p_sft, fit: BranchFit, eps, given: bool) -> dict:
    p = fit.params
    ok = p is not None
    status = fit.status
    if status == "ok" and not 0.0 <= p_sft + fit.pl_rl <= 100.0:
        status = "implausible"    # a ceiling outside [0, 100] % is an extrapolation artefact
    pl_rl = fit.max_gain if status in SUBSTITUTED and not fit.collapsed else fit.pl_rl
    return {
        "dataset": dataset, "sft_step": step, "x_sft_ef": x_sft, "p_sft": p_sft,
        "a_post": p_sft + pl_rl, "pl_rl": pl_rl,
        "cmid_ef": p.cmid if ok else float("nan"), "b": p.b if ok else float("nan"),
        "eps": p.c0 if ok else (float("nan") if eps == "free" else float(eps)),
        "eps_mode": "free" if eps == "free" else "fixed",
        "rmse_val": fit.rmse_val, "r2_train": fit.r2_train, "n_points": fit.n_points,
        "n_outliers": fit.n_outliers, "n_trimmed": fit.n_trimmed,
        "tau": "none" if fit.tau is None else fit.tau,
        "alpha": "none" if fit.alpha is None else fit.alpha,
        "hparams": "given" if given else "auto", "max_obs": p_sft + fit.max_gain,
        "collapsed": fit.collapsed, "status": status, "u_fit": fit.u_fit,
    }


def branch_points(curves: Curves, dataset: str, step: int, where: str
                  ) -> tuple[str, list[tuple[float, float]]]:
    """(dataset the RL rows belong to, points) of a branch; ``pure_rl`` means any dataset's step 0."""
    if dataset == "pure_rl":
        owners = sorted(ds for ds, b in curves.rl if b == step)
        if not owners:
            raise FitError(f"{where}: no RL branch with branch_step {step} for pure_rl")
        return owners[0], curves.rl[(owners[0], step)]
    if (dataset, step) not in curves.rl:
        raise FitError(f"{where}: no RL rows for dataset {dataset!r} branch_step {step}")
    return dataset, curves.rl[(dataset, step)]


def fit_all(curves: Curves, hparams: list[dict] | None = None, tau="auto", alpha="auto",
            eps: float | str = 0.0) -> list[dict]:
    """FITS rows for every branch of ``hparams`` (or every RL branch of ``curves``), sorted."""
    jobs = []
    if hparams is not None:
        for h in hparams:
            owner, pts = branch_points(curves, h["dataset"], h["sft_step"], h["where"])
            zero = [y for x, y in pts if x == 0]
            if curves.sft.get(owner) or not zero:
                p_sft = sft_value_at(curves.sft.get(owner, []), h["x_sft_ef"], h["where"])
            else:   # no SFT curve (e.g. a pure-RL dataset): the branch's own x = 0 evaluation
                p_sft = zero[0]
            jobs.append((h["dataset"], h["sft_step"], h["x_sft_ef"], p_sft, pts, h["tau"],
                         h["alpha"], h["eps"], True))
    else:
        for (ds, step), pts in sorted(curves.rl.items()):
            zero = [y for x, y in pts if x == 0]
            if zero:
                p_sft = zero[0]
            elif step == 0 and curves.sft.get(ds):
                p_sft = sft_value_at(curves.sft[ds], 0.0, f"dataset {ds} branch 0")
            else:
                raise FitError(f"dataset {ds} branch_step {step}: no x_ef = 0 row to read P_sft "
                               f"from; give --hparams with x_sft_ef")
            jobs.append((ds, step, float("nan"), p_sft, pts, tau, alpha, eps, False))
    rows = []
    for ds, step, x_sft, p_sft, pts, t, a, e, given in jobs:
        xs = [0.0] + [x for x, _ in pts if x > 0]
        ys = [0.0] + [y - p_sft for x, y in pts if x > 0]
        fit = fit_branch(xs, ys, t, a, e, p_sft=p_sft)
        rows.append(_branch_row(ds, step, x_sft, p_sft, fit,
                                e, given and t != "auto" and a != "auto"))
    rows.sort(key=lambda r: (r["dataset"], r["sft_step"]))
    return rows


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


def write_csv(rows: list[dict], columns: list[str], out: str | Path) -> None:
    from plasticity.io import atomic_path

    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(columns)
            for r in rows:
                w.writerow([_fmt(r.get(c)) for c in columns])


def read_fits(path: str | Path) -> list[dict]:
    """FITS.csv rows with numeric fields as floats (NaN for blanks) and sft_step as int."""
    path = Path(path)
    _, lines = read_csv_rows(path, ("dataset", "sft_step", "p_sft", "a_post", "pl_rl"), FitError)
    text_cols = {"dataset", "eps_mode", "tau", "alpha", "hparams", "collapsed", "status"}
    rows = []
    for line, row in lines:
        out = {}
        for k, v in row.items():
            if k in text_cols:
                out[k] = v
            elif k == "sft_step":
                try:
                    out[k] = int(v)
                except ValueError:
                    raise FitError(f"{path}:{line}: field 'sft_step' must be an integer, "
                                   f"got {v!r}") from None
            else:
                try:
                    out[k] = float(v) if v != "" else float("nan")
                except ValueError:
                    raise FitError(f"{path}:{line}: field {k!r} must be a number, got {v!r}") from None
        rows.append(out)
    return rows


def _tau_arg(v: str):
    return v if v == "auto" else (None if v == "none" else float(v))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plasticity fit",
                                description="Robust sigmoid fit per RL branch (PAPER 1.3); writes FITS.csv.")
    p.add_argument("--curves", required=True, help="curves CSV (schema.CURVE columns)")
    p.add_argument("--hparams", help="per-branch dataset, sft_step, x_sft_ef[, outlier_tau, lts_alpha, eps]")
    p.add_argument("--weights", help="JSON role -> problem count for the micro-average "
                                     "(default: the study's 2,157-problem suite)")
    p.add_argument("--tau", default="auto", help="Stage 1 threshold where HPARAMS gives none: "
                                                 "a number, none or auto (default auto)")
    p.add_argument("--alpha", default="auto", help="LTS fraction where HPARAMS gives none: "
                                                   "a number, none or auto (default auto)")
    p.add_argument("--eps", default="0", help="c0: a number (fixed) or free (default 0)")
    p.add_argument("--per-benchmark", help="also write per-benchmark best-form fits to this CSV")
    p.add_argument("--out", required=True, help="FITS.csv to write")
    args = p.parse_args(argv)
    try:
        tau, alpha = _tau_arg(args.tau), _tau_arg(args.alpha)
        eps = "free" if args.eps == "free" else float(args.eps)
        weights = read_weights(args.weights) if args.weights else None
        curves = overall_curves(read_curve_rows(args.curves), weights, source=args.curves)
        hparams = read_hparams(args.hparams, tau, alpha, eps) if args.hparams else None
        rows = fit_all(curves, hparams, tau, alpha, eps)
        if args.per_benchmark:
            write_csv(fit_per_benchmark(curves, rows),
                      ["dataset", "sft_step", "benchmark", "form", "rmse_val", "params"],
                      args.per_benchmark)
    except (FitError, ValueError) as exc:
        print(f"fit: error: {exc}", file=sys.stderr)
        return 2
    write_csv(rows, FIT_COLUMNS, args.out)
    failed = [f"{r['dataset']}@{r['sft_step']}" for r in rows if r["status"] == "failed"]
    print(f"fit: {len(rows)} branch(es) -> {args.out}" + (f"; failed: {failed}" if failed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
