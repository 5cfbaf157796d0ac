"""The study's figures, each rendered from result files only (matplotlib, Agg backend, PNG).

``python -m plasticity figure --name NAME [inputs] --out FILE.png``. Inputs per figure:

- figure2 (paradigm curves): ``--curves`` (and the ``paradigms.csv`` beside it, when there is one:
  then one panel per starting point, one colour per method) and optional ``--fits``; overall accuracy
  against compute,
  one line per SFT curve and per RL branch (RL branches start at their SFT checkpoint's compute from
  the fits' x_sft_ef / sft_step, so x = x_sft + x_rl; at x_rl alone without --fits).
- figure3 (RL scaling per SFT set): ``--curves`` and ``--fits``; one panel per SFT set with the SFT
  curve, every RL branch (points, starting at its SFT checkpoint's compute x_sft_ef, so x = x_sft +
  x_rl; the pure-RL branch from 0) and its fitted sigmoid, except for fits whose A_post is an observed
  substitute (status failed / flat / bound / implausible: points only, and the legend says so);
  ``--val-loss DATASET=VAL.json`` shades the regimes (steps mapped to compute with the fits'
  x_sft_ef / sft_step). y-limits come from the data, the symlog threshold from the smallest positive
  x (``figure3_layout``). ``--dataset`` limits the panels.
- figure8 (data-selection indicator): ``--fits`` and ``--min-loss DATASET=VAL.json|NUMBER``; scatter of
  minimum validation loss vs best A_post with the least-squares line and Pearson / Spearman.

Output is byte-identical on rerun: fixed size and DPI, and PNG metadata without the software
version. Example:

    python -m plasticity figure --name figure3 --curves ../shared/reference/sft889k_curves.csv \
        --fits reports/reference/fits.csv --out reports/reference/figure3.png
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

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


def figure2(curves, out, fits: list[dict] = (), paradigms: list[dict] = ()) -> None:
    """Paradigm curves; RL branches start at their SFT checkpoint's compute (from the fits).

    With the paradigm comparison's branches (``paradigms``, analysis.paradigms) it is drawn as the
    study draws it: one panel per starting point, one colour per method (the same in every panel),
    the Pure-SFT curve beside them."""
    if paradigms:
        return figure2_panels(curves, out, paradigms)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = []
    for ds, pts in sorted(curves.sft.items()):
        ax.plot([x for x, _ in pts], [y for _, y in pts], "-", lw=1.5, label=f"{ds} SFT")
        xs += [x for x, _ in pts]
    for (ds, step), pts in sorted(curves.rl.items()):
        x0 = step * (_ef_per_step(fits, ds) or 0.0)
        ax.plot([x0 + x for x, _ in pts], [y for _, y in pts], ".-", ms=3, lw=0.8,
                label=_label(ds, step) if step == 0 else f"{_label(ds, step)} RL")
        xs += [x0 + x for x, _ in pts]
    positive = [x for x in xs if x > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
    ax.set_xlabel("compute x_sft + x_rl (EF, symlog)")
    ax.set_ylabel("overall accuracy (%)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    _save(fig, out)


def figure2_layout(curves, paradigms: list[dict]) -> list[dict]:
    """Figure 2's panels: ``title``, ``lines`` (label, colour index, x, y); the SFT line has colour None.

    The Pure-SFT curve of a panel from ``DATASET @ step`` is DATASET's; the base panel shows the SFT
    curves of the datasets the other panels start from (every SFT curve when there are none)."""
    from plasticity.analysis import paradigms as pd

    starts = pd.overall(paradigms)
    order = pd.method_order(starts)
    sft_sets = sorted({ds for ds, _ in starts if ds != "pure_rl"}) or sorted(curves.sft if curves else [])
    panels = []
    for (ds, step), methods in starts.items():
        lines = []
        for name in ([ds] if ds != "pure_rl" else sft_sets):
            pts = curves.sft.get(name, []) if curves else []
            if pts:
                lines.append({"label": f"Pure-SFT ({name})", "colour": None,
                              "x": [x for x, _ in pts], "y": [y for _, y in pts]})
        for m in order:
            if m in methods:
                lines.append({"label": pd.method_title(m), "colour": order.index(m),
                              "x": [x for x, _ in methods[m]], "y": [y for _, y in methods[m]]})
        panels.append({"title": pd.start_label(ds, step), "lines": lines})
    return panels


def figure2_panels(curves, out, paradigms: list[dict]) -> None:
    plt = _plt()
    panels = figure2_layout(curves, paradigms)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, panel in zip(axes[0], panels):
        xs = [x for line in panel["lines"] for x in line["x"] if x > 0]
        for line in panel["lines"]:
            sft = line["colour"] is None
            ax.plot(line["x"], line["y"], "--" if sft else ".-", ms=3, lw=1.5 if sft else 0.9,
                    color="black" if sft else colours(line["colour"] % 10), label=line["label"])
        ax.set_xscale("symlog", linthresh=min(xs) if xs else 1.0)
        ax.set_title(panel["title"])
        ax.set_xlabel("compute x_sft + x_rl (EF, symlog)")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("overall accuracy (%)")
    fig.tight_layout()
    _save(fig, out)


def _ef_per_step(fits: list[dict], ds: str) -> float | None:
    """SFT compute per step of DATASET, from the fits' x_sft_ef / sft_step (None when unknown)."""
    for f in fits:
        x = f.get("x_sft_ef", math.nan)
        if f["dataset"] == ds and f["sft_step"] > 0 and math.isfinite(x) and x > 0:
            return x / f["sft_step"]
    return None


