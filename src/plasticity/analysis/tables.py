"""The study's tables, each rendered from result files only, as Markdown, LaTeX and CSV.

``python -m plasticity table --name NAME [inputs] --out-prefix PREFIX`` writes PREFIX.md, PREFIX.tex
and PREFIX.csv. Inputs per table:

- table1 (paradigms, maxP_post per method; Llama in the study): ``--curves`` (every dataset's SFT
  curve and RL branches; the paradigm comparison's branches from the ``paradigms.csv`` beside it),
  optional ``--min-loss``. maxP_post is the best overall accuracy of the evaluations after the start
  (RL steps > 0, SFT checkpoints), with the start and the final value beside it.
- table2 (the RL settings of every paradigm, the study's Table 2): ``--branch DIR`` per finished RL
  branch; the values each run used, precision as run (``rl_settings.py``).
- table4 (per-branch fits): ``--fits FITS.csv``; the Status column flags every A_post that is not a
  plain identified fit, and the notes say what each status reports (``status.py``). A Regime column is added with
  ``--val-loss DATASET=VAL.json`` (the regime, ``regimes.label_regimes``, of each branch's SFT
  checkpoint) or when FITS.csv carries an imported ``regime`` column (``–`` where unknown).
- table5 (minimum SFT validation loss vs the best identifiable ceiling, Pearson / Spearman from
  scipy.stats): ``--fits`` and ``--min-loss DATASET=VAL.json|NUMBER`` per SFT set, or ``--min-loss
  FILE.csv`` (dataset, min_val_loss; ``reference/min_val_loss.csv`` holds the study's).
- table6 (switch point table, Qwen2.5-14B in the study): ``--fits`` and ``--val-loss DATASET=VAL.json``
  (validation loss and regime at each switch); rows as the study orders them (zero-RL first, then each
  set's switches by step); maxP_post is the best RL evaluation after the switch, so the max RL gain is
  negative where RL only lowered the branch.

These tables are for people, so numbers are rounded here (and only here; FITS.csv and the curves keep
full precision): accuracies with one decimal, losses and correlations with two, and compute values
(x_sft, Cmid) adaptively (``fmt_ef``): one decimal when >= 0.1 EF (or exactly 0), else three
significant digits in scientific notation (the miniature's 5.64e-06 EF). Reruns are byte-identical.
Example:

    python -m plasticity table --name table4 --fits reports/reference/fits.csv \
        --out-prefix reports/reference/table4
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path
from typing import Sequence

from plasticity.io import atomic_path

TABLES = ("table1", "table2", "table4", "table5", "table6")


class TableError(ValueError):
    """Missing or inconsistent table input."""


def _f(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, str):
        return v
    text = f"{float(v):.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text   # no "-0.0"


def fmt_ef(v) -> str:
    """A compute value (EF) for a table: ``34.9`` when >= 0.1 (or 0), ``5.64e-06`` below."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if v == 0.0 or abs(v) >= 0.1:
        return f"{v + 0.0:.1f}"
    return f"{v:.2e}"


def _tex_escape(s: str) -> str:
    out = s
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("–", "--"), ("→", r"$\to$"), ("τ", r"$\tau$"), ("α", r"$\alpha$"), ("ε", r"$\epsilon$"),
                 ("ρ", r"$\rho$")):
        out = out.replace(a, b)
    return out


def render(header: Sequence[str], rows: Sequence[Sequence[str]], prefix: str | Path,
           caption: str = "", notes: Sequence[str] = ()) -> None:
    """Write PREFIX.md, PREFIX.tex and PREFIX.csv for one table."""
    prefix = Path(prefix)
    md = [f"| {' | '.join(header)} |", "|" + "|".join("---" for _ in header) + "|"]
    md += [f"| {' | '.join(r)} |" for r in rows]
    md_text = (f"**{caption}**\n\n" if caption else "") + "\n".join(md) + "\n"
    if notes:
        md_text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    tex = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\begin{tabular}{" + "l" * 1 + "r" * (len(header) - 1) + "}", r"\toprule",
           " & ".join(_tex_escape(h) for h in header) + r" \\", r"\midrule"]
    tex += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    tex += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        tex.append(r"\caption{" + _tex_escape(caption) + "}")
    tex.append(r"\end{table}")
    for suffix, text in ((".md", md_text), (".tex", "\n".join(tex) + "\n")):
        with atomic_path(prefix.with_name(prefix.name + suffix)) as tmp:
            tmp.write_text(text, encoding="utf-8")
    with atomic_path(prefix.with_name(prefix.name + ".csv")) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)


