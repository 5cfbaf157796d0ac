"""Figure 3 of the study (SFT-then-RL scaling, PAPER 5.3): one panel per SFT set (library; ``figures.main``
renders it).

Each panel draws, on a log compute axis x_sft + x_rl, the set's SFT curve (black), every RL branch
from its checkpoint (``figure3_layout``): its evaluations as points, its fitted sigmoid over its own
compute and its A_post as a horizontal line. One style key for the title and the legend alike:

- points: the branch's evaluations (a point below the axis is drawn on the lower edge as a triangle);
- solid curve / dashed A_post: a fit whose ceiling Table 5 and Figure 8 may use (``status.IDENTIFIABLE``);
- dotted curve / dotted A_post: a flagged branch (``status.py``: extrapolated, bound, poor fit,
  collapsed...), whose A_post is the best observed value;
- colour by SFT step (its rank among the panel's checkpoints, on one sequential colour map), the step
  written at the end of each branch, pure RL in grey;
- background: the regime of each SFT checkpoint, from the validation loss or the fits' imported
  ``regime`` column; where a panel has neither, its checkpoints' span is hatched grey, "regime not
  known", so every panel says what it knows.
"""
from __future__ import annotations

import math

REGIME_COLORS = {"adaptive": "#fde2c8", "stable": "#d4edda", "mild": "#fff3bf", "severe": "#f8d0d0"}
UNKNOWN_REGIME = "#f1f1f1"
UNKNOWN_HATCH, UNKNOWN_EDGE = "/", "#dcdcdc"
PURE_RL_COLOR = "#707070"
TITLE = ("Figure 3: SFT-then-RL scaling per SFT set\n(points: evaluations; solid curve, dashed line: "
         "fitted sigmoid and A_post of an identifiable ceiling; dotted: flagged, A_post = best observed)")


def _ef_per_step(fits: list[dict], ds: str) -> float | None:
    """SFT compute per step of DATASET, from the fits' x_sft_ef / sft_step (None when unknown)."""
    for f in fits:
        x = f.get("x_sft_ef", math.nan)
        if f["dataset"] == ds and f["sft_step"] > 0 and math.isfinite(x) and x > 0:
            return x / f["sft_step"]
    return None


def _spans(centres: list[float], labels: list[str], right: float) -> list[tuple[float, float, str]]:
    """Regime spans on a log axis: each checkpoint's regime from the geometric midpoint with its left
    neighbour to the one with its right neighbour; the first from 0, the last to ``right``. A blank
    label is a checkpoint whose regime is not known (drawn hatched)."""
    spans = []
    for i, lab in enumerate(labels):
        lo = 0.0 if i == 0 else math.sqrt(centres[i - 1] * centres[i])
        hi = max(right, centres[i]) if i == len(labels) - 1 else math.sqrt(centres[i] * centres[i + 1])
        spans.append((lo, hi, lab))
    return spans


