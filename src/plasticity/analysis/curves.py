"""Collect result files into one curves CSV in the study's layout (schema.CURVE columns).

Output rows: dataset, branch_step, phase, x_ef, benchmark, accuracy, sorted by dataset, phase,
branch_step, x_ef, benchmark. Every evaluated point gets one row per benchmark role plus an
``overall`` row (the evaluation's micro-average), which the fitter uses as it is.

Inputs (written by the other stages):
- ``--sft-run DATASET=RUN_DIR``: ``train_stats.json`` ({"model_dir", "batch_size", "mean_seq_len",
  "steps"}) gives x_sft = step * flops.sft_step_flops(constants, batch_size, mean_seq_len) / 1e18, with the
  constants from RUN_DIR/checkpoint-<step>/config.json (else model_dir/config.json).
- ``--sft-eval DATASET:STEP=EVAL_DIR``: ``summary.json`` ({"benchmarks": {name: {"role", "accuracy",
  "n_problems"}}, "micro", "macro"}) of that SFT checkpoint: one SFT point at its x_sft.
- ``--base-eval EVAL_DIR``: the base model's summary.json: the x = 0 SFT point of every dataset named by
  --sft-run.
- ``--rl BRANCH_DIR``: ``curve.csv`` (rl_step, x_ef, benchmark, accuracy; step 0 = the branch point) and
  ``branch.json`` ({"sft_data", "switch", "resolved_step", "method"}). sft_data ``none`` becomes dataset
  ``pure_rl`` with branch_step 0. When the curve has no ``overall`` rows they are not invented: the
  fitter micro-averages with weights.json.
- ``--import CSV``: rows of an existing curves CSV (e.g. the study's published curves), kept unchanged.
- ``--method NAME``: the SFT-then-RL grid's method; branches of any other method (the paradigm
  comparison) go to ``paradigms.csv`` beside the CSV (``analysis.paradigms``) instead. Without it every
  branch is a curve.

Beside the CSV it writes ``weights.json`` (role -> n_problems from the summaries; absent when there is
no summary) and ``branches.csv`` (dataset, sft_step, x_sft_ef of every RL branch, the fitter's
--hparams without hyperparameters, so tau and alpha are chosen per branch).

By hand:

    python -m plasticity curves --sft-run uniform=results/tiny/sft/uniform \
        --sft-eval uniform:200=results/tiny/eval/sft-uniform-200 --base-eval results/tiny/eval/base \
        --rl results/tiny/rl/uniform@200/dapo --out results/tiny/curves/curves.csv
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from plasticity.analysis import flops
from plasticity.analysis.paradigms import NAME as PARADIGMS, write_paradigms
from plasticity.io import atomic_path, read_csv_rows, read_json_checked, write_json

COLUMNS = ["dataset", "branch_step", "phase", "x_ef", "benchmark", "accuracy"]


class CurvesError(ValueError):
    """A result file is missing or malformed; the message names the file and field."""


def _read_json(path: Path) -> dict:
    obj = read_json_checked(path, CurvesError)
    if not isinstance(obj, dict):
        raise CurvesError(f"{path}: expected a JSON object")
    return obj


def _number(obj: dict, key: str, where: str) -> float:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CurvesError(f"{where}: field {key!r} must be a finite number, got {v!r}")
    return float(v)


def sft_ef_per_step(run_dir: str | Path, step: int | None = None) -> float:
    """SFT compute per step (EF) of a run, from train_stats.json and the model's config.json."""
    run_dir = Path(run_dir)
    stats_path = run_dir / "train_stats.json"
    stats = _read_json(stats_path)
    batch = _number(stats, "batch_size", str(stats_path))
    seq = _number(stats, "mean_seq_len", str(stats_path))
    candidates = []
    if step is not None:
        candidates.append(run_dir / f"checkpoint-{step}")
    candidates += sorted(run_dir.glob("checkpoint-*"))
    if stats.get("model_dir"):
        candidates.append(Path(stats["model_dir"]))
    for d in candidates:
        if (d / "config.json").is_file():
            m = flops.ModelConstants.from_model_dir(d)
            return flops.sft_step_flops(m, int(batch), seq) / flops.EF
    raise CurvesError(f"{run_dir}: no config.json in a checkpoint-<step>/ directory or in "
                      f"train_stats.json's model_dir to take the model's constants from")


