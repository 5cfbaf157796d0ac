"""Stage ``findings``: the study's findings graded by their evidence across seeds.

``python -m plasticity findings --configfile CFG --bundle DIR [--bundle DIR ...] --out PREFIX`` reads
one published report bundle per seed (``publish.py``: ``data/branch_curves.csv``, ``sft_evals.csv``,
``val_loss.csv``, ``curves.csv``, ``paradigms.csv``, ``provenance.json``) and writes PREFIX.md and
PREFIX.csv. The seeds must share the data world: their ``provenance.json`` data-set and base-model
hashes must agree (``config.train_seed`` varies training and evaluation only), else it stops.

Every finding is a paired difference computed within each seed (both sides from the same seed's
runs), then summarised across seeds: mean, standard error (sample standard deviation / sqrt(n)) and
the 95% interval of the t distribution with n - 1 degrees of freedom. The claimed direction is
positive. Verdicts: ``single seed`` (n = 1: no spread across seeds, nothing to grade),
``preliminary`` (n = 2), and for n >= 3 ``supported`` (the interval lies above 0), ``contradicted``
(below 0) or ``within noise`` (it contains 0).

Findings (all in accuracy points, overall micro-average; the sets by their config kind: ``all`` the
SFT889K role, ``uniform``, ``easy``, ``hard``):

- RL gain from each SFT-then-RL branch of the grid: its final evaluation minus its start (the
  branch point, evaluated in the branch's own run), paired per (set, switch rule); and the mean over
  the branches whose checkpoint is Adaptive, resp. Stable, in that seed (regimes from val_loss.csv).
  The final value, not the best: the maximum of several noisy evaluations is biased upwards.
- Data scale: the ``all`` set's SFT accuracy minus the ``uniform`` set's, at their last common
  checkpoint step; and the same for the final values of their Stable branches.
- Difficulty (Hard > Uniform > Easy): hard minus uniform and uniform minus easy, likewise.
- Sequential against synchronized at matched compute: for each synchronized method run from the base,
  the sequential path's accuracy at the compute the method spent (its last evaluation) minus the
  method's final accuracy. The sequential path is the reference set's (the paradigm comparison's SFT
  start, else the ``all`` set) SFT curve from the base through its checkpoints, continued by its
  Stable branch, interpolated linearly in compute.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from statistics import mean, stdev

from plasticity.io import atomic_path
from plasticity.methods import METHODS

COLUMNS = ["finding", "comparison", "n_seeds", "per_seed", "mean", "se", "ci95_low", "ci95_high", "verdict"]


class FindingsError(ValueError):
    """Bundles that cannot be compared (another data world, missing files); the message says which."""


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_bundle(bundle: Path) -> dict:
    """What one seed's report bundle holds for the findings."""
    data = bundle / "data"
    if not (data / "branch_curves.csv").is_file():
        raise FindingsError(f"{bundle}: no data/branch_curves.csv (publish the study first)")
    prov = json.loads((bundle / "provenance.json").read_text(encoding="utf-8")) \
        if (bundle / "provenance.json").is_file() else {}
    branches: dict[tuple, list[tuple[int, float, float]]] = {}
    for r in _rows(data / "branch_curves.csv"):
        if r["benchmark"] == "overall":
            key = (r["dataset"], int(r["sft_step"]), r["switch"], r["method"])
            branches.setdefault(key, []).append((int(r["rl_step"]), float(r["x_ef"]), float(r["accuracy"])))
    sft = {(r["dataset"], int(r["step"])): float(r["accuracy"])
           for r in _rows(data / "sft_evals.csv") if r["benchmark"] == "overall"}
    regimes = {(r["dataset"], int(r["step"])): r["regime"] for r in _rows(data / "val_loss.csv")}
    sft_x = {}
    for r in _rows(data / "curves.csv"):
        if r["phase"] == "sft" and r["benchmark"] == "overall":
            sft_x.setdefault(r["dataset"], []).append((float(r["x_ef"]), float(r["accuracy"])))
    x_sft = {(r["dataset"], int(r["sft_step"])): float(r["x_sft_ef"]) for r in _rows(data / "branches.csv")}
    return {"bundle": str(bundle), "provenance": prov, "branches": {k: sorted(v) for k, v in branches.items()},
            "sft": sft, "regimes": regimes, "sft_curve": {k: sorted(v) for k, v in sft_x.items()},
            "x_sft": x_sft,
            "paradigm_starts": {(r["dataset"], int(r["branch_step"])) for r in _rows(data / "paradigms.csv")}}