def parse_min_losses(specs: Sequence[str]) -> dict[str, float]:
    """``DATASET=VAL.json`` (its minimum over SFT checkpoints), ``DATASET=NUMBER``, or a CSV file with
    columns dataset, min_val_loss (``artifacts.read_min_losses``; imported per-set minimum losses)."""
    from plasticity.analysis.artifacts import read_min_losses
    from plasticity.analysis.regimes import min_val_loss, read_val_loss

    out = {}
    for spec in specs:
        if "=" not in spec and spec.endswith(".csv"):
            out.update(read_min_losses(spec))
            continue
        if "=" not in spec:
            raise TableError(f"--min-loss {spec!r}: expected DATASET=VAL.json, DATASET=NUMBER or "
                             f"a CSV file (dataset, min_val_loss)")
        name, value = spec.split("=", 1)
        if Path(value).is_file():
            out[name] = min_val_loss(*read_val_loss(value))[1]
        else:
            try:
                out[name] = float(value)
            except ValueError:
                raise TableError(f"--min-loss {spec!r}: {value!r} is neither a file nor a number") from None
    return out


def parse_val_losses(specs: Sequence[str]) -> dict[str, tuple[list[int], list[float]]]:
    from plasticity.analysis.regimes import read_val_loss

    out = {}
    for spec in specs:
        if "=" not in spec:
            raise TableError(f"--val-loss {spec!r}: expected DATASET=VAL.json")
        name, path = spec.split("=", 1)
        out[name] = read_val_loss(path)
    return out


def _regime_at(val, step: int) -> tuple[str, float | None]:
    from plasticity.analysis.regimes import label_regimes

    steps, losses = val
    if step not in steps:
        return "–", None
    i = steps.index(step)
    return label_regimes(steps, losses)[i].capitalize(), losses[i]


def branch_regime(val_losses: dict, fit: dict) -> str:
    """Table 4's Regime cell: the regime of the branch's SFT checkpoint from its validation loss, else
    the fit's imported ``regime`` column, else ``–``."""
    val = val_losses.get(fit["dataset"])
    if val:
        return _regime_at(val, fit["sft_step"])[0]
    return (fit.get("regime") or "").capitalize() or "–"


def _dataset_label(ds: str) -> str:
    return "(pure RL)" if ds == "pure_rl" else ds


def table4(fits: list[dict], val_losses: dict, prefix) -> None:
    from plasticity.analysis.status import FIT_DRAWN, flagged_note, status_notes

    header = ["Data", "Step", "x_sft EF", "τ", "LTS α", "ε", "PL_rl", "Cmid (EF)", "B", "P_sft",
              "A_post", "RMSE val", "Status"]
    regimes = bool(val_losses) or any(f.get("regime") for f in fits)
    if regimes:
        header.insert(-1, "Regime")
    rows = []
    for f in sorted(fits, key=lambda r: (r["dataset"] != "pure_rl", r["dataset"], r["sft_step"])):
        status = f.get("status", "ok")
        fitted = status in FIT_DRAWN
        row = [_dataset_label(f["dataset"]), str(f["sft_step"]), fmt_ef(f.get("x_sft_ef")),
               _hp(f.get("tau")), _hp(f.get("alpha")), _f(f.get("eps"), 2),
               _f(f["pl_rl"]), fmt_ef(f.get("cmid_ef")) if fitted else "–",
               _f(f.get("b")) if fitted else "–", _f(f["p_sft"]),
               _f(f["a_post"]), _f(f.get("rmse_val"), 2), status]
        if regimes:
            row.insert(-1, branch_regime(val_losses, f))
        rows.append(row)
    notes = ["PL_rl = A_post − P_sft. Statuses, checked in this order (collapsed, failed, flat, bound, "
             "implausible, extrapolated, poor_fit, ok), and what A_post reports under each: "
             + status_notes() + ". Only `ok` and `flat` ceilings enter Table 5 and Figure 8; "
             + flagged_note(fits) + "."]
    if regimes:
        notes.append("Regime: of the branch's SFT checkpoint, from its validation loss (or the "
                     "imported regime column).")
    render(header, rows, prefix, "Table 4: sigmoid fits of every RL branch", notes)


def _hp(v) -> str:
    """A robust-fit hyperparameter as FITS.csv holds it (a number or ``none``)."""
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return "–"


