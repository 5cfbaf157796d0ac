"""The study's figures, each rendered from result files only (matplotlib, Agg backend, PNG).

``python -m plasticity figure --name NAME [inputs] --out FILE.png``. Inputs per figure:

- figure2 (the paradigm comparison, PAPER 5.1): ``--curves`` and optional ``--fits`` (x_sft of SFT
  checkpoints). One panel per starting point (the base model and an SFT checkpoint; ``--start base``,
  ``--start DATASET@STEP`` to choose), one stable colour per RL method (``METHOD_COLORS``, keyed by
  the names of ``plasticity.methods``: the grid's branches, the curves' optional ``method`` column and
  the ``paradigms.csv`` beside the curves, ``analysis.paradigms``) and the Pure-SFT curve in black.
- figure3 (SFT-then-RL scaling, PAPER 5.3): ``--curves`` and ``--fits``; one panel per SFT set, log
  compute axis x_sft + x_rl, each branch from its checkpoint with its points, fitted sigmoid (dotted
  when the ceiling is not identifiable) and a dashed A_post line; regime shading from
  ``--val-loss DATASET=VAL.json`` or from the fits' imported ``regime`` column. ``--dataset`` limits
  the panels.
- figure8 (data-selection indicator): ``--fits`` and ``--min-loss DATASET=VAL.json|NUMBER`` or
  ``--min-loss FILE.csv``; scatter of minimum validation loss vs the best identifiable A_post with the
  least-squares line and Pearson / Spearman.

Output is byte-identical on rerun: fixed size and DPI, and PNG metadata without the software
version. Example:

    python -m plasticity figure --name figure3 --curves reference/retu_curves.csv \
        --fits reports/reference/retu_fits.csv --out reports/reference/figure3.png
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from plasticity.analysis.tables import fmt_ef
from plasticity.io import atomic_path

FIGURES = ("figure2", "figure3", "figure8")
REGIME_COLORS = {"adaptive": "#fde2c8", "stable": "#d4edda", "mild": "#fff3bf", "severe": "#f8d0d0"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(fig, out) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=130, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)


def _label(ds: str, step: int) -> str:
    return "pure RL" if step == 0 else f"{ds} @ {step}"


# one stable colour per method, in the order of the method registry; Pure-SFT is black
METHOD_COLORS = dict(zip(("dapo_dc", "dapo_d", "grpo", "luffy", "srft", "upt", "prefix_rft", "chord"),
                         ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                          "#17becf")))
SFT_COLOR = "black"


def _method_title(name: str) -> str:
    from plasticity.methods import METHODS

    return METHODS[name].title if name in METHODS else name


def with_paradigms(curves, paradigms: list[dict]):
    """``curves`` with the paradigm comparison's branches (``paradigms.csv``) added to its methods: the
    grid's own branches stay under ``DEFAULT_METHOD`` when the curves carry no method column."""
    from dataclasses import replace

    from plasticity.analysis import paradigms as pd
    from plasticity.analysis.artifacts import DEFAULT_METHOD

    if not paradigms:
        return curves
    methods = dict(curves.methods) or {(d, s, DEFAULT_METHOD): p for (d, s), p in curves.rl.items()}
    x_sft = {(r["dataset"], r["branch_step"]): r["x_sft_ef"] for r in paradigms}
    for (ds, step), by_method in pd.overall(paradigms).items():
        for method, pts in by_method.items():   # x since the start, as the grid's branches
            methods[(ds, step, method)] = [(x - x_sft[(ds, step)], y) for x, y in pts]
    return replace(curves, methods=methods)


