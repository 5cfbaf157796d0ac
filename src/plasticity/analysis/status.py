"""Branch status rules: which fitted ceiling a branch's points support, and what is reported otherwise.

Library (``fit.py`` applies it per branch; tables, figures and correlations read the statuses).
y is the gain over P_sft at RL compute x, the branch point (0, 0) included; U, Cmid and B are the
fitted sigmoid's (``sigmoid.py``). The rules are symmetric in the sign of the gain: a branch rises
(a point more than ``FLAT_GAIN`` above its start), falls (its last k evaluations all below its start,
on average more than ``FLAT_GAIN`` below) or neither. Checked in this order:

- ``collapsed``: a sustained fall. The last k = max(``COLLAPSE_MIN_POINTS``, ceil(N/5)) points all lie
  below the branch point and their mean more than ``FLAT_GAIN`` below it, whether or not a peak came
  first. One low point, a dip that recovers, or trailing points within noise of P_sft are not a
  collapse. A_post = the best
  value observed before the fall (the start itself when RL only lowered it), flagged: not a fitted
  asymptote.
- ``failed``: no fit (too few points, optimiser failure).
- ``flat``: neither rise nor fall: no point after the branch point more than ``FLAT_GAIN`` above it, or
  the fit does not rise (U <= 0). A_post = the best observed value: RL did not move the branch, and
  that level is the ceiling the data show.
- ``bound``: a fitted parameter at a bound of the fit (U at +-``U_BOUND``, B at ``B_MIN`` or ``B_MAX``,
  Cmid at its lower bound): the fit did not identify it (B at ``B_MAX`` is a step between two
  evaluations, B at ``B_MIN`` a line, Cmid at its bound a jump at the first point). A_post = the best
  observed value.
- ``implausible``: P_sft + U outside [0, 100] %.
- ``extrapolated``: the identifiability rule. A ceiling is identifiable when the fitted midpoint lies
  within the observed compute, Cmid <= x_last (the branch's largest x): the points then show the rise
  and the bend towards the plateau. With Cmid beyond the last point the data only show the lower half of
  the sigmoid, and U is a guess about compute never spent (on the study's curves such fits and the
  published ones coincide over the data and part only beyond it). A_post = the best observed value;
  the fitted U, Cmid and B stay in FITS.csv and Table 4 shows Cmid so the reason is visible.
- ``poor_fit``: the validation RMSE (the fit on the first 71% of the points, scored on the rest)
  exceeds ``RMSE_VAL_MAX`` accuracy points: the sigmoid does not predict the branch's later points.
  A_post = the best observed value.
- ``ok``: A_post = P_sft + U.

One rule for every branch, and nothing is tuned to a branch. ``IDENTIFIABLE`` are the statuses whose
A_post Table 5 and Figure 8 may use (``ok`` and ``flat``); every other status is flagged, left out of
them and counted in their notes. ``SUBSTITUTED`` are those whose A_post is the best observed value.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from plasticity.analysis.sigmoid import B_MAX, B_MIN, CMID_REL_LO, U_BOUND, SigmoidParams

FLAT_GAIN = 0.5              # accuracy points: a change at or below this is not "clearly" a rise or a fall
COLLAPSE_MIN_POINTS = 3      # a fall must hold for at least this many trailing evaluations
# Accuracy points. A fit whose validation RMSE exceeds this does not predict the branch: twice the
# largest standard error of one miniature evaluation (about 2.5 points over 250 problems) and five
# times the study's (about 1 point over 2,157 problems); the study's own curves fit within 2.3
# except Uniform102K step 1800 (14.4).
RMSE_VAL_MAX = 5.0

SUBSTITUTED = ("failed", "flat", "bound", "implausible", "extrapolated", "poor_fit")
IDENTIFIABLE = ("ok", "flat")
FIT_DRAWN = ("ok", "collapsed", "bound", "extrapolated", "poor_fit")   # a fitted curve Figure 3 draws
STATUSES = ("ok", "flat", "extrapolated", "bound", "poor_fit", "collapsed", "implausible", "failed")


def detect_collapse(y: Sequence[float]) -> int | None:
    """Index of the best point before a sustained fall (the last k points all below the branch point,
    y < 0, with mean below -FLAT_GAIN), or None. The branch point (index 0) counts: a branch that only
    falls peaks there."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    k = max(COLLAPSE_MIN_POINTS, math.ceil(n / 5))
    if n < k + 2:
        return None
    tail = y[n - k:]
    if np.all(tail < 0.0) and float(np.mean(tail)) < -FLAT_GAIN:
        return int(np.argmax(y[:n - k]))
    return None