def read_summary(eval_dir: str | Path) -> tuple[dict[str, float], dict[str, int], float | None]:
    """(role -> accuracy, role -> n_problems, micro) from an evaluation dir's summary.json."""
    path = Path(eval_dir) / "summary.json"
    obj = _read_json(path)
    benches = obj.get("benchmarks")
    if not isinstance(benches, dict) or not benches:
        raise CurvesError(f"{path}: field 'benchmarks' must be a non-empty object")
    acc, counts = {}, {}
    for name, b in sorted(benches.items()):
        where = f"{path}: benchmarks.{name}"
        if not isinstance(b, dict) or not isinstance(b.get("role"), str):
            raise CurvesError(f"{where}: needs a string field 'role'")
        role = b["role"]
        if role in acc:
            raise CurvesError(f"{where}: role {role!r} appears twice")
        acc[role] = _number(b, "accuracy", where)
        counts[role] = int(_number(b, "n_problems", where))
    micro = obj.get("micro")
    return acc, counts, (float(micro) if isinstance(micro, (int, float)) else None)


def _eval_rows(dataset: str, x: float, eval_dir: str, weights: dict[str, int]) -> list[dict]:
    acc, counts, micro = read_summary(eval_dir)
    for role, n in counts.items():
        if weights.setdefault(role, n) != n:
            raise CurvesError(f"{eval_dir}/summary.json: role {role!r} has n_problems {n}, another "
                              f"evaluation has {weights[role]}; the suites differ")
    rows = [{"dataset": dataset, "branch_step": None, "phase": "sft", "x_ef": x, "benchmark": r,
             "accuracy": a} for r, a in acc.items()]
    if micro is not None:
        rows.append({"dataset": dataset, "branch_step": None, "phase": "sft", "x_ef": x,
                     "benchmark": "overall", "accuracy": micro})
    return rows


def read_branch(branch_dir: str | Path) -> list[dict]:
    """Rows of an RL branch's curve.csv, tagged with its dataset and branch step."""
    branch_dir = Path(branch_dir)
    meta_path = branch_dir / "branch.json"
    meta = _read_json(meta_path)
    sft_data = meta.get("sft_data")
    step = meta.get("resolved_step")
    if not isinstance(sft_data, str) or isinstance(step, bool) or not isinstance(step, int):
        raise CurvesError(f"{meta_path}: needs string 'sft_data' and integer 'resolved_step'")
    dataset = "pure_rl" if sft_data == "none" else sft_data
    if sft_data == "none":
        step = 0
    path = branch_dir / "curve.csv"
    _, lines = read_csv_rows(path, ("rl_step", "x_ef", "benchmark", "accuracy"), CurvesError)
    rows = []
    for line, r in lines:
        try:
            x, acc = float(r["x_ef"]), float(r["accuracy"])
        except ValueError:
            raise CurvesError(f"{path}:{line}: fields 'x_ef' and 'accuracy' must be numbers, got "
                              f"{r['x_ef']!r}, {r['accuracy']!r}") from None
        if not (math.isfinite(x) and x >= 0 and math.isfinite(acc)):
            raise CurvesError(f"{path}:{line}: x_ef must be finite >= 0 and accuracy finite")
        rows.append({"dataset": dataset, "branch_step": step, "phase": "rl", "x_ef": x,
                     "benchmark": r["benchmark"], "accuracy": acc})
    return rows


def _split(spec: str, sep: str, what: str) -> tuple[str, str]:
    if sep not in spec:
        raise CurvesError(f"{what} {spec!r}: expected NAME{sep}VALUE")
    a, b = spec.split(sep, 1)
    return a.strip(), b.strip()