def table5(fits: list[dict], min_losses: dict[str, float], prefix) -> dict:
    """Per SFT set: minimum validation loss, the branch with the highest identifiable A_post, and how
    many of its branches are identifiable; Pearson / Spearman over the sets that have both."""
    from plasticity.analysis.correlate import best_ceilings, correlation_note, loss_ceiling_correlation
    from plasticity.analysis.status import IDENTIFIABLE, flagged_note

    best = best_ceilings(fits)
    res = loss_ceiling_correlation(min_losses, {k: v["a_post"] for k, v in best.items()})
    sets = sorted({f["dataset"] for f in fits if f["dataset"] != "pure_rl"})
    counts = {ds: (sum(f["dataset"] == ds and f.get("status", "ok") in IDENTIFIABLE for f in fits),
                   sum(f["dataset"] == ds for f in fits)) for ds in sets}
    rows = [[ds, _f(loss, 2), str(best[ds]["sft_step"]), _f(best[ds]["a_post"]),
             "{}/{}".format(*counts[ds])]
            for loss, ds in sorted(zip(res["min_loss"], res["datasets"]), reverse=True)]
    notes = [correlation_note(res) + ("." if res["too_few"] else f" over {len(rows)} SFT sets (scipy.stats)."),
             "Best A_post: the maximum over the set's branches whose ceiling is identifiable (Table 4 "
             "status ok or flat); " + flagged_note(fits) + " (Table 4 defines each status)."]
    left = [ds for ds in sets if ds not in res["datasets"]]
    if left:
        notes.append("Not in the correlation: " + ", ".join(
            f"{ds} ({'no identifiable ceiling' if ds not in best else 'no minimum loss'})"
            for ds in left) + ".")
    render(["SFT data", "Min. val loss", "Best step", "Best A_post", "Identifiable"], rows, prefix,
           "Table 5: minimum SFT validation loss vs the best identifiable ceiling", notes)
    return res


def table6(fits: list[dict], val_losses: dict, prefix) -> None:
    """Switch points, as the study orders them: zero-RL first, then each SFT set's switches by step
    (a leading Data column tells several sets apart). maxP_post is the best RL evaluation after the
    switch (FITS.csv ``max_post``; ``max_obs``, which counts the start, for FITS files without it), so
    the max RL gain is negative where RL only lowered the branch."""
    rows = []
    many = len({f["dataset"] for f in fits if f["dataset"] != "pure_rl"}) > 1
    for f in sorted(fits, key=lambda r: (r["dataset"] != "pure_rl", r["dataset"], r["sft_step"])):
        val = val_losses.get(f["dataset"])
        regime, loss = _regime_at(val, f["sft_step"]) if val else ("–", None)
        if f["sft_step"] == 0 and f["dataset"] == "pure_rl":
            regime = "Adaptive"
        best = f.get("max_post", math.nan)
        if not math.isfinite(best):
            best = f.get("max_obs", math.nan)
        row = [f"{f['sft_step']} steps" if f["sft_step"] else "0 (zero-RL)",
               fmt_ef(f.get("x_sft_ef")),
               _f(loss, 2), regime, _f(f["p_sft"]), _f(best - f["p_sft"]), _f(best)]
        rows.append([_dataset_label(f["dataset"]), *row] if many else row)
    header = ["Switch", "x_sft EF", "Val loss", "Regime", "P_sft", "Max RL gain", "maxP_post"]
    notes = ["maxP_post: the best overall accuracy of the RL evaluations after the switch (the start "
             "not counted); Max RL gain = maxP_post − P_sft, negative where every RL evaluation lies "
             "below the start. Regime: from the validation loss at the switch (zero-RL: Adaptive)."]
    render(["Data", *header] if many else header, rows, prefix, "Table 6: where to switch from SFT to RL",
           notes)


def _start_best_final(pts: list[tuple[float, float]], x0: float = 0.0) -> tuple[float | None, float, float]:
    """(value at the start x0 or None, best value after it, last value) of a curve sorted by x."""
    start = next((y for x, y in pts if x == x0), None)
    after = [y for x, y in pts if x > x0]
    return start, max(after), after[-1]