def figure3_layout(curves, fits: list[dict], ds: str, val_losses: dict | None = None) -> dict:
    """What one Figure 3 panel draws, in data coordinates (``figure3`` only renders it).

    - ``branches``: per RL branch of DATASET (plus the pure-RL branch, drawn from x = 0, when DATASET
      has no step-0 branch of its own): ``x`` = x_sft + x_rl of its points (x_sft = the fit's x_sft_ef,
      else sft_step times the SFT compute per step), ``y``, the fit row, ``draw_fit`` (False for the
      statuses in ``fit.SUBSTITUTED`` or without parameters: points only) and the fitted ``curve``.
    - ``ylim``: from the plotted data (SFT curve and RL points), 5% margin (at least 0.5 points);
      fitted curves never widen it.
    - ``linthresh``: the symlog linear threshold, the smallest positive plotted x, so the miniature's
      1e-7..1e-5 EF and the study's 0.1..1000 EF both get a log axis.
    - ``regimes``: (lo, hi, regime) spans of the SFT checkpoints' regimes in compute (steps times the
      SFT compute per step; the last span reaches the right end of the data).
    """
    import numpy as np

    from plasticity.analysis.fit import SUBSTITUTED, sigmoid

    by_branch = {(f["dataset"], f["sft_step"]): f for f in fits}
    ef_step = _ef_per_step(fits, ds)
    keys = [(ds, step) for step in sorted(step for d, step in curves.rl if d == ds)]
    if (ds, 0) not in curves.rl and ("pure_rl", 0) in curves.rl:
        keys.insert(0, ("pure_rl", 0))
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
        b = {"dataset": owner, "step": step, "x0": x0, "x": [x0 + x for x, _ in pts],
             "y": [y for _, y in pts], "fit": fit, "status": status, "draw_fit": False,
             "curve": None}
        if fit and status not in SUBSTITUTED and all(
                math.isfinite(fit.get(k, math.nan)) for k in ("b", "cmid_ef", "p_sft", "a_post")):
            xmax = max(x for x, _ in pts)
            xr = np.linspace(0.0, xmax, 200)
            if xmax > 0:
                xr = np.unique(np.concatenate([xr, np.geomspace(xmax * 1e-3, xmax, 100)]))
            u = fit["a_post"] - fit["p_sft"]        # = U, or the peak gain of a collapsed branch
            eps = fit.get("eps", 0.0)
            yr = fit["p_sft"] + sigmoid(xr, u, fit["cmid_ef"], fit["b"],
                                        eps if math.isfinite(eps) else 0.0)
            b["draw_fit"], b["curve"] = True, (x0 + xr, yr)
        branches.append(b)
    sft = list(curves.sft.get(ds, []))
    xs = [x for x, _ in sft] + [x for b in branches for x in b["x"]]
    ys = [y for _, y in sft] + [y for b in branches for y in b["y"]]
    if not ys:
        raise ValueError(f"figure3: no points for dataset {ds!r}")
    lo, hi = min(ys), max(ys)
    margin = max(0.05 * (hi - lo), 0.5)
    pos = [x for x in xs if x > 0]
    regimes = []
    if val_losses and ds in val_losses and ef_step:
        from plasticity.analysis.regimes import label_regimes

        steps, losses = val_losses[ds]
        labels = label_regimes(steps, losses)
        edges = [st * ef_step for st in steps]
        right = max([edges[-1]] + xs)
        for i, lab in enumerate(labels):
            r_lo = 0.0 if i == 0 else (edges[i - 1] + edges[i]) / 2
            r_hi = right if i == len(labels) - 1 else (edges[i] + edges[i + 1]) / 2
            regimes.append((r_lo, r_hi, lab))
    return {"sft": sft, "branches": branches, "ylim": (lo - margin, hi + margin),
            "linthresh": min(pos) if pos else 1.0, "regimes": regimes, "ef_per_step": ef_step}


