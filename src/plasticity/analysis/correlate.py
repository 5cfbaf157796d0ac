"""Minimum SFT validation loss against the best ceiling per SFT set (PAPER 1.6, Table 5, Figure 8).

The study's data-selection indicator: across SFT sets, the lower the minimum validation loss, the
higher the best A_post over that set's branches (Qwen2.5-7B: Pearson -0.92, Spearman -1.00).

Library only (Table 5 and Figure 8 call it): ``best_ceilings(fits)`` picks each dataset's best A_post
from FITS rows (pure RL excluded), ``loss_ceiling_correlation(min_losses, ceilings)`` pairs them by
dataset name and returns Pearson r, Spearman rho and the least-squares line.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as Spearman's rho needs."""
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v), dtype=float)
    ranks[order] = np.arange(len(v), dtype=float)
    for value in np.unique(v):
        tie = v == value
        ranks[tie] = ranks[tie].mean()
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need two equally long series of >= 2 values, got {len(x)} and {len(y)}")
    sx, sy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.sum(sx * sx) * np.sum(sy * sy)))
    return float(np.sum(sx * sy) / den) if den > 0 else float("nan")


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(_ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float)))


def best_ceilings(fits: Sequence[Mapping]) -> dict[str, dict]:
    """Per dataset the FITS row with the highest finite A_post (pure_rl, failed, bound and implausible
    fits excluded). A `flat` branch counts with its best observed value: RL did not move it, so the
    level it holds is its ceiling."""
    best: dict[str, dict] = {}
    for row in fits:
        a = row.get("a_post")
        if row["dataset"] == "pure_rl" or a is None or not math.isfinite(float(a)):
            continue
        if row.get("status", "ok") not in ("ok", "collapsed", "flat"):
            continue          # failed, bound or implausible fits say nothing about the ceiling
        cur = best.get(row["dataset"])
        if cur is None or float(a) > float(cur["a_post"]):
            best[row["dataset"]] = dict(row)
    return best


def loss_ceiling_correlation(min_losses: Mapping[str, float], ceilings: Mapping[str, float]) -> dict:
    """Pearson / Spearman of min validation loss vs best A_post over the datasets present in both."""
    names = sorted(set(min_losses) & set(ceilings))
    if len(names) < 2:
        raise ValueError(f"need >= 2 datasets with both a minimum loss and a ceiling; have {names} "
                         f"(losses for {sorted(min_losses)}, ceilings for {sorted(ceilings)})")
    x = [float(min_losses[n]) for n in names]
    y = [float(ceilings[n]) for n in names]
    slope, intercept = (np.polyfit(x, y, 1) if len(set(x)) > 1 else (float("nan"), float("nan")))
    return {"datasets": names, "min_loss": x, "a_post": y, "pearson": pearson(x, y),
            "spearman": spearman(x, y), "slope": float(slope), "intercept": float(intercept)}
