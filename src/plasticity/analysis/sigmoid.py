"""The sigmoid of PAPER 1.3 and its robust least-squares fit (library; ``fit.py`` drives it per branch).

Model, with x the RL compute since the branch point and y the gain over P_sft:

    y = c0 + (U - c0) / (1 + (Cmid / x)^B)

``fit_sigmoid`` is plain least squares with scipy ``curve_fit`` (maxfev ``MAXFEV``; bounds B in
[``B_MIN``, ``B_MAX``], Cmid in (``CMID_REL_LO`` * m, inf) with m the median positive x of the fitted points,
U and c0 in [-``U_BOUND``, ``U_BOUND``]; initial guess B = 1, Cmid = m, U = max y). ``robust_fit`` wraps
it in the paper's two robust stages:

1. Stage 1: iterative Modified-Z outlier rejection on the residuals, M_i = 0.6745 (r_i - median r) / MAD,
   dropping |M_i| > tau and refitting until nothing is dropped;
2. Stage 2 (optional): Least Trimmed Squares with h = floor(N * alpha) points, solved by C-steps
   (Rousseeuw & Driessen) started from the Stage 1 fit.

An anchor point (the branch point) is never rejected, and the robust stages stop before fewer than
(number of parameters + 1) points would remain. ``validation_split`` gives the paper's train fraction
(71% of the points by compute) used to score a fit on the points it has not seen.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

CMID_REL_LO = 1e-8           # Cmid lower bound, relative to the median positive x of the fitted points
U_BOUND = 100.0
B_MIN = 1e-4                 # bounds of the steepness B; a fit that reaches either is flagged (status.py)
B_MAX = 10.0
MAXFEV = 20000
TRAIN_FRACTION = 0.71        # the paper's average train share of a branch's points


def n_train_points(n: int, n_params: int = 3) -> int:
    """Points (in compute order) a validation fit trains on: 71% of n, at least n_params + 1."""
    return min(n, max(n_params + 1, int(round(TRAIN_FRACTION * n))))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2))) if len(a) else float("nan")


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
        bounds = ([-U_BOUND, lo_c, B_MIN, -U_BOUND], [U_BOUND, np.inf, B_MAX, U_BOUND])
    else:
        c0_fixed = float(eps)

        def f(xv, u, c, b):
            return sigmoid(xv, u, c, b, c0_fixed)
        p0 = [u0, 1.0, 1.0]
        bounds = ([-U_BOUND, lo_c, B_MIN], [U_BOUND, np.inf, B_MAX])
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