def check_same_world(bundles: list[dict]) -> None:
    for key in ("data_sets_sha256", "base_model_sha256"):
        values = {b["provenance"].get(key) for b in bundles}
        if len(values) > 1:
            raise FindingsError(f"the seeds do not share one data world: {key} differs between "
                                + ", ".join(f"{b['bundle']} ({b['provenance'].get(key)})" for b in bundles))


def _grid(b: dict, grid_method: str) -> dict[tuple, list]:
    return {k: v for k, v in b["branches"].items() if k[3] == grid_method and k[0] != "pure_rl"}


def _gain(points: list) -> float:
    start = next(acc for step, _, acc in points if step == 0)
    return points[-1][2] - start


def _interp(path: list[tuple[float, float]], x: float) -> float | None:
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def per_seed_values(b: dict, kinds: dict[str, str], grid_method: str) -> dict[tuple[str, str], float]:
    """{(finding, comparison): value} of one seed (module docstring)."""
    out: dict[tuple[str, str], float] = {}
    grid = _grid(b, grid_method)
    by_regime: dict[str, list[float]] = {}
    stable_final: dict[str, float] = {}
    for (ds, step, switch, _), pts in sorted(grid.items()):
        if not any(s == 0 for s, _, _ in pts) or len(pts) < 2:
            continue
        gain = _gain(pts)
        out[("RL gain (final − start)", f"{ds} @ {switch}")] = gain
        regime = b["regimes"].get((ds, step), "")
        by_regime.setdefault(regime, []).append(gain)
        if regime == "stable":
            stable_final[ds] = pts[-1][2]
    for regime, gains in sorted(by_regime.items()):
        if regime:
            out[("RL gain (final − start)", f"mean over {regime.capitalize()} checkpoints")] = mean(gains)
    pure = b["branches"].get(("pure_rl", 0, "0", grid_method))
    if pure and len(pure) > 1:
        out[("RL gain (final − start)", "pure RL from the base")] = _gain(pure)
    by_kind = {kind: name for name, kind in kinds.items()}
    last = {}
    for (ds, step), acc in b["sft"].items():
        if ds != "base" and step >= last.get(ds, (-1, 0))[0]:
            last[ds] = (step, acc)
    for finding, (a, c) in (("Data scale", ("all", "uniform")), ("Difficulty", ("hard", "uniform")),
                            ("Difficulty", ("uniform", "easy"))):
        na, nc = by_kind.get(a), by_kind.get(c)
        if na in last and nc in last and last[na][0] == last[nc][0]:
            out[(finding, f"SFT {na} − {nc} at step {last[na][0]}")] = last[na][1] - last[nc][1]
        if na in stable_final and nc in stable_final:
            out[(finding, f"after RL from Stable: {na} − {nc} (final)")] = stable_final[na] - stable_final[nc]
    ref = next((ds for ds, _ in sorted(b["paradigm_starts"]) if ds != "pure_rl"), by_kind.get("all"))
    if ref in b["sft_curve"]:
        path = list(b["sft_curve"][ref])
        stable = [(k, v) for k, v in grid.items() if k[0] == ref and b["regimes"].get((ref, k[1])) == "stable"]
        if stable:       # continued by the Stable branch, from its checkpoint's compute
            (ds, step, _, _), pts = stable[-1]
            x0 = b["x_sft"].get((ds, step))
            if x0 is not None:
                path += [(x0 + x, acc) for s, x, acc in pts if s > 0]
        path.sort()
        for (ds, step, _, method), pts in sorted(b["branches"].items()):
            if ds != "pure_rl" or method not in METHODS or METHODS[method].paradigm != "sync":
                continue
            seq = _interp(path, pts[-1][1])
            if seq is not None:
                out[("Sequential − synchronized at matched compute",
                     f"{ref} SFT(-then-RL) − {METHODS[method].title}")] = seq - pts[-1][2]
    return out