def figure2_layout(curves, fits: list[dict] = (), starts: list[str] | None = None) -> list[dict]:
    """Figure 2's panels, one per starting point: ``base`` (branch_step 0) and SFT checkpoints
    ``DATASET@STEP``. Default: base plus the SFT checkpoint with the most methods (ties: the highest
    step, then the dataset name), which is the study's saturated SFT889K checkpoint once the
    synchronized methods run from it. Each panel: ``lines`` (method, x, y) with x the RL compute
    since the start, ``x0`` the start's SFT compute (fits' x_sft_ef), ``sft`` the Pure-SFT curve (the
    start's dataset; for base, the SFT set of the other panel, else the first by name) and
    ``sft_peak`` its best value. Pure RL appears once per method even when every dataset of the
    curves repeats it."""
    methods = curves.methods or {(d, s, "dapo_dc"): p for (d, s), p in curves.rl.items()}
    by_start: dict[tuple, dict[str, list]] = {}
    for (ds, step, method), pts in sorted(methods.items()):
        key = ("base", 0) if step == 0 else (ds, step)
        by_start.setdefault(key, {}).setdefault(method, pts)      # the first dataset's copy of pure RL
    if starts:
        keys = []
        for spec in starts:
            if spec == "base":
                keys.append(("base", 0))
            elif "@" in spec and spec.rsplit("@", 1)[1].isdigit():
                keys.append((spec.rsplit("@", 1)[0], int(spec.rsplit("@", 1)[1])))
            else:
                raise ValueError(f"figure2 --start {spec!r}: expected base or DATASET@STEP")
        missing = [k for k in keys if k not in by_start]
        if missing:
            raise ValueError(f"figure2: no RL curves from {missing}; have {sorted(by_start)}")
    else:
        sft_starts = [k for k in by_start if k[0] != "base"]
        keys = [k for k in (("base", 0),) if k in by_start]
        if sft_starts:
            keys.append(max(sft_starts, key=lambda k: (len(by_start[k]), k[1], k[0])))
    x_sft = {(f["dataset"], f["sft_step"]): f.get("x_sft_ef", math.nan) for f in fits}
    panels = []
    for ds, step in keys:
        x0 = 0.0 if ds == "base" else x_sft.get((ds, step), math.nan)
        if not math.isfinite(x0):
            ef = _ef_per_step(fits, ds)
            x0 = step * ef if ef else 0.0
        sft_name = ds if ds != "base" else next(
            (k[0] for k in keys if k[0] != "base"), sorted(curves.sft)[0] if curves.sft else None)
        start = _branch_point(curves, ds, x0) if ds != "base" else []
        order = sorted(by_start[(ds, step)].items(), key=lambda kv: (
            list(METHOD_COLORS).index(kv[0]) if kv[0] in METHOD_COLORS else 99, kv[0]))
        lines = []
        for m, pts in order:
            pts = (start if not any(x == 0 for x, _ in pts) else []) + list(pts)
            lines.append({"method": m, "x": [x for x, _ in pts], "y": [y for _, y in pts]})
        title = "from the base model" if ds == "base" else f"from the SFT checkpoint {ds} @ {step}"
        sft = list(curves.sft.get(sft_name, []))
        panels.append({"start": (ds, step), "x0": x0, "title": title, "lines": lines,
                       "sft_name": sft_name, "sft": sft,
                       "sft_peak": max((y for _, y in sft), default=math.nan)})
    if not panels:
        raise ValueError("figure2: the curves have no RL rows")
    return panels


def _branch_point(curves, ds: str, x0: float) -> list[tuple[float, float]]:
    """[(0, P_sft)]: the SFT curve at the checkpoint, so an RL line starts where its branch does
    (the study's curves list no x = 0 RL row); [] when the SFT curve has no point there."""
    from plasticity.analysis.artifacts import FitError, sft_value_at

    try:
        return [(0.0, sft_value_at(curves.sft.get(ds, []), x0, ds))]
    except FitError:
        return []


