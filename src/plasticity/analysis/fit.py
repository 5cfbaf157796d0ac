"""Robust sigmoid fit of every RL branch: the ceiling A_post and the plasticity PL_rl (PAPER 1.2, 1.3).

Per branch, x is RL compute relative to the branch point (EF) and y the gain of the overall metric over
P_sft (the SFT checkpoint's value); the branch point enters as (0, 0). The sigmoid and its robust least
squares are in ``sigmoid.py``; which ceiling a branch's points support (ok, flat, extrapolated,
bound, poor_fit, collapsed, implausible, failed) is decided by ``status.py``; the per-benchmark forms are in
``forms.py``; reading and writing the files in ``artifacts.py``. This module drives them:

- Scale invariance: each branch is fitted on x / s with s = its median positive x, and Cmid is mapped
  back; the miniature's compute (1e-7..1e-5 EF) is fitted exactly like the study's (1..1000 EF).
- The reported parameters come from the robust pipeline on all points of the branch (on the points up
  to the peak for a collapsed branch); a second run on the first 71% of the points by compute gives the
  validation RMSE on the rest.
- Without given hyperparameters tau and alpha are chosen from {2.5, 3, 4} x {none, 0.75, 0.85}: the
  lowest validation RMSE among the choices whose full fit has an identifiable ceiling (``status.
  identifiable``: Cmid within the observed compute); only when no choice has one, the lowest validation
  RMSE overall (the branch is then reported ``extrapolated``). Ties go to the first in that order.
- P_sft, the branch point: with HPARAMS, the SFT curve at x_sft_ef (nearest point within 1% or 0.5 EF;
  a dataset without SFT rows uses the branch's own x = 0 row). Without HPARAMS, the branch's own x = 0
  row; else the SFT curve at 0 for branch_step 0; else, when the dataset's SFT checkpoints (x > 0) are
  exactly as many as its branches (step > 0), the k-th branch by step starts from the k-th checkpoint
  by compute, which is how a grid evaluated at its branch checkpoints looks. Otherwise the error asks
  for --hparams with x_sft_ef.

HPARAMS.csv columns: dataset, sft_step, x_sft_ef and optionally outlier_tau (blank or ``auto`` =
chosen), lts_alpha (blank = no LTS, ``auto`` = chosen), eps (a number = c0 fixed, ``free`` = fitted,
blank = 0) and regime (copied to FITS.csv; Figure 3 shades it for imported curves). Dataset ``pure_rl``
with sft_step 0 = the branch_step 0 curve of the first dataset that has one.

Output FITS.csv (``artifacts.FIT_COLUMNS``): one row per branch, sorted by dataset then sft_step; u_fit
is the fitted U whether accepted or not, x_last_ef the branch's last observed RL compute, max_obs the
best observed value with the branch point (the substitute A_post) and max_post the best value of the
RL evaluations after it (Table 6's maxP_post: below P_sft when RL only lowered the branch).

By hand:

    python -m plasticity fit --curves reference/sft889k_curves.csv \
        --hparams reference/sft889k_table4.csv --out reports/reference/fits.csv
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from plasticity.analysis.artifacts import (FIT_COLUMNS, Curves, FitError, overall_curves,
                                           read_curve_rows, read_hparams, read_weights,
                                           sft_value_at, write_csv)
from plasticity.analysis.forms import PER_BENCHMARK_COLUMNS, fit_per_benchmark
from plasticity.analysis.sigmoid import SigmoidParams, n_train_points, rmse, robust_fit
from plasticity.analysis.status import (STATUSES, SUBSTITUTED, branch_status, detect_collapse,
                                        identifiable)

TAU_GRID = (2.5, 3.0, 4.0)
ALPHA_GRID = (None, 0.75, 0.85)
FIT_ERRORS = (RuntimeError, ValueError, FloatingPointError)


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
    x_last: float = float("nan")   # the branch's largest x, in the input's unit
    max_post: float = float("nan")  # the best gain of the points after the branch point (x > 0)

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


def _validation_rmse(x, y, tau, alpha, eps) -> float:
    n_train = n_train_points(len(x), 4 if eps == "free" else 3)
    if n_train >= len(x):
        return float("nan")
    fit = robust_fit(x[:n_train], y[:n_train], tau, alpha, eps)
    return rmse(y[n_train:], fit.params.predict(x[n_train:]))


def branch_scale(x: Sequence[float]) -> float:
    """s of a branch: its median positive x (1 when there is none)."""
    x = np.asarray(x, dtype=float)
    pos = x[x > 0]
    return float(np.median(pos)) if len(pos) else 1.0


def _choose(xf, yf, taus, alphas, eps):
    """(robust fit, tau, alpha, validation RMSE) of the preferred choice (module docstring): the
    choices in order of validation RMSE, the first whose full fit is identifiable, else the first
    that fits at all. Full fits run lazily, so the usual branch costs one."""
    scored = []
    for t in taus:
        for a in alphas:
            try:
                val = _validation_rmse(xf, yf, t, a, eps)
            except FIT_ERRORS:
                val = float("nan")
            scored.append((val if math.isfinite(val) else float("inf"), len(scored), t, a, val))
    first = None
    for _, _, t, a, val in sorted(scored):
        try:
            fit = robust_fit(xf, yf, t, a, eps)
        except FIT_ERRORS:
            continue
        if identifiable(fit.params.cmid, float(np.max(xf))):
            return fit, t, a, val
        first = first or (fit, t, a, val)
    return first


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
    max_post = float(np.max(y[x > 0])) if np.any(x > 0) else float("nan")
    x_last = float(np.max(x)) * scale if n else float("nan")
    peak = detect_collapse(y)
    collapsed = peak is not None
    peak_gain = float(y[peak]) if collapsed else None
    xf, yf = (x[:peak + 1], y[:peak + 1]) if collapsed else (x, y)
    taus = TAU_GRID if tau == "auto" else (tau,)
    alphas = ALPHA_GRID if alpha == "auto" else (alpha,)
    chosen = _choose(xf, yf, taus, alphas, eps) if n else None
    if chosen is None:
        return BranchFit(None, taus[0], alphas[0], float("nan"), float("nan"), n, 0, 0, max_gain,
                         collapsed, "collapsed" if collapsed else "failed", peak_gain=peak_gain,
                         scale=scale, x_last=x_last, max_post=max_post)
    fit, t, a, val = chosen
    n_train = n_train_points(len(xf), 4 if eps == "free" else 3)
    tx, ty = xf[:n_train], yf[:n_train]
    ss = float(np.sum((ty - ty.mean()) ** 2))
    r2 = 1.0 - float(np.sum((ty - fit.params.predict(tx)) ** 2)) / ss if ss > 0 else float("nan")
    status = "collapsed" if collapsed else branch_status(fit.params, x, y, p_sft, val)
    pr = fit.params
    params = SigmoidParams(u=pr.u, cmid=pr.cmid * scale, b=pr.b, c0=pr.c0)
    return BranchFit(params, t, a, val, r2, n, fit.n_outliers, fit.n_trimmed, max_gain,
                     collapsed, status, peak_gain=peak_gain, kept=fit.kept, scale=scale,
                     x_last=x_last, max_post=max_post)


def _branch_row(dataset, step, x_sft, p_sft, fit: BranchFit, eps, given: bool,
                regime: str = "") -> dict:
    p = fit.params
    ok = p is not None
    return {
        "dataset": dataset, "sft_step": step, "x_sft_ef": x_sft, "p_sft": p_sft,
        "a_post": p_sft + fit.pl_rl, "pl_rl": fit.pl_rl,
        "cmid_ef": p.cmid if ok else float("nan"), "b": p.b if ok else float("nan"),
        "eps": p.c0 if ok else (float("nan") if eps == "free" else float(eps)),
        "eps_mode": "free" if eps == "free" else "fixed",
        "rmse_val": fit.rmse_val, "r2_train": fit.r2_train, "n_points": fit.n_points,
        "n_outliers": fit.n_outliers, "n_trimmed": fit.n_trimmed,
        "tau": "none" if fit.tau is None else fit.tau,
        "alpha": "none" if fit.alpha is None else fit.alpha,
        "hparams": "given" if given else "auto", "max_obs": p_sft + fit.max_gain,
        "x_last_ef": fit.x_last, "collapsed": fit.collapsed, "status": fit.status,
        "u_fit": fit.u_fit, "regime": regime, "max_post": p_sft + fit.max_post,
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


def derived_branch_point(curves: Curves, ds: str, step: int) -> tuple[float, float]:
    """(x_sft, P_sft) of a branch without HPARAMS (module docstring); raises FitError otherwise."""
    pts = curves.rl[(ds, step)]
    sft = curves.sft.get(ds, [])
    zero = [y for x, y in pts if x == 0]
    if zero:
        return float("nan"), zero[0]
    if step == 0 and sft:
        return 0.0, sft_value_at(sft, 0.0, f"dataset {ds} branch 0")
    checkpoints = sorted(x for x, _ in sft if x > 0)
    steps = sorted(b for d, b in curves.rl if d == ds and b > 0)
    if step > 0 and checkpoints and len(checkpoints) == len(steps):
        x_sft = checkpoints[steps.index(step)]
        return x_sft, sft_value_at(sft, x_sft, f"dataset {ds} branch {step}")
    raise FitError(f"dataset {ds} branch_step {step}: no x_ef = 0 row to read P_sft from, and the "
                   f"{len(checkpoints)} SFT checkpoint(s) of {ds} do not pair one-to-one with its "
                   f"{len(steps)} branch(es); give --hparams with x_sft_ef")


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
                         h["alpha"], h["eps"], True, h.get("regime", "")))
    else:
        for (ds, step), pts in sorted(curves.rl.items()):
            x_sft, p_sft = derived_branch_point(curves, ds, step)
            jobs.append((ds, step, x_sft, p_sft, pts, tau, alpha, eps, False, ""))
    rows = []
    for ds, step, x_sft, p_sft, pts, t, a, e, given, regime in jobs:
        xs = [0.0] + [x for x, _ in pts if x > 0]
        ys = [0.0] + [y - p_sft for x, y in pts if x > 0]
        fit = fit_branch(xs, ys, t, a, e, p_sft=p_sft)
        rows.append(_branch_row(ds, step, x_sft, p_sft, fit,
                                e, given and t != "auto" and a != "auto", regime))
    rows.sort(key=lambda r: (r["dataset"], r["sft_step"]))
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
            write_csv(fit_per_benchmark(curves, rows), PER_BENCHMARK_COLUMNS, args.per_benchmark)
    except (FitError, ValueError) as exc:
        print(f"fit: error: {exc}", file=sys.stderr)
        return 2
    write_csv(rows, FIT_COLUMNS, args.out)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    print(f"fit: {len(rows)} branch(es) -> {args.out}; "
          + ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