def collect(sft_runs=(), sft_evals=(), base_eval=None, rl_dirs=(), imports=(),
            method: str | None = None) -> tuple[list, dict, list, list]:
    """(curve rows, weights, branches, paradigm rows) from the result directories (see the module docstring)."""
    runs = dict(_split(s, "=", "--sft-run") for s in sft_runs)
    weights: dict[str, int] = {}
    rows: list[dict] = []
    for spec in sft_evals:
        key, eval_dir = _split(spec, "=", "--sft-eval")
        dataset, step_text = _split(key, ":", "--sft-eval")
        if dataset not in runs:
            raise CurvesError(f"--sft-eval {spec!r}: no --sft-run for dataset {dataset!r}")
        step = int(step_text)
        rows += _eval_rows(dataset, step * sft_ef_per_step(runs[dataset], step), eval_dir, weights)
    if base_eval:
        for dataset in sorted(runs):
            rows += _eval_rows(dataset, 0.0, base_eval, weights)
    branches, paradigms = [], []
    for d in rl_dirs:
        brows = read_branch(d)
        if not brows:
            continue
        ds, step = brows[0]["dataset"], brows[0]["branch_step"]
        x_sft = step * sft_ef_per_step(runs[ds], step) if (ds in runs and step) else 0.0
        branch_method = _read_json(Path(d) / "branch.json").get("method")
        if method is not None and branch_method != method:
            paradigms += [{**r, "method": branch_method, "x_sft_ef": x_sft} for r in brows]
            continue
        rows += brows
        branches.append({"dataset": ds, "sft_step": step, "x_sft_ef": x_sft})
    for path in imports:
        from plasticity.analysis.artifacts import FitError, read_curve_rows
        try:
            imported = read_curve_rows(path)
        except FitError as exc:
            raise CurvesError(str(exc)) from None
        rows += [{k: r[k] for k in COLUMNS + ["method"]} for r in imported]
    return rows, weights, sorted(branches, key=lambda b: (b["dataset"], b["sft_step"])), paradigms


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)   # shortest round-trip form: imported values are written as they were read
    return str(v)


def write_curves(rows: list[dict], out: str | Path) -> None:
    """The curves CSV; the optional ``method`` column is written only when some RL row was run with
    another method than the grid's (``artifacts.DEFAULT_METHOD``), so grid-only curves keep the
    reference layout."""
    from plasticity.analysis.artifacts import DEFAULT_METHOD

    methods = any(r.get("method") not in (None, "", DEFAULT_METHOD) for r in rows)
    columns = COLUMNS + ["method"] if methods else COLUMNS
    key = lambda r: (r["dataset"], r["phase"], -1 if r["branch_step"] is None else r["branch_step"],
                     r.get("method") or "", r["x_ef"], r["benchmark"])
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(columns)
            for r in sorted(rows, key=key):
                w.writerow([_fmt(r.get(c)) for c in columns])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plasticity curves",
                                description="Collect SFT / RL result files into a curves CSV "
                                            "(plus weights.json, branches.csv and paradigms.csv beside it).")
    p.add_argument("--sft-run", action="append", default=[], metavar="DATASET=RUN_DIR")
    p.add_argument("--sft-eval", action="append", default=[], metavar="DATASET:STEP=EVAL_DIR")
    p.add_argument("--base-eval", metavar="EVAL_DIR", help="base model evaluation: x = 0 of every dataset")
    p.add_argument("--rl", action="append", default=[], metavar="BRANCH_DIR")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="CSV",
                   help="take the rows of an existing curves CSV unchanged")
    p.add_argument("--method", help="the SFT-then-RL grid's method: other methods' branches go to "
                                    "paradigms.csv")
    p.add_argument("--out", required=True, help="curves CSV to write")
    args = p.parse_args(argv)
    try:
        rows, weights, branches, paradigms = collect(args.sft_run, args.sft_eval, args.base_eval, args.rl,
                                                     args.imports, args.method)
    except (CurvesError, ValueError, FileNotFoundError) as exc:
        print(f"curves: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_curves(rows, out)
    if weights:
        write_json(out.with_name("weights.json"), dict(sorted(weights.items())))
    with atomic_path(out.with_name("branches.csv")) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["dataset", "sft_step", "x_sft_ef"])
            for b in branches:
                w.writerow([b["dataset"], b["sft_step"], repr(float(b["x_sft_ef"]))])
    write_paradigms(paradigms, out.with_name(PARADIGMS))
    print(f"curves: {len(rows)} rows -> {out}, {len(paradigms)} paradigm-comparison rows -> {PARADIGMS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
