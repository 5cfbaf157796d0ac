"""The report's two reading aids beside the study's figures (library; ``publish.py`` draws them from
the CSVs it writes, through ``drawn.save_png`` so each PNG carries its data):

- ``branch_curves_figure``: one panel per start (an SFT checkpoint or the base), each RL branch's
  overall accuracy against RL step with +-1 standard error bars (over problems) and its start as a
  dotted line: what a gain of a few points is worth against the noise of one evaluation;
- ``val_loss_figure``: each SFT set's validation loss against step, every checkpoint marked in the
  colour of its regime.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from plasticity.analysis.drawn import save_png
from plasticity.analysis.figure3 import REGIME_COLORS


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def branch_curves_figure(branch_csv: str | Path, out: str | Path) -> dict:
    from plasticity.analysis.figures import METHOD_COLORS, METHOD_MARKERS, _method_title, _plt

    rows = [r for r in _read(Path(branch_csv)) if r["benchmark"] == "overall"]
    starts: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for r in rows:
        starts.setdefault((r["dataset"], int(r["sft_step"])), {}).setdefault(r["method"], []).append(r)
    keys = sorted(starts, key=lambda k: (k[0] != "pure_rl", k))
    if not keys:
        raise ValueError(f"{branch_csv}: no overall rows")
    plt = _plt()
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, (ds, step) in zip(axes.flat, keys):
        for method, pts in sorted(starts[(ds, step)].items(), key=lambda kv: list(METHOD_COLORS).index(kv[0])
                                  if kv[0] in METHOD_COLORS else 99):
            pts = sorted(pts, key=lambda r: int(r["rl_step"]))
            x = [int(r["rl_step"]) for r in pts]
            y = [float(r["accuracy"]) for r in pts]
            se = [float(r["stderr"]) for r in pts]
            color = METHOD_COLORS.get(method, "gray")
            ax.errorbar(x, y, yerr=se, marker=METHOD_MARKERS.get(method, "o"), ms=3, lw=1.0, capsize=2,
                        color=color, label=_method_title(method), gid=f"branch {ds}@{step} {method}")
            if x and x[0] == 0:
                ax.axhline(y[0], color=color, ls=":", lw=0.8)
        switch = pts[0]["switch"]
        ax.set_title("pure RL from the base" if ds == "pure_rl" else
                     f"{ds} @ {step}" + (f" ({switch})" if switch != str(step) else ""), fontsize=9)
        ax.set_xlabel("RL step")
        ax.set_ylabel("overall accuracy (%), ±1 SE")
        ax.legend(fontsize=6, ncols=2)
    fig.suptitle("RL branches: overall accuracy per evaluation, ±1 standard error over problems; "
                 "dotted: the start", fontsize=10)
    fig.tight_layout()
    return save_png(fig, out)


def val_loss_figure(val_csv: str | Path, out: str | Path) -> dict:
    from matplotlib.patches import Patch

    from plasticity.analysis.figures import _plt

    rows = _read(Path(val_csv))
    sets: dict[str, list[dict]] = {}
    for r in rows:
        sets.setdefault(r["dataset"], []).append(r)
    if not sets:
        raise ValueError(f"{val_csv}: no rows")
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    values = []
    for ds, pts in sorted(sets.items()):
        pts = sorted(pts, key=lambda p: int(p["step"]))        # step 0: the base model, before SFT
        x = [int(p["step"]) for p in pts]
        y = [float(p["val_loss"]) for p in pts]
        values += y
        line, = ax.plot(x, y, "-", lw=1.2, label=ds, gid=f"val_loss {ds}")
        ckpt = [(a, b, p["regime"]) for a, b, p in zip(x, y, pts) if a > 0]
        ax.scatter([a for a, _, _ in ckpt], [b for _, b, _ in ckpt], s=70, zorder=3, linewidths=1.5,
                   c=[REGIME_COLORS[r] for *_, r in ckpt], edgecolors=line.get_color(), gid=f"regimes {ds}")
    handles, _ = ax.get_legend_handles_labels()
    present = dict.fromkeys(p["regime"] for p in rows if int(p["step"]) > 0)
    handles += [Patch(facecolor=REGIME_COLORS[r], edgecolor="gray", label=f"{r.capitalize()} regime")
                for r in present]
    log = max(values) > 10 * min(values)
    ax.set_yscale("log" if log else "linear")
    ax.set_xlabel("SFT step (0: the base model)")
    ax.set_ylabel("validation loss" + (" (log)" if log else ""))
    ax.set_title("SFT validation loss per set; marker colour: the checkpoint's regime", fontsize=9)
    ax.legend(handles=handles, fontsize=7)
    fig.tight_layout()
    return save_png(fig, out)