def table1(curve_rows: list[dict], min_losses: dict[str, float], prefix, paradigms: list[dict] = ()) -> None:
    """Per paradigm and run: the start, maxP_post over the evaluations after it, and the final value
    (the study's Table 1 reports maxP_post; a best-of-many that counted the start would hide every
    loss). Rows: the base; pure RL; each SFT set (start: the base; evaluations: its checkpoints);
    each SFT-then-RL branch of the grid; the paradigm comparison's branches (analysis.paradigms) by
    start and method."""
    from plasticity.analysis import paradigms as pd
    from plasticity.analysis.artifacts import DEFAULT_METHOD, overall_curves
    from plasticity.methods import METHODS

    c = overall_curves(curve_rows)
    rows = []

    def add(label, paradigm, pts, x0=0.0, loss=None):
        if not any(x > x0 for x, _ in pts):
            return
        start, best, final = _start_best_final(pts, x0)
        rows.append([label, paradigm, _f(start), _f(best), _f(final), _f(loss, 2)])

    base = [y for pts in c.sft.values() for x, y in pts if x == 0]
    if base:
        rows.append(["Base", "–", "–", _f(base[0]), "–", "–"])
    def title(key):      # the method the grid's branch ran (curves without a method column: DAPO_dc)
        return pd.method_title(next((m for (d, st, m), pts in c.methods.items()
                                     if (d, st) == key and pts is c.rl[key]), DEFAULT_METHOD))

    for (ds, step), pts in sorted(c.rl.items()):
        if step == 0:
            add(f"{title((ds, step))} from the base", "Pure RL", pts)
            break
    for ds, pts in sorted(c.sft.items()):
        add(ds, "SFT", pts, loss=min_losses.get(ds))
    for (ds, step), pts in sorted(c.rl.items()):
        if step > 0:
            add(f"{ds} @ {step} → {title((ds, step))}", "SFT-then-RL", pts)
    starts = pd.overall(list(paradigms))
    order = pd.method_order(starts)
    for (ds, step), methods in starts.items():
        for m in (m for m in order if m in methods):
            sync = m in METHODS and METHODS[m].paradigm == "sync"
            kind = "Syn-SFT-RL" if sync else ("Pure RL" if ds == "pure_rl" else "SFT-then-RL")
            pts = methods[m]
            add(f"{pd.method_title(m)} ({pd.start_label(ds, step)})", kind, pts, x0=pts[0][0])
    notes = ["Start: the accuracy where the run starts (the base for pure RL and SFT, the SFT checkpoint "
             "for a branch; – where the curves do not list it). maxP_post: the best overall accuracy of "
             "the evaluations after the start (RL steps > 0; an SFT set's checkpoints), so it lies below "
             "the start where the run only lost accuracy. Final: the last evaluation."]
    render(["Method", "Paradigm", "Start", "maxP_post", "Final", "Min. val loss"], rows, prefix,
           "Table 1: best accuracy after the start per paradigm", notes)


def table2(branches: list[dict], prefix) -> None:
    """The RL settings of every paradigm as run (``rl_settings.settings_table``)."""
    from plasticity.analysis.rl_settings import settings_table

    header, rows = settings_table(branches)
    notes = ["Values as the runs used them (each branch's manifest.json; precision as run: bf16 needs a "
             "GPU, fp32 otherwise). Where branches of one method differ, each value is listed with the "
             "starts that used it. The loss recipe per method is plasticity.methods'."]
    render(header, rows, prefix, "Table 2: RL settings per paradigm", notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plasticity table",
                                description="Render one of the study's tables (md, tex, csv) from "
                                            "result files; see the module docstring for inputs.")
    p.add_argument("--name", required=True, choices=TABLES)
    p.add_argument("--fits", help="FITS.csv (table4, table5, table6)")
    p.add_argument("--curves", help="curves CSV (table1)")
    p.add_argument("--branch", action="append", default=[], metavar="DIR",
                   help="a finished RL branch directory (table2; repeat for every branch)")
    p.add_argument("--val-loss", action="append", default=[], metavar="DATASET=VAL.json")
    p.add_argument("--min-loss", action="append", default=[],
                   metavar="DATASET=VAL.json|DATASET=NUMBER|FILE.csv")
    p.add_argument("--out-prefix", required=True, help="writes PREFIX.md, PREFIX.tex, PREFIX.csv")
    args = p.parse_args(argv)
    from plasticity.analysis.artifacts import FitError, read_curve_rows, read_fits
    from plasticity.analysis.regimes import RegimeError
    from plasticity.analysis.rl_settings import SettingsError, read_branch

    try:
        need = {"table1": "curves", "table2": "branch", "table4": "fits", "table5": "fits",
                "table6": "fits"}[args.name]
        if not getattr(args, need):
            raise TableError(f"{args.name} needs --{need}")
        if args.name == "table1":
            from plasticity.analysis.paradigms import NAME, read_paradigms
            table1(read_curve_rows(args.curves), parse_min_losses(args.min_loss), args.out_prefix,
                   read_paradigms(Path(args.curves).with_name(NAME)))
        elif args.name == "table2":
            table2([read_branch(d) for d in args.branch], args.out_prefix)
        else:
            fits = read_fits(args.fits)
            if args.name == "table4":
                table4(fits, parse_val_losses(args.val_loss), args.out_prefix)
            elif args.name == "table5":
                table5(fits, parse_min_losses(args.min_loss), args.out_prefix)
            else:
                table6(fits, parse_val_losses(args.val_loss), args.out_prefix)
    except (TableError, FitError, RegimeError, SettingsError, ValueError, OSError) as exc:
        print(f"table: error: {exc}", file=sys.stderr)
        return 2
    print(f"table: {args.name} -> {args.out_prefix}.{{md,tex,csv}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
