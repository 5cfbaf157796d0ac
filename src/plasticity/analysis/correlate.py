"""Minimum SFT validation loss against the best identifiable ceiling per SFT set (PAPER 1.6, Table 5,
Figure 8).

The study's data-selection indicator: across SFT sets, the lower the minimum validation loss, the
higher the best A_post over that set's branches (Qwen2.5-7B: Pearson -0.92, Spearman -1.00).

Library only (Table 5 and Figure 8 call it): ``best_ceilings(fits)`` picks each SFT set's maximum
A_post over its branches with an identifiable ceiling (``status.IDENTIFIABLE``: a fitted ceiling whose
midpoint lies within the observed compute, or a flat branch's level; pure RL excluded), and
``loss_ceiling_correlation(min_losses, ceilings)`` pairs them by dataset name and returns Pearson r and
Spearman rho (scipy.stats) and the least-squares line. Fewer than two sets with both (a study with one
SFT set, or whose fits were all flagged) give NaN coefficients and line, not an error: Table 5 and
Figure 8 then say why there is no correlation instead of failing the report.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from plasticity.analysis.status import IDENTIFIABLE


def best_ceilings(fits) -> dict[str, dict]:
    """Per SFT set the FITS row with the highest finite A_post among its identifiable branches.

    Collapsed branches (an observed peak, not an asymptote), extrapolated fits (the midpoint lies
    beyond the data) and failed / bound / implausible fits say nothing reliable about the ceiling."""
    best: dict[str, dict] = {}
    for row in fits:
        a = row.get("a_post")
        if row["dataset"] == "pure_rl" or a is None or not math.isfinite(float(a)):
            continue
        if row.get("status", "ok") not in IDENTIFIABLE:
            continue
        cur = best.get(row["dataset"])
        if cur is None or float(a) > float(cur["a_post"]):
            best[row["dataset"]] = dict(row)
    return best


def loss_ceiling_correlation(min_losses: Mapping[str, float], ceilings: Mapping[str, float]) -> dict:
    """Pearson / Spearman of min validation loss vs best A_post over the datasets present in both.

    Either coefficient is NaN when one series is constant (scipy warns and returns NaN there) or fewer
    than two datasets are present in both (``too_few`` is then True)."""
    import warnings

    from scipy import stats

    names = sorted(set(min_losses) & set(ceilings))
    x = [float(min_losses[n]) for n in names]
    y = [float(ceilings[n]) for n in names]
    constant = len(set(x)) < 2 or len(set(y)) < 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # constant input: NaN is the answer
        pearson = float("nan") if constant else stats.pearsonr(x, y)[0]
        spearman = float("nan") if constant else stats.spearmanr(x, y)[0]
    slope, intercept = np.polyfit(x, y, 1) if len(set(x)) > 1 else (float("nan"), float("nan"))
    return {"datasets": names, "min_loss": x, "a_post": y, "pearson": float(pearson),
            "spearman": float(spearman), "slope": float(slope), "intercept": float(intercept),
            "too_few": len(names) < 2}


def correlation_note(res: dict) -> str:
    """Table 5's and Figure 8's statement of the correlation (or of why there is none)."""
    if res["too_few"]:
        return (f"No correlation: it needs two or more SFT sets with both a minimum loss and an "
                f"identifiable ceiling, and {len(res['datasets'])} here")
    return f"Pearson r = {res['pearson']:.2f}, Spearman ρ = {res['spearman']:.2f}"
