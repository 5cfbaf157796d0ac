"""Reading and writing the fit's artifacts against their declared columns (library).

- Curves CSV (``schema.CURVE``: dataset, branch_step, phase, x_ef, benchmark, accuracy; optional
  ``method``, the RL method of a branch, default ``DEFAULT_METHOD``): ``read_curve_rows`` validates every
  row and ``overall_curves`` micro-averages each point over the weighted benchmarks (``DEFAULT_WEIGHTS``,
  the study's 2,157-problem suite, or a weights JSON role -> problem count; rows with benchmark
  ``overall`` are used as they are; benchmarks without a weight are ignored).
- HPARAMS.csv (``read_hparams``): dataset, sft_step, x_sft_ef and optionally outlier_tau, lts_alpha,
  eps and regime (the layout of ``reference/sft889k_table4.csv``).
- FITS.csv (``FIT_COLUMNS``; ``write_csv`` / ``read_fits``): one row per branch, floats with 12
  significant digits so tiny-model compute (1e-6 EF) keeps its value.
- Minimum validation losses per SFT set (``read_min_losses``): a CSV dataset, min_val_loss (the
  layout of ``reference/min_val_loss.csv``).

Every error names the file, the line and the field.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plasticity.io import read_csv_rows

DEFAULT_WEIGHTS = {"gsm8k": 1317, "olympiad_bench": 291, "minerva": 262, "math": 237, "aime": 25,
                   "aime25": 25}
DEFAULT_METHOD = "dapo_dc"     # the SFT-then-RL grid's RL method (PAPER 6.B); curves without a method column
REGIMES = ("adaptive", "stable", "mild", "severe")

# FITS.csv: name -> kind ("text", "int" or "float"), in column order
FIT_SCHEMA = {
    "dataset": "text", "sft_step": "int", "x_sft_ef": "float", "p_sft": "float", "a_post": "float",
    "pl_rl": "float", "cmid_ef": "float", "b": "float", "eps": "float", "eps_mode": "text",
    "rmse_val": "float", "r2_train": "float", "n_points": "float", "n_outliers": "float",
    "n_trimmed": "float", "tau": "text", "alpha": "text", "hparams": "text", "max_obs": "float",
    "x_last_ef": "float", "collapsed": "text", "status": "text", "u_fit": "float", "regime": "text",
    "max_post": "float",
}
FIT_COLUMNS = list(FIT_SCHEMA)
MIN_LOSS_COLUMNS = ("dataset", "min_val_loss")


class FitError(ValueError):
    """Bad fit input; the message names the file, row and field."""


@dataclass
class Curves:
    """Overall (micro-averaged) points, each list sorted by x.

    ``sft[dataset]``: the SFT curve; ``rl[(dataset, branch_step)]``: the grid's RL branches (method
    ``DEFAULT_METHOD``, else the first method by name; the ones Table 4 fits); ``methods[(dataset, branch_step, method)]``: every RL
    curve by method (Figure 2); ``per_benchmark[(dataset, branch_step)][benchmark]``: the grid's
    branches per benchmark.
    """
    sft: dict[str, list[tuple[float, float]]]
    rl: dict[tuple[str, int], list[tuple[float, float]]]
    per_benchmark: dict[tuple[str, int], dict[str, list[tuple[float, float]]]]
    methods: dict[tuple[str, int, str], list[tuple[float, float]]] = field(default_factory=dict)


def read_curve_rows(path: str | Path) -> list[dict]:
    """Rows of a curves CSV, validated; errors name the file, the line and the field."""
    path = Path(path)
    from plasticity.schema import CURVE

    cols, lines = read_csv_rows(path, CURVE.names, FitError)
    has_method = "method" in cols
    rows = []
    for line, row in lines:
        where = f"{path}:{line}"
        phase = row["phase"].strip()
        if phase not in ("sft", "rl"):
            raise FitError(f"{where}: field 'phase' must be sft or rl, got {row['phase']!r}")
        try:
            x = float(row["x_ef"])
            acc = float(row["accuracy"])
        except ValueError:
            raise FitError(f"{where}: fields 'x_ef' and 'accuracy' must be numbers, got "
                           f"{row['x_ef']!r}, {row['accuracy']!r}") from None
        if not (math.isfinite(x) and x >= 0):
            raise FitError(f"{where}: field 'x_ef' must be finite and >= 0, got {row['x_ef']!r}")
        if not math.isfinite(acc):
            raise FitError(f"{where}: field 'accuracy' is not finite")
        branch = (row["branch_step"] or "").strip()
        if phase == "rl":
            try:
                branch_step = int(float(branch))
            except ValueError:
                raise FitError(f"{where}: field 'branch_step' must be an integer for phase rl, "
                               f"got {branch!r}") from None
        else:
            branch_step = None
        if not row["dataset"].strip() or not row["benchmark"].strip():
            raise FitError(f"{where}: fields 'dataset' and 'benchmark' must not be empty")
        method = ((row["method"] or "").strip() if has_method else "") or DEFAULT_METHOD
        rows.append({"dataset": row["dataset"].strip(), "branch_step": branch_step,
                     "phase": phase, "x_ef": x, "benchmark": row["benchmark"].strip(),
                     "accuracy": acc, "method": method if phase == "rl" else "", "where": where})
    return rows


def overall_curves(rows: list[dict], weights: dict[str, float] | None = None,
                   source: str = "curves") -> Curves:
    """Micro-average each (dataset, phase, branch, x) point over the weighted benchmarks."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    points: dict[tuple, dict[str, float]] = {}
    for r in rows:
        key = (r["dataset"], r["phase"], r["branch_step"], r.get("method") or "", r["x_ef"])
        bench = points.setdefault(key, {})
        if r["benchmark"] in bench:
            raise FitError(f"{r['where']}: duplicate row for {key} benchmark {r['benchmark']!r}")
        bench[r["benchmark"]] = r["accuracy"]
    sft: dict[str, list] = {}
    methods: dict[tuple, list] = {}
    per_bench: dict[tuple, dict[str, list]] = {}
    total = sum(weights.values())
    for (ds, phase, branch, method, x), bench in sorted(points.items(), key=lambda kv: (
            kv[0][0], kv[0][1], -1 if kv[0][2] is None else kv[0][2], kv[0][3], kv[0][4])):
        if "overall" in bench:
            y = bench["overall"]
        else:
            missing = sorted(set(weights) - set(bench))
            if missing:
                raise FitError(f"{source}: dataset {ds} phase {phase} branch {branch} x_ef {x}: "
                               f"no accuracy for benchmark(s) {missing} (and no 'overall' row)")
            y = sum(weights[b] * bench[b] for b in weights) / total
        if phase == "sft":
            sft.setdefault(ds, []).append((x, y))
        else:
            methods.setdefault((ds, branch, method), []).append((x, y))
            for b, acc in bench.items():
                if b != "overall":
                    per_bench.setdefault((ds, branch, method), {}).setdefault(b, []).append((x, acc))
    # the branch Table 4 fits: DEFAULT_METHOD's curve, else the first method by name (a grid run
    # with another RL method); the other methods' curves are Figure 2's
    grid: dict[tuple, str] = {}
    for ds, b, m in sorted(methods):
        if (ds, b) not in grid or m == DEFAULT_METHOD:
            grid[(ds, b)] = m
    rl = {key: methods[(*key, m)] for key, m in grid.items()}
    per = {key: per_bench[(*key, m)] for key, m in grid.items() if (*key, m) in per_bench}
    return Curves(sft=sft, rl=rl, per_benchmark=per, methods=methods)