def figure3_layout(curves, fits: list[dict], ds: str, val_losses: dict | None = None) -> dict:
    """What one Figure 3 panel draws, in data coordinates (``figure3`` only renders it).

    - ``branches``: per RL branch of DATASET (plus the pure-RL branch, drawn from x = 0, when DATASET
      has no step-0 branch of its own): ``x`` = x_sft + x_rl of its points (x_sft = the fit's x_sft_ef,
      else sft_step times the SFT compute per step), ``y``, the fit row, ``status``, ``curve`` (the
      fitted sigmoid over the branch's own compute, for the statuses in ``status.FIT_DRAWN``; None
      otherwise) and ``a_post`` (the dashed ceiling line; NaN without a fit).
    - ``ylim``: from the plotted data (SFT curve, RL points and the A_post lines), 5% margin (at least
      0.5 points); fitted curves never widen it, and a few points far below the rest (a collapse)
      are drawn on the lower edge instead of stretching it.
    - ``xlim``: the positive plotted x, a quarter decade of margin each side (log axis).
    - ``regimes``: (lo, hi, regime) spans of the SFT checkpoints' regimes in compute: from the
      validation loss when ``val_losses`` has DATASET (steps times the SFT compute per step), else from
      the fits' imported ``regime`` column at their x_sft (blank where a checkpoint has none).
    """
    import numpy as np

    from plasticity.analysis.sigmoid import sigmoid
    from plasticity.analysis.status import FIT_DRAWN

    by_branch = {(f["dataset"], f["sft_step"]): f for f in fits}
    ef_step = _ef_per_step(fits, ds)
    keys = [(ds, step) for step in sorted(step for d, step in curves.rl if d == ds)]
    if (ds, 0) not in curves.rl:
        owner = next((d for d, st in sorted(curves.rl) if st == 0), None)
        if owner is not None:
            keys.insert(0, (owner, 0))
    branches = []
    for owner, step in keys:
        fit = by_branch.get((owner, step)) or (by_branch.get(("pure_rl", 0)) if step == 0 else None)
        if step == 0:
            x0 = 0.0
        elif fit and math.isfinite(fit.get("x_sft_ef", math.nan)):
            x0 = fit["x_sft_ef"]
        else:
            x0 = step * ef_step if ef_step else 0.0
        pts = curves.rl[(owner, step)]
        status = fit.get("status", "ok") if fit else "no fit"
        b = {"dataset": "pure_rl" if step == 0 else owner, "step": step, "x0": x0,
             "x": [x0 + x for x, _ in pts], "y": [y for _, y in pts], "fit": fit, "status": status,
             "curve": None, "a_post": fit.get("a_post", math.nan) if fit else math.nan}
        u = fit.get("u_fit", math.nan) if fit else math.nan
        if status == "collapsed" or not math.isfinite(u):
            u = (fit["a_post"] - fit["p_sft"]) if fit else math.nan
        if fit and status in FIT_DRAWN and all(
                math.isfinite(v) for v in (u, fit.get("b", math.nan), fit.get("cmid_ef", math.nan))):
            xmax = max(x for x, _ in pts)
            xmin = min((x for x, _ in pts if x > 0), default=xmax)
            xr = np.geomspace(xmin / 2, xmax, 200) if xmax > 0 else np.array([0.0])
            eps = fit.get("eps", 0.0)
            yr = fit["p_sft"] + sigmoid(xr, u, fit["cmid_ef"], fit["b"],
                                        eps if math.isfinite(eps) else 0.0)
            b["curve"] = (x0 + xr, yr)
        branches.append(b)
    sft = list(curves.sft.get(ds, []))
    xs = [x for x, _ in sft] + [x for b in branches for x in b["x"]]
    ys = ([y for _, y in sft] + [y for b in branches for y in b["y"]]
          + [b["a_post"] for b in branches if math.isfinite(b["a_post"])])
    if not ys:
        raise ValueError(f"figure3: no points for dataset {ds!r}")
    # a few collapse or glitch points of the SFT-then-RL branches far below the rest would flatten
    # every curve: their lower limit is the 2nd percentile minus half the 2-98% range (points under it
    # are drawn on the edge); the SFT curve and pure RL always fit
    grid_ys = [y for b in branches if b["step"] > 0 for y in b["y"]] or ys
    q_lo, q_hi = np.percentile(grid_ys, [2, 98])
    whole = [y for _, y in sft] + [y for b in branches if b["step"] == 0 for y in b["y"]]
    lo = max(min(ys), min(whole + [q_lo - 0.5 * (q_hi - q_lo)]))
    hi = max(ys)
    margin = max(0.05 * (hi - lo), 0.5)
    pos = [x for x in xs if x > 0] or [1.0]
    xlim = (min(pos) / 10 ** 0.25, max(pos) * 10 ** 0.25)
    regimes = []
    if val_losses and ds in val_losses and ef_step:
        from plasticity.analysis.regimes import label_regimes

        steps, losses = val_losses[ds]
        ckpt = [(st * ef_step, lab) for st, lab in zip(steps, label_regimes(steps, losses)) if st > 0]
        regimes = _spans([c for c, _ in ckpt], [lab for _, lab in ckpt], xlim[1])
    else:
        ckpt = sorted((f["x_sft_ef"], (f.get("regime") or "").lower()) for f in fits
                      if f["dataset"] == ds and f["sft_step"] > 0
                      and math.isfinite(f.get("x_sft_ef", math.nan)))
        if ckpt:
            regimes = _spans([c for c, _ in ckpt], [lab for _, lab in ckpt], xlim[1])
    return {"sft": sft, "branches": branches, "ylim": (lo - margin, hi + margin), "xlim": xlim,
            "regimes": regimes, "ef_per_step": ef_step}


def _label(ds: str, step: int) -> str:
    return "pure RL" if step == 0 else f"{ds} @ {step}"