def figure3(curves, fits: list[dict], out, val_losses: dict | None = None,
            datasets: list[str] | None = None) -> None:
    """Per SFT set: SFT curve, RL branches at x_sft + x_rl with their fitted sigmoid, regimes
    (``figure3_layout`` decides positions, limits and which fits are drawn)."""
    plt = _plt()
    names = datasets or sorted(curves.sft)
    if not names:
        raise ValueError("figure3: the curves have no SFT rows")
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 4.8 * len(names)), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, ds in zip(axes[:, 0], names):
        lay = figure3_layout(curves, fits, ds, val_losses)
        seen = set()
        for r_lo, r_hi, lab in lay["regimes"]:
            ax.axvspan(r_lo, r_hi, color=REGIME_COLORS[lab], alpha=0.6, lw=0,
                       label=lab.capitalize() if lab not in seen else None)
            seen.add(lab)
        if lay["sft"]:
            ax.plot([x for x, _ in lay["sft"]], [y for _, y in lay["sft"]], "k-", lw=1.4,
                    label=f"{ds} SFT")
        n = len(lay["branches"])
        for k, b in enumerate(lay["branches"]):
            color = cmap(k / max(1, n - 1) * 0.9)
            name = _label(b["dataset"], b["step"])
            ax.plot(b["x"], b["y"], "o", ms=2.2, color=color, alpha=0.6)
            if b["draw_fit"]:
                ax.plot(*b["curve"], "-", lw=1.2, color=color,
                        label=f"{name}: A_post {b['fit']['a_post']:.1f}")
            elif b["fit"] and math.isfinite(b["fit"].get("a_post", math.nan)):
                ax.plot([], [], "o", ms=4, color=color, label=f"{name}: {b['status']}, points only "
                                                        f"(best obs. {b['fit']['a_post']:.1f})")
            else:
                ax.plot([], [], "o", color=color, label=f"{name} (no fit)")
        ax.set_xscale("symlog", linthresh=lay["linthresh"])
        ax.set_ylim(*lay["ylim"])
        ax.set_xlabel("compute x_sft + x_rl (EF, symlog)")
        ax.set_ylabel("overall accuracy (%)")
        ax.set_title(f"{ds}: RL branches from SFT checkpoints with fitted sigmoids")
        ax.legend(fontsize=6.5, ncol=2, loc="best")
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
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if math.isfinite(res["slope"]):
        xs = np.linspace(min(res["min_loss"]), max(res["min_loss"]), 50)
        ax.plot(xs, res["slope"] * xs + res["intercept"], "--", color="gray")
    ax.set_xlabel("minimum SFT validation loss")
    ax.set_ylabel("best A_post (%)")
    ax.set_title(f"Pearson r = {res['pearson']:.2f}, Spearman ρ = {res['spearman']:.2f}")
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
    p.add_argument("--min-loss", action="append", default=[], metavar="DATASET=VAL.json|NUMBER")
    p.add_argument("--dataset", action="append", default=[], help="figure3: panels to draw")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    from plasticity.analysis.fit import (FitError, overall_curves, read_curve_rows, read_fits,
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
            figure2(curves, args.out, fits, read_paradigms(Path(args.curves).with_name(NAME)))
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