def summarise(values: list[float]) -> dict:
    """n, mean, SE and the t interval of paired differences, with the verdict (module docstring)."""
    from scipy import stats

    n = len(values)
    m = mean(values)
    if n < 2:
        return {"n": n, "mean": m, "se": math.nan, "low": math.nan, "high": math.nan, "verdict": "single seed"}
    se = stdev(values) / math.sqrt(n)
    half = float(stats.t.ppf(0.975, n - 1)) * se
    if n == 2:
        verdict = "preliminary (2 seeds)"
    elif m - half > 0:
        verdict = "supported"
    elif m + half < 0:
        verdict = "contradicted"
    else:
        verdict = "within noise"
    return {"n": n, "mean": m, "se": se, "low": m - half, "high": m + half, "verdict": verdict}


def aggregate(bundles: list[dict], kinds: dict[str, str], grid_method: str) -> list[dict]:
    check_same_world(bundles)
    seeds = [per_seed_values(b, kinds, grid_method) for b in bundles]
    keys = list(dict.fromkeys(k for s in seeds for k in s))
    rows = []
    for key in keys:
        values = [s[key] for s in seeds if key in s]
        res = summarise(values)
        rows.append({"finding": key[0], "comparison": key[1], "n_seeds": res["n"],
                     "per_seed": "; ".join(f"{v:.1f}" for v in values), "mean": f"{res['mean']:.2f}",
                     "se": _fmt(res["se"]), "ci95_low": _fmt(res["low"]), "ci95_high": _fmt(res["high"]),
                     "verdict": res["verdict"]})
    return rows


def _fmt(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.2f}"


def write(rows: list[dict], prefix: Path, bundles: list[dict]) -> None:
    with atomic_path(prefix.with_suffix(".csv")) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    lines = ["**Findings graded by their evidence across seeds** (accuracy points; paired within each seed)", "",
             "| Finding | Comparison | Seeds | Per seed | Mean | SE | 95% interval | Verdict |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['finding']} | {r['comparison']} | {r['n_seeds']} | {r['per_seed']} | {r['mean']} | {r['se']} | "
              f"{r['ci95_low']} .. {r['ci95_high']} | {r['verdict']} |" for r in rows]
    lines += ["", "- Seeds (report bundles): " + ", ".join(
        f"{b['bundle']} (train_seed {b['provenance'].get('train_seed') or b['provenance'].get('seed')})"
        for b in bundles) + "; one data world (identical data sets and base model).",
              "- Each value is a difference within one seed; SE = standard deviation across seeds / sqrt(n); "
              "the interval is the t distribution's with n − 1 degrees of freedom. Verdicts: single seed "
              "(n = 1), preliminary (n = 2); from 3 seeds supported / contradicted when the interval lies "
              "above / below 0, else within noise. Definitions: plasticity.analysis.findings."]
    with atomic_path(prefix.with_suffix(".md")) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from plasticity.config import ConfigError, load_config

    p = argparse.ArgumentParser(prog="python -m plasticity findings", description=__doc__.split("\n")[0])
    p.add_argument("--configfile", required=True, help="the study's config (set kinds, the grid's method)")
    p.add_argument("--bundle", action="append", required=True, metavar="DIR",
                   help="a published report bundle of one seed (repeat per seed)")
    p.add_argument("--out", required=True, help="writes PREFIX.md and PREFIX.csv")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.configfile)
        kinds = {name: s.kind for name, s in cfg.data.sets.items()}
        bundles = [read_bundle(Path(d)) for d in args.bundle]
        rows = aggregate(bundles, kinds, cfg.rl.defaults.method)
        write(rows, Path(args.out), bundles)
    except (FindingsError, ConfigError, OSError, ValueError, KeyError) as exc:
        print(f"findings: error: {exc}", file=sys.stderr)
        return 2
    print(f"findings: {len(rows)} comparisons over {len(bundles)} seed(s) -> {args.out}.{{md,csv}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
