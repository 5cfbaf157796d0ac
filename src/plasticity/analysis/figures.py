"""The study's figures, each rendered from result files only (matplotlib, Agg backend, PNG).

``python -m plasticity figure --name NAME [inputs] --out FILE.png``. Inputs per figure:

- figure2 (the paradigm comparison, PAPER 5.1): ``--curves`` and optional ``--fits`` (x_sft of SFT
  checkpoints). One panel per starting point (the base model and an SFT checkpoint; ``--start base``,
  ``--start DATASET@STEP`` to choose), one stable colour and marker per RL method (``METHOD_COLORS``,
  ``METHOD_MARKERS``, keyed by the names of ``plasticity.methods``: the grid's branches, the curves'
  optional ``method`` column and the ``paradigms.csv`` beside the curves, ``analysis.paradigms``),
  synchronized methods dashed, and the Pure-SFT curve in black; every panel keeps x = 0. Titled by
  what it shows (a single method is not called a paradigm comparison).
- figure3 (SFT-then-RL scaling, PAPER 5.3): ``--curves`` and ``--fits``; ``figure3.py`` (one panel
  per SFT set, the style key in its docstring); regime shading from ``--val-loss DATASET=VAL.json`` or
  from the fits' imported ``regime`` column. ``--dataset`` limits the panels.
- figure8 (data-selection indicator): ``--fits`` and ``--min-loss DATASET=VAL.json|NUMBER`` or
  ``--min-loss FILE.csv``; scatter of minimum validation loss vs the best identifiable A_post with the
  least-squares line, Pearson / Spearman and the count of flagged branches left out.

Every PNG carries what it draws (``drawn.py``: lines, spans, points, texts as data), which is how
figures are compared: a rerun gives the same record and, on the same machine, the same bytes (fixed
size and DPI, no software version in the metadata). Example:

    python -m plasticity figure --name figure3 --curves reference/retu_curves.csv \
        --fits reports/reference/retu_fits.csv --out reports/reference/figure3.png
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from plasticity.analysis.drawn import save_png
from plasticity.analysis.figure3 import _ef_per_step, figure3, figure3_layout  # noqa: F401 (re-exported)
from plasticity.analysis.tables import fmt_ef

FIGURES = ("figure2", "figure3", "figure8")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    return plt


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
        # every line starts at its start: the SFT checkpoint's value, or the base model's (x = 0 of the
        # Pure-SFT curve) from the base; the study's curves list no x = 0 RL row
        start = _branch_point(curves, ds if ds != "base" else sft_name or "", x0)
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


# RL methods solid, synchronized SFT+RL methods dashed; one marker per method as well as a colour
METHOD_MARKERS = dict(zip(METHOD_COLORS, ("o", "s", "^", "D", "v", "P", "X", "*")))


def figure2_title(panels: list[dict]) -> str:
    """What Figure 2 shows: the paradigm comparison when several methods run, else the one method's
    branches from each start against Pure-SFT."""
    methods = list(dict.fromkeys(line["method"] for p in panels for line in p["lines"]))
    if len(methods) > 1:
        return "Figure 2: paradigm comparison (RL and synchronized SFT+RL methods vs Pure-SFT)"
    starts = " and ".join(p["title"].removeprefix("from ") for p in panels)
    return f"Figure 2: {_method_title(methods[0])} from {starts} vs Pure-SFT"


def figure2(curves, out, fits: list[dict] = (), starts: list[str] | None = None) -> dict:
    """The paradigm comparison (PAPER 5.1): one panel per starting point, one colour and marker per
    method (synchronized methods dashed), the Pure-SFT curve in black; every axis keeps x = 0, the
    start. From the base model: compute on a symmetric-log axis (linear up to the smallest RL
    compute, logarithmic beyond), the Pure-SFT curve as it grows; from an SFT checkpoint: RL compute
    since the checkpoint (linear), the Pure-SFT curve continuing past the checkpoint and the Pure-SFT
    peak as a dotted line. Returns the drawn-data record."""
    from plasticity.methods import METHODS

    plt = _plt()
    panels = figure2_layout(curves, fits, starts)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        base = panel["start"][0] == "base"
        sft = [(x - panel["x0"], y) for x, y in panel["sft"] if x >= panel["x0"]]
        if sft:
            ax.plot([x for x, _ in sft], [y for _, y in sft], "-", color=SFT_COLOR, lw=1.6,
                    label=f"Pure-SFT ({panel['sft_name']})", gid="sft")
        if not base and math.isfinite(panel["sft_peak"]):
            ax.axhline(panel["sft_peak"], color=SFT_COLOR, ls=":", lw=1.0, gid="sft peak",
                       label=f"Pure-SFT peak {panel['sft_peak']:.1f}")
        for line in panel["lines"]:
            m = line["method"]
            sync = m in METHODS and METHODS[m].paradigm == "sync"
            ax.plot(line["x"], line["y"], "--" if sync else "-", marker=METHOD_MARKERS.get(m, "."), ms=3.5,
                    lw=1.0, color=METHOD_COLORS.get(m, "gray"), label=_method_title(m), gid=f"method {m}")
        right = max((x for line in panel["lines"] for x in line["x"]), default=0.0)
        if base:
            positive = [x for line in panel["lines"] for x in line["x"] if x > 0]
            linthresh = 10 ** math.floor(math.log10(min(positive))) if positive else 1.0
            ax.set_xscale("symlog", linthresh=linthresh, linscale=1.0)
            ax.set_xlim(left=0.0)
            ax.set_xlabel("compute (EF; linear to the first RL evaluation, log beyond)")
        else:
            ax.set_xlabel(f"compute since the checkpoint (EF; checkpoint at {fmt_ef(panel['x0'])} EF)")
            if right > 0:       # the Pure-SFT curve may run far past the RL runs: show the RL span
                ax.set_xlim(0.0, 1.5 * right)
        ax.set_ylabel("overall accuracy (%)")
        ax.set_title(panel["title"])
        ax.legend(fontsize=7, loc="best", ncols=2)
    fig.suptitle(figure2_title(panels))
    fig.tight_layout()
    return save_png(fig, out)


def figure8(fits: list[dict], min_losses: dict[str, float], out) -> dict:
    """Minimum SFT validation loss vs the best identifiable A_post per set (Table 5's rows), the
    least-squares line, and how many branches were flagged and left out. Returns the drawn-data
    record with the correlation under ``"result"``."""
    import numpy as np

    from plasticity.analysis.correlate import best_ceilings, correlation_note, loss_ceiling_correlation
    from plasticity.analysis.status import flagged_note

    best = best_ceilings(fits)
    res = loss_ceiling_correlation(min_losses, {k: v["a_post"] for k, v in best.items()})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.8, 4.4))
    ax.scatter(res["min_loss"], res["a_post"], s=30, zorder=3, gid="sets")
    for name, x, y in zip(res["datasets"], res["min_loss"], res["a_post"]):
        ax.annotate(f"{name} @ {best[name]['sft_step']}", (x, y), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    if math.isfinite(res["slope"]):
        xs = np.linspace(min(res["min_loss"]), max(res["min_loss"]), 50)
        ax.plot(xs, res["slope"] * xs + res["intercept"], "--", color="gray", gid="least squares")
    ax.text(0.02, 0.02, f"{len(res['datasets'])} SFT sets; {flagged_note(fits)}", transform=ax.transAxes,
            fontsize=7, va="bottom", wrap=True)
    ax.set_xlabel("minimum SFT validation loss")
    ax.set_ylabel("best identifiable A_post (%)")
    ax.set_title(f"Figure 8: minimum validation loss vs best identifiable A_post\n"
                 f"{correlation_note(res)}", fontsize=9, wrap=True)
    fig.tight_layout()
    return {**save_png(fig, out), "result": res}


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