def branch_colors(branches: list[dict]) -> dict[tuple[str, int], str]:
    """Colour per branch: SFT steps by rank on the turbo map (distinct hues for a dozen branches, in
    step order), pure RL grey."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    steps = sorted({b["step"] for b in branches if b["step"] > 0})
    cmap = colormaps["turbo"]
    rank = {s: (0.08 + 0.84 * i / max(1, len(steps) - 1)) for i, s in enumerate(steps)}
    return {(b["dataset"], b["step"]): PURE_RL_COLOR if b["step"] == 0 else to_hex(cmap(rank[b["step"]]))
            for b in branches}


def _status_note(status: str) -> str:
    from plasticity.analysis.status import IDENTIFIABLE

    return "" if status in IDENTIFIABLE else f" ({status}: best obs.)"


def draw_panel(ax, lay: dict, ds: str) -> None:
    """One panel of Figure 3 from its layout (module docstring for the style key)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from plasticity.analysis.status import IDENTIFIABLE

    handles = []
    regimes = lay["regimes"] or [(min([b["x0"] for b in lay["branches"] if b["step"] > 0]
                                      or [lay["xlim"][0]]), lay["xlim"][1], "")]
    for lab in dict.fromkeys(lab for *_, lab in regimes):
        handles.append(Patch(color=REGIME_COLORS[lab], label=f"{lab.capitalize()} regime") if lab else
                       Patch(facecolor=UNKNOWN_REGIME, hatch=UNKNOWN_HATCH, edgecolor=UNKNOWN_EDGE,
                             label="regime not known (no validation loss)"))
    for r_lo, r_hi, lab in regimes:
        lo = max(r_lo, lay["xlim"][0])
        if lab:
            ax.axvspan(lo, r_hi, color=REGIME_COLORS[lab], alpha=0.6, lw=0, gid=f"regime {lab}")
        else:
            ax.axvspan(lo, r_hi, facecolor=UNKNOWN_REGIME, hatch=UNKNOWN_HATCH, edgecolor=UNKNOWN_EDGE,
                       lw=0, gid="regime unknown")
    sft = [(x, y) for x, y in lay["sft"] if x > 0]
    if sft:
        ax.plot([x for x, _ in sft], [y for _, y in sft], "k-", lw=1.4, gid=f"sft {ds}")
        handles.append(Line2D([], [], color="k", lw=1.4, label=f"{ds} SFT"))
    handles += [Line2D([], [], color="gray", marker="o", ms=3, ls="", label="points: evaluations"),
                Line2D([], [], color="gray", lw=1.3, ls="-", label="solid: fitted sigmoid (identifiable)"),
                Line2D([], [], color="gray", lw=0.8, ls="--", label="dashed: A_post (identifiable)"),
                Line2D([], [], color="gray", lw=1.0, ls=":", label="dotted: flagged fit / A_post")]
    colors = branch_colors(lay["branches"])
    low = lay["ylim"][0]
    for rank, b in enumerate(lay["branches"]):
        key = f"{b['dataset']}@{b['step']}"
        color = colors[(b["dataset"], b["step"])]
        ok = b["status"] in IDENTIFIABLE
        pts = [(x, y) for x, y in zip(b["x"], b["y"]) if x > 0]
        inside = [(x, y) for x, y in pts if y >= low]
        below = [x for x, y in pts if y < low]
        ax.plot([x for x, _ in inside], [y for _, y in inside], "o", ms=2.2, color=color, alpha=0.6,
                gid=f"points {key}")
        if below:
            ax.plot(below, [low] * len(below), "v", ms=4, color=color, clip_on=False, gid=f"below {key}")
        if b["curve"] is not None:
            ax.plot(*b["curve"], "-" if ok else ":", lw=1.3, color=color, gid=f"fit {key}")
        if math.isfinite(b["a_post"]):
            ax.hlines(b["a_post"], max(b["x0"], lay["xlim"][0]), lay["xlim"][1], colors=[color],
                      linestyles="dashed" if ok else "dotted", lw=0.8, alpha=0.9, gid=f"a_post {key}")
            text = f"{_label(b['dataset'], b['step'])}: A_post {b['a_post']:.1f}"
        else:
            text = _label(b["dataset"], b["step"])
        if pts:
            x_end, y_end = pts[-1]
            # neighbouring branches end close together: three label heights in turn keep them apart
            ax.annotate("RL" if b["step"] == 0 else str(b["step"]), (x_end, max(y_end, low)),
                        textcoords="offset points", xytext=(3, -7 + 7 * (rank % 3)), fontsize=6,
                        color=color, fontweight="bold")
        handles.append(Line2D([], [], color=color, marker="o", ms=3, ls="-" if ok else ":",
                              label=text + _status_note(b["status"])))
    if any(y < low for b in lay["branches"] for y in b["y"]):
        handles.append(Line2D([], [], color="gray", marker="v", ls="", label="point below the axis"))
    ax.set_xscale("log")
    ax.set_xlim(*lay["xlim"])
    ax.set_ylim(*lay["ylim"])
    ax.set_xlabel("compute x_sft + x_rl (EF, log)")
    ax.set_ylabel("overall accuracy (%)")
    ax.set_title(f"{ds}: RL branches from its SFT checkpoints (label: SFT step)")
    ax.legend(handles=handles, fontsize=6.2, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def figure3(curves, fits: list[dict], out, val_losses: dict | None = None,
            datasets: list[str] | None = None) -> dict:
    """One panel per SFT set (``draw_panel``); returns the drawn-data record (``drawn.save_png``)."""
    from plasticity.analysis.drawn import save_png
    from plasticity.analysis.figures import _plt

    plt = _plt()
    names = datasets or sorted(curves.sft)
    if not names:
        raise ValueError("figure3: the curves have no SFT rows")
    ncols = 2 if len(names) > 1 else 1
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(9.5 * ncols, 5.4 * nrows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, ds in zip(axes.flat, names):
        draw_panel(ax, figure3_layout(curves, fits, ds, val_losses), ds)
    fig.suptitle(TITLE, fontsize=9 if ncols == 1 else 11)
    fig.tight_layout()
    return save_png(fig, out)