def at_bound(params: SigmoidParams, x: np.ndarray) -> bool:
    """Whether a fitted parameter sits at a bound of ``sigmoid.fit_sigmoid``: U at +-U_BOUND, B at
    B_MIN or B_MAX (within a relative 1e-4), Cmid at its lower bound (CMID_REL_LO times the median positive x of the points
    fitted, which outlier rejection may thin: any Cmid below ten times the bound counts)."""
    pos = x[x > 0]
    cmid_lo = 10 * CMID_REL_LO * float(np.median(pos)) if len(pos) else 0.0
    near = 1e-4       # relative: the optimiser stops within this of a bound it runs into
    return (abs(params.u) >= U_BOUND * (1 - near) or params.b >= B_MAX * (1 - near)
            or params.b <= B_MIN * (1 + near) or params.cmid <= cmid_lo)


def identifiable(cmid: float, x_last: float) -> bool:
    """The identifiability rule: the fitted midpoint lies within the observed compute."""
    return math.isfinite(cmid) and cmid <= x_last * (1 + 1e-9)


def branch_status(params: SigmoidParams, x: np.ndarray, y: np.ndarray,
                  p_sft: float | None = None, rmse_val: float = float("nan")) -> str:
    """``flat``, ``bound``, ``implausible``, ``extrapolated``, ``poor_fit`` or ``ok`` for a fitted,
    non-collapsed branch (module docstring); x and y in the unit the parameters were fitted in."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    after = y[x > 0]
    if len(after) == 0 or float(np.max(after)) <= FLAT_GAIN or params.u <= 0.0:
        return "flat"
    if at_bound(params, x):
        return "bound"
    if p_sft is not None and not 0.0 <= p_sft + params.u <= 100.0:
        return "implausible"
    if not identifiable(params.cmid, float(np.max(x))):
        return "extrapolated"
    if math.isfinite(rmse_val) and rmse_val > RMSE_VAL_MAX:
        return "poor_fit"
    return "ok"


# what each status means and what A_post reports under it (Table 4's notes, with the thresholds)
STATUS_NOTES = {
    "ok": "the fitted ceiling P_sft + U: a fit that rises, with its midpoint Cmid within the observed "
          "compute, no parameter at a bound and a validation RMSE within the threshold",
    "flat": "neither a rise nor a fall: no evaluation more than {flat:g} points above the start and no "
            "sustained fall; A_post = the best observed value",
    "collapsed": "a sustained fall: the last {k}+ evaluations all below the start and on average more "
                 "than {flat:g} points below it (whether or not a peak came first); A_post = the best value "
                 "before the fall, flagged",
    "extrapolated": "NOT identifiable: the fitted midpoint Cmid lies beyond the last observed compute; "
                    "A_post = the best observed value (the fit's ceiling is u_fit in FITS.csv)",
    "bound": "a fitted parameter at a bound of the fit (U, B or Cmid): not identified; A_post = the best "
             "observed value",
    "poor_fit": "validation RMSE above {rmse:g} points (the fit on the first 71% of the points misses "
                "the rest); A_post = the best observed value",
    "implausible": "the fitted ceiling lies outside [0, 100]; A_post = the best observed value",
    "failed": "no fit; A_post = the best observed value",
}


def status_notes() -> str:
    """Every status and what A_post reports under it, with the thresholds (``status.py``)."""
    values = {"flat": FLAT_GAIN, "k": COLLAPSE_MIN_POINTS, "rmse": RMSE_VAL_MAX}
    return "; ".join(f"`{name}`: {text.format(**values)}" for name, text in STATUS_NOTES.items())


def flagged_counts(fits: list[dict]) -> tuple[int, int, dict[str, int]]:
    """(flagged branches, grid branches, count per flagged status) of the SFT-then-RL grid: the branches
    whose A_post Table 5 and Figure 8 leave out (every status but ``status.IDENTIFIABLE``)."""
    grid = [f for f in fits if f["dataset"] != "pure_rl"]
    counts = {s: sum(f.get("status", "ok") == s for f in grid) for s in STATUSES if s not in IDENTIFIABLE}
    counts = {s: n for s, n in counts.items() if n}
    return sum(counts.values()), len(grid), counts


def flagged_note(fits: list[dict]) -> str:
    n, total, counts = flagged_counts(fits)
    detail = ", ".join(f"{s} {c}" for s, c in counts.items())
    return f"{n} of {total} branches flagged and left out" + (f" ({detail})" if n else "")