def figure2(curves, out, fits: list[dict] = (), starts: list[str] | None = None) -> None:
    """The paradigm comparison (PAPER 5.1): one panel per starting point, one colour per method, the
    Pure-SFT curve in black. From the base model: compute on a log axis, the Pure-SFT curve as it
    grows; from an SFT checkpoint: RL compute since the checkpoint (linear), the Pure-SFT curve
    continuing past the checkpoint and the Pure-SFT peak as a dotted line."""
    plt = _plt()
    panels = figure2_layout(curves, fits, starts)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        base = panel["start"][0] == "base"
        sft = [(x - panel["x0"], y) for x, y in panel["sft"] if x > 0 and x >= panel["x0"]]
        if sft:
            ax.plot([x for x, _ in sft], [y for _, y in sft], "-", color=SFT_COLOR, lw=1.6,
                    label=f"Pure-SFT ({panel['sft_name']})")
        if not base and math.isfinite(panel["sft_peak"]):
            ax.axhline(panel["sft_peak"], color=SFT_COLOR, ls=":", lw=1.0,
                       label=f"Pure-SFT peak {panel['sft_peak']:.1f}")
        for line in panel["lines"]:
            pts = [(x, y) for x, y in zip(line["x"], line["y"]) if x > 0 or not base]
            ax.plot([x for x, _ in pts], [y for _, y in pts], ".-", ms=3, lw=1.0,
                    color=METHOD_COLORS.get(line["method"], "gray"),
                    label=_method_title(line["method"]))
        if base:
            ax.set_xscale("log")
            ax.set_xlabel("compute (EF, log)")
        else:
            ax.set_xlabel(f"compute since the checkpoint (EF; checkpoint at {fmt_ef(panel['x0'])} EF)")
            right = max((x for line in panel["lines"] for x in line["x"]), default=0.0)
            if right > 0:       # the Pure-SFT curve may run far past the RL runs: show the RL span
                ax.set_xlim(0.0, 1.5 * right)
        ax.set_ylabel("overall accuracy (%)")
        ax.set_title(panel["title"])
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Figure 2: paradigm comparison (RL and synchronized SFT+RL methods vs Pure-SFT)")
    fig.tight_layout()
    _save(fig, out)


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
    label (regime unknown) leaves its span unshaded."""
    spans = []
    for i, lab in enumerate(labels):
        lo = 0.0 if i == 0 else math.sqrt(centres[i - 1] * centres[i])
        hi = max(right, centres[i]) if i == len(labels) - 1 else math.sqrt(centres[i] * centres[i + 1])
        if lab:
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
      the fits' imported ``regime`` column at their x_sft.
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
        if any(lab for _, lab in ckpt):
            regimes = _spans([c for c, _ in ckpt], [lab for _, lab in ckpt], xlim[1])
    return {"sft": sft, "branches": branches, "ylim": (lo - margin, hi + margin), "xlim": xlim,
            "regimes": regimes, "ef_per_step": ef_step}


def _status_note(status: str) -> str:
    return {"ok": "", "b_bound": ", B at bound", "extrapolated": ", extrapolated: best obs.",
            "collapsed": ", collapsed: peak", "no fit": ", no fit"}.get(status, f", {status}: best obs.")


def figure3(curves, fits: list[dict], out, val_losses: dict | None = None,
            datasets: list[str] | None = None) -> None:
    """One panel per SFT set: the SFT curve, each RL branch from its checkpoint (points, fitted
    sigmoid, dashed A_post), regime shading; log compute axis (``figure3_layout`` decides what)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _plt()
    names = datasets or sorted(curves.sft)
    if not names:
        raise ValueError("figure3: the curves have no SFT rows")
    ncols = 2 if len(names) > 1 else 1
    nrows = math.ceil(len(names) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(9.5 * ncols, 5.4 * nrows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, ds in zip(axes.flat, names):
        lay = figure3_layout(curves, fits, ds, val_losses)
        handles = []
        for lab in dict.fromkeys(lab for *_, lab in lay["regimes"]):
            handles.append(Patch(color=REGIME_COLORS[lab], label=f"{lab.capitalize()} regime"))
        for r_lo, r_hi, lab in lay["regimes"]:
            ax.axvspan(max(r_lo, lay["xlim"][0]), r_hi, color=REGIME_COLORS[lab], alpha=0.6, lw=0)
        sft = [(x, y) for x, y in lay["sft"] if x > 0]
        if sft:
            ax.plot([x for x, _ in sft], [y for _, y in sft], "k-", lw=1.4)
            handles.append(Line2D([], [], color="k", lw=1.4, label=f"{ds} SFT"))
        n = len(lay["branches"])
        for k, b in enumerate(lay["branches"]):
            color = cmap(k / max(1, n - 1) * 0.9)
            pts = [(x, y) for x, y in zip(b["x"], b["y"]) if x > 0]
            inside = [(x, y) for x, y in pts if y >= lay["ylim"][0]]
            below = [x for x, y in pts if y < lay["ylim"][0]]
            ax.plot([x for x, _ in inside], [y for _, y in inside], "o", ms=2.2, color=color,
                    alpha=0.55)
            if below:
                ax.plot(below, [lay["ylim"][0]] * len(below), "v", ms=4, color=color, clip_on=False)
            if b["curve"] is not None:
                ax.plot(*b["curve"], ":" if b["status"] == "extrapolated" else "-", lw=1.3, color=color)
            if math.isfinite(b["a_post"]):
                ax.hlines(b["a_post"], max(b["x0"], lay["xlim"][0]), lay["xlim"][1], colors=[color],
                          linestyles="dashed", lw=0.8, alpha=0.8)
                text = f"{_label(b['dataset'], b['step'])}: A_post {b['a_post']:.1f}"
            else:
                text = _label(b["dataset"], b["step"])
            handles.append(Line2D([], [], color=color, marker="o", ms=3,
                                  ls=":" if b["status"] == "extrapolated" else "-",
                                  label=text + _status_note(b["status"])))
        handles.append(Line2D([], [], color="gray", ls="--", lw=0.8, label="dashed: A_post per branch"))
        if any(y < lay["ylim"][0] for b in lay["branches"] for y in b["y"]):
            handles.append(Line2D([], [], color="gray", marker="v", ls="", label="point below the axis"))
        ax.set_xscale("log")
        ax.set_xlim(*lay["xlim"])
        ax.set_ylim(*lay["ylim"])
        ax.set_xlabel("compute x_sft + x_rl (EF, log)")
        ax.set_ylabel("overall accuracy (%)")
        ax.set_title(f"{ds}: RL branches from SFT checkpoints")
        ax.legend(handles=handles, fontsize=6.2, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
    fig.suptitle("Figure 3: SFT-then-RL scaling per SFT set (sigmoid fits; dotted = ceiling not "
                 "identifiable)", y=1.0)
    fig.tight_layout()
    _save(fig, out)


def figure8(fits: list[dict], min_losses: dict[str, float], out) -> dict:
    import numpy as np

    from plasticity.analysis.correlate import best_ceilings, loss_ceiling_correlation

    best = best_ceilings(fits)
    res = loss_ceiling_correlation(min_losses, {k: v["a_post"] for k, v in best.items()})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(res["min_loss"], res["a_post"], s=30, zorder=3)
    for name, x, y in zip(res["datasets"], res["min_loss"], res["a_post"]):
        ax.annotate(f"{name} @ {best[name]['sft_step']}", (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    if math.isfinite(res["slope"]):
        xs = np.linspace(min(res["min_loss"]), max(res["min_loss"]), 50)
        ax.plot(xs, res["slope"] * xs + res["intercept"], "--", color="gray")
    ax.set_xlabel("minimum SFT validation loss")
    ax.set_ylabel("best identifiable A_post (%)")
    ax.set_title(f"Figure 8: Pearson r = {res['pearson']:.2f}, Spearman ρ = {res['spearman']:.2f}",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plasticity figure",
                                description="Render one of the study's figures (PNG) from result "
                                            "files; see the module docstring for inputs.")
    p.add_argument("--name", required=True, choices=FIGURES)
    p.add_argument("--curves", help="curves CSV (figure2, figure3)")
    p.add_argument("--fits", help="FITS.csv (figure3, figure8)")
    p.add_argument("--weights", help="JSON role -> problem count for the overall micro-average")
    p.add_argument("--val-loss", action="append", default=[], metavar="DATASET=VAL.json")
    p.add_argument("--min-loss", action="append", default=[],
                   metavar="DATASET=VAL.json|DATASET=NUMBER|FILE.csv")
    p.add_argument("--dataset", action="append", default=[], help="figure3: panels to draw")
    p.add_argument("--start", action="append", default=[],
                   help="figure2: panels to draw, base or DATASET@STEP (default: see the docstring)")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    from plasticity.analysis.artifacts import (FitError, overall_curves, read_curve_rows, read_fits,
                                         read_weights)
    from plasticity.analysis.regimes import RegimeError
    from plasticity.analysis.tables import TableError, parse_min_losses, parse_val_losses

    try:
        need = {"figure2": ["curves"], "figure3": ["curves", "fits"], "figure8": ["fits"]}[args.name]
        for n in need:
            if getattr(args, n) is None:
                raise ValueError(f"{args.name} needs --{n}")
        curves = None
        if args.curves:
            weights = read_weights(args.weights) if args.weights else None
            curves = overall_curves(read_curve_rows(args.curves), weights, source=args.curves)
        fits = read_fits(args.fits) if args.fits else []
        if args.name == "figure2":
            from plasticity.analysis.paradigms import NAME, read_paradigms
            curves = with_paradigms(curves, read_paradigms(Path(args.curves).with_name(NAME)))
            figure2(curves, args.out, fits, args.start or None)
        elif args.name == "figure3":
            figure3(curves, fits, args.out, parse_val_losses(args.val_loss), args.dataset or None)
        else:
            figure8(fits, parse_min_losses(args.min_loss), args.out)
    except (FitError, RegimeError, TableError, ValueError, OSError) as exc:
        print(f"figure: error: {exc}", file=sys.stderr)
        return 2
    print(f"figure: {args.name} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