def read_weights(path: str | Path) -> dict[str, float]:
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as exc:
        raise FitError(f"{path}: cannot read weights ({exc})") from None
    if not isinstance(obj, dict) or not obj:
        raise FitError(f"{path}: expected a JSON object role -> problem count")
    for k, v in obj.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise FitError(f"{path}: weight of {k!r} must be a positive number, got {v!r}")
    return {k: float(v) for k, v in obj.items()}


def _parse_optional(value: str | None, where: str, name: str, *, blank, words: tuple[str, ...]):
    text = (value or "").strip()
    if not text:
        return blank
    if text.lower() in words:
        return text.lower()
    try:
        return float(text)
    except ValueError:
        raise FitError(f"{where}: field {name!r} must be a number, blank or one of {words}, "
                       f"got {value!r}") from None


def read_hparams(path: str | Path, default_tau="auto", default_alpha="auto",
                 default_eps: float | str = 0.0) -> list[dict]:
    """Rows of an HPARAMS.csv (see the module docstring); absent columns take the defaults."""
    path = Path(path)
    cols, lines = read_csv_rows(path, ("dataset", "sft_step", "x_sft_ef"), FitError)
    out = []
    for line, row in lines:
        where = f"{path}:{line}"
        try:
            step = int(float(row["sft_step"]))
            x_sft = float(row["x_sft_ef"])
        except ValueError:
            raise FitError(f"{where}: fields 'sft_step' and 'x_sft_ef' must be numbers, got "
                           f"{row['sft_step']!r}, {row['x_sft_ef']!r}") from None
        tau = (_parse_optional(row["outlier_tau"], where, "outlier_tau", blank=default_tau,
                               words=("auto",)) if "outlier_tau" in cols else default_tau)
        alpha = (_parse_optional(row["lts_alpha"], where, "lts_alpha", blank=None,
                                 words=("auto",)) if "lts_alpha" in cols else default_alpha)
        eps = (_parse_optional(row["eps"], where, "eps", blank=0.0, words=("free",))
               if "eps" in cols else default_eps)
        if isinstance(alpha, float) and not 0.5 <= alpha < 1:
            raise FitError(f"{where}: field 'lts_alpha' must be in [0.5, 1), got {alpha}")
        regime = (row.get("regime") or "").strip().lower() if "regime" in cols else ""
        if regime and regime not in REGIMES:
            raise FitError(f"{where}: field 'regime' must be blank or one of {REGIMES}, "
                           f"got {row['regime']!r}")
        out.append({"dataset": row["dataset"].strip(), "sft_step": step, "x_sft_ef": x_sft,
                    "tau": tau, "alpha": alpha, "eps": eps, "regime": regime, "where": where})
    return out


