"""Branch status rules: which fitted ceiling a branch's points support, and what is reported otherwise.

Library (``fit.py`` applies it per branch; tables, figures and correlations read the statuses).
y is the gain over P_sft at RL compute x, the branch point (0, 0) included; U, Cmid and B are the
fitted sigmoid's (``sigmoid.py``). Checked in this order:

- ``collapsed``: a sustained fall. The last k = max(``COLLAPSE_MIN_POINTS``, ceil(N/5)) points all lie
  below the branch point (gain < 0) after a peak more than ``FLAT_GAIN`` above it. One low point, or a
  dip that stays above P_sft, is noise or a slow decline, not a collapse. A_post = the observed peak,
  flagged; it is not a fitted asymptote, so it is not an identifiable ceiling.
- ``failed``: no fit (too few points, optimiser failure).
- ``flat``: no point after the branch point more than ``FLAT_GAIN`` above it, or the fit does not rise
  (U <= 0). A_post = the best observed value: RL did not move the branch, and that level is the ceiling
  the data show.
- ``bound``: U at its bound (the asymptote is not identified at all).
- ``implausible``: P_sft + U outside [0, 100] %.
- ``extrapolated``: the identifiability rule. A ceiling is identifiable when the fitted midpoint lies
  within the observed compute, Cmid <= x_last (the branch's largest x): the points then show the rise
  and the bend towards the plateau. With Cmid beyond the last point the data only show the lower half of
  the sigmoid, and U is a guess about compute never spent (on the study's curves such fits and the
  published ones coincide over the data and part only beyond it). A_post = the best observed value;
  the fitted U, Cmid and B stay in FITS.csv and Table 4 shows Cmid so the reason is visible.
- ``b_bound``: B at its upper bound ``sigmoid.B_MAX``: the rise is a step between two evaluations, so B
  is a bound rather than an estimate; the plateau, and so A_post = P_sft + U, is still identified.
- ``ok``: A_post = P_sft + U.

One rule for every branch, and nothing is tuned to a branch. ``IDENTIFIABLE`` are the statuses whose
A_post Table 5 and Figure 8 may use; ``SUBSTITUTED`` those whose A_post is the best observed value.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from plasticity.analysis.sigmoid import B_MAX, U_BOUND, SigmoidParams

FLAT_GAIN = 0.5              # accuracy points: a gain at or below this is not "clearly above zero"
COLLAPSE_MIN_POINTS = 3      # a fall must hold for at least this many trailing evaluations

SUBSTITUTED = ("failed", "flat", "bound", "implausible", "extrapolated")
IDENTIFIABLE = ("ok", "b_bound", "flat")
FIT_DRAWN = ("ok", "b_bound", "collapsed", "extrapolated")   # statuses whose fitted curve Figure 3 draws
STATUSES = ("ok", "b_bound", "extrapolated", "collapsed", "flat", "bound", "implausible", "failed")


def detect_collapse(y: Sequence[float]) -> int | None:
    """Index of the peak before a sustained fall below the branch point (y < 0), or None."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    k = max(COLLAPSE_MIN_POINTS, math.ceil(n / 5))
    if n < k + 2:
        return None
    peak = int(np.argmax(y))
    if y[peak] > FLAT_GAIN and peak < n - k and np.all(y[n - k:] < 0.0):
        return peak
    return None


def identifiable(cmid: float, x_last: float) -> bool:
    """The identifiability rule: the fitted midpoint lies within the observed compute."""
    return math.isfinite(cmid) and cmid <= x_last * (1 + 1e-9)


def branch_status(params: SigmoidParams, x: np.ndarray, y: np.ndarray,
                  p_sft: float | None = None) -> str:
    """``flat``, ``bound``, ``implausible``, ``extrapolated``, ``b_bound`` or ``ok`` for a fitted,
    non-collapsed branch (module docstring); x and y in the unit the parameters were fitted in."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    after = y[x > 0]
    if len(after) == 0 or float(np.max(after)) <= FLAT_GAIN or params.u <= 0.0:
        return "flat"
    if params.u >= U_BOUND - 1e-6:
        return "bound"
    if p_sft is not None and not 0.0 <= p_sft + params.u <= 100.0:
        return "implausible"
    if not identifiable(params.cmid, float(np.max(x))):
        return "extrapolated"
    if params.b >= B_MAX - 1e-6:
        return "b_bound"
    return "ok"