def sft_value_at(sft: list[tuple[float, float]], x_sft: float, where: str) -> float:
    """Accuracy of the SFT point nearest x_sft (within 1% or 0.5 EF)."""
    if not sft:
        raise FitError(f"{where}: no SFT curve to read P_sft from")
    x, y = min(sft, key=lambda p: (abs(p[0] - x_sft), p[0]))
    if abs(x - x_sft) > max(0.5, 0.01 * abs(x_sft)):
        raise FitError(f"{where}: no SFT point near x_sft_ef={x_sft} (nearest {x})")
    return y


def _fmt(v) -> str:
    """A CSV field: floats at full precision (12 significant digits), so tiny values survive."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, str):
        return v
    if not math.isfinite(v):
        return ""
    return f"{float(v) + 0.0:.12g}"     # + 0.0: no "-0"


def write_csv(rows: list[dict], columns: list[str], out: str | Path) -> None:
    from plasticity.io import atomic_path

    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(columns)
            for r in rows:
                w.writerow([_fmt(r.get(c)) for c in columns])


def read_fits(path: str | Path) -> list[dict]:
    """FITS.csv rows typed by ``FIT_SCHEMA`` (NaN for blank floats); columns it does not declare
    are kept as text, so FITS files from older versions still read."""
    path = Path(path)
    _, lines = read_csv_rows(path, ("dataset", "sft_step", "p_sft", "a_post", "pl_rl"), FitError)
    rows = []
    for line, row in lines:
        out = {}
        for k, v in row.items():
            kind = FIT_SCHEMA.get(k, "text")
            try:
                out[k] = (v if kind == "text" else int(v) if kind == "int"
                          else float(v) if v != "" else float("nan"))
            except ValueError:
                raise FitError(f"{path}:{line}: field {k!r} must be "
                               f"{'an integer' if kind == 'int' else 'a number'}, got {v!r}") from None
        rows.append(out)
    return rows


def read_min_losses(path: str | Path) -> dict[str, float]:
    """Per-SFT-set minimum validation losses from a CSV with columns dataset, min_val_loss."""
    path = Path(path)
    _, lines = read_csv_rows(path, MIN_LOSS_COLUMNS, FitError)
    out: dict[str, float] = {}
    for line, row in lines:
        name = (row["dataset"] or "").strip()
        if not name:
            raise FitError(f"{path}:{line}: field 'dataset' must not be empty")
        if name in out:
            raise FitError(f"{path}:{line}: field 'dataset': {name!r} listed twice")
        try:
            value = float(row["min_val_loss"])
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise FitError(f"{path}:{line}: field 'min_val_loss' must be a positive number, "
                           f"got {row['min_val_loss']!r}")
        out[name] = value
    return out
