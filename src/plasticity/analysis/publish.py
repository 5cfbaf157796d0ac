"""Stage ``publish``: a study's report as committed files, everything its README may quote.

``python -m plasticity publish [--configfile CFG] [--workdir DIR] [--out OUT]`` reads a finished study
(the config's ``results_dir`` and ``reports_dir`` under DIR, default the checkout) and writes OUT
(default: the config's ``reports_dir``, or ``reports/default`` for the embedded default, whose
``reports/`` tables are DVC outputs and not committed):

    OUT/tables/*.{md,tex,csv}, OUT/figures/figure{2,3,8}.png, OUT/metrics.json    copied from reports_dir
    OUT/data/curves.csv, fits.csv, paradigms.csv, branches.csv, weights.json      the report's inputs
    OUT/data/branch_curves.csv   every RL branch's evaluations: dataset, sft_step, switch, method,
                                 rl_step, x_ef, benchmark, accuracy, stderr (percent; stderr over
                                 problems, as the branch's curve.csv)
    OUT/data/sft_evals.csv       the base and every SFT checkpoint's evaluation: dataset, step, benchmark
                                 (role, or overall = micro-average over problems), accuracy, stderr,
                                 n_problems; stderr from samples.parquet (problems are the unit: avg@k
                                 samples of one problem are averaged first, eval.metrics.standard_error)
    OUT/data/val_loss.csv        dataset, step, val_loss, regime (regimes.label_regimes)
    OUT/figures/branch_curves.png  per SFT set and start, each branch's overall accuracy against RL
                                   step with +-1 standard error
    OUT/figures/val_loss.png       validation loss per SFT set against step, regime of each checkpoint
    OUT/provenance.json          config file, seeds, git revision, CPU kernel mode, the hashes of the
                                 data sets and the base model (the data world seeds are compared on)
    OUT/findings.{md,csv}        the findings of this run alone (``findings.py``; single seed)

Each file is written atomically; the stage is rerunnable (it replaces OUT's files, nothing else).
``bash run.sh publish [--configfile CFG]`` runs the study, then this.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

from plasticity.io import atomic_path, read_json, sha256_tree, write_json

DATA_FILES = ("curves.csv", "fits.csv", "paradigms.csv", "branches.csv", "weights.json")
BRANCH_COLUMNS = ["dataset", "sft_step", "switch", "method", "rl_step", "x_ef", "benchmark", "accuracy", "stderr"]
SFT_COLUMNS = ["dataset", "step", "benchmark", "accuracy", "stderr", "n_problems"]
VAL_COLUMNS = ["dataset", "step", "val_loss", "regime"]


class PublishError(ValueError):
    """A study output the report needs is missing; the message names it."""


def default_out(cfg) -> str:
    reports = cfg.reports_dir.rstrip("/")
    return "reports/default" if reports == "reports" else reports


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)


def branch_rows(branch_dir: Path) -> list[dict]:
    """Rows of ``branch_curves.csv`` for one finished RL branch."""
    meta = read_json(branch_dir / "branch.json")
    dataset = "pure_rl" if meta["sft_data"] == "none" else meta["sft_data"]
    with open(branch_dir / "curve.csv", newline="", encoding="utf-8") as fh:
        return [{"dataset": dataset, "sft_step": meta["resolved_step"], "switch": meta["switch"],
                 "method": meta["method"], **{k: r[k] for k in ("rl_step", "x_ef", "benchmark", "accuracy",
                                                                 "stderr")}}
                for r in csv.DictReader(fh)]


def eval_rows(dataset: str, step: int, scores_dir: Path) -> list[dict]:
    """Per benchmark role and overall: accuracy (summary.json) and its standard error over problems."""
    import pyarrow.parquet as pq

    from plasticity.eval.metrics import standard_error

    summary = read_json(scores_dir / "summary.json")
    rows, pooled = [], []
    for name, bench in sorted(summary["benchmarks"].items()):
        table = pq.read_table(scores_dir / name / "samples.parquet", columns=["problem_id", "correct"])
        per: dict[str, list[bool]] = {}
        for pid, ok in zip(table.column("problem_id").to_pylist(), table.column("correct").to_pylist()):
            per.setdefault(pid, []).append(bool(ok))
        acc = [sum(v) / len(v) for v in per.values()]
        pooled += acc
        rows.append({"dataset": dataset, "step": step, "benchmark": bench.get("role") or name,
                     "accuracy": f"{bench['accuracy']:.4f}", "stderr": f"{standard_error(acc):.4f}",
                     "n_problems": len(acc)})
    rows.append({"dataset": dataset, "step": step, "benchmark": "overall", "accuracy": f"{summary['micro']:.4f}",
                 "stderr": f"{standard_error(pooled):.4f}", "n_problems": len(pooled)})
    return rows


def val_rows(dataset: str, val_json: Path, regimes) -> list[dict]:
    from plasticity.analysis.regimes import label_regimes, read_val_loss

    steps, losses = read_val_loss(val_json)
    labels = label_regimes(steps, losses, regimes.delta, regimes.delta2)
    return [{"dataset": dataset, "step": s, "val_loss": repr(float(v)), "regime": lab}
            for s, v, lab in zip(steps, losses, labels)]


def publish(cfg, workdir: Path, out: Path, configfile: str) -> list[Path]:
    """Write the report bundle (module docstring); returns the files written."""
    from plasticity import cpu_kernels
    from plasticity.io import git_revision

    results = workdir / cfg.results_dir
    reports = workdir / cfg.reports_dir
    model = cfg.report.model or sorted({r.model for r in cfg.sft.runs} | {b.model for b in cfg.rl.branches})[0]
    report = results / "report" / model
    need = [report / "curves.csv", report / "fits.csv", reports / "metrics.json"]
    missing = [str(p) for p in need if not p.is_file()]
    if missing:
        raise PublishError(f"the study is not finished: missing {missing} (run it first)")
    written: list[Path] = []
    same = out.resolve() == reports.resolve()
    for sub in ("tables", "figures"):
        for src in sorted((reports / sub).glob("*")) if not same else []:
            dst = out / sub / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            written.append(dst)
    if not same:
        shutil.copyfile(reports / "metrics.json", out / "metrics.json")
        written.append(out / "metrics.json")
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        if (report / name).is_file():
            shutil.copyfile(report / name, data / name)
            written.append(data / name)
    branches = []
    for b in cfg.rl.branches:
        if b.model != model:
            continue
        d = results / model / "rl" / f"{b.sft_data}@{b.switch}" / (b.method or cfg.rl.defaults.method)
        if not (d / "manifest.json").is_file():
            raise PublishError(f"{d}: RL branch not finished")
        branches += branch_rows(d)
    _write_csv(data / "branch_curves.csv", BRANCH_COLUMNS, branches)
    evals = eval_rows("base", 0, results / model / "eval" / "base" / "scores")
    vals = []
    for run in (r for r in cfg.sft.runs if r.model == model):
        for step in run.save_steps:
            evals += eval_rows(run.data, step, results / model / "eval" / "sft" / run.data / str(step) / "scores")
        vals += val_rows(run.data, results / model / "sft" / run.data / "val_loss.json", cfg.sft.regimes)
    _write_csv(data / "sft_evals.csv", SFT_COLUMNS, evals)
    _write_csv(data / "val_loss.csv", VAL_COLUMNS, vals)
    written += [data / "branch_curves.csv", data / "sft_evals.csv", data / "val_loss.csv"]
    from plasticity.analysis.report_figures import branch_curves_figure, val_loss_figure

    branch_curves_figure(data / "branch_curves.csv", out / "figures" / "branch_curves.png")
    val_loss_figure(data / "val_loss.csv", out / "figures" / "val_loss.png")
    written += [out / "figures" / "branch_curves.png", out / "figures" / "val_loss.png"]
    sets = results / "data" / "sets"
    write_json(out / "provenance.json", {
        "configfile": configfile, "seed": cfg.seed, "train_seed": getattr(cfg, "train_seed", None),
        "results_dir": cfg.results_dir, "git_revision": git_revision(),
        "cpu_kernels": cpu_kernels.describe()["mode"],
        "data_sets_sha256": sha256_tree(sets) if sets.is_dir() else None,
        "base_model_sha256": sha256_tree(results / model / "base" / "model.safetensors")
        if (results / model / "base" / "model.safetensors").is_file() else None,
    })
    written.append(out / "provenance.json")
    from plasticity.analysis import findings

    bundle = [findings.read_bundle(out)]      # this run alone: every finding labelled single seed
    kinds = {name: spec.kind for name, spec in cfg.data.sets.items()}
    findings.write(findings.aggregate(bundle, kinds, cfg.rl.defaults.method), out / "findings", bundle)
    return written + [out / "findings.md", out / "findings.csv"]


def main(argv: list[str] | None = None) -> int:
    from plasticity.config import ConfigError, load_config

    p = argparse.ArgumentParser(prog="python -m plasticity publish", description=__doc__.split("\n")[0])
    p.add_argument("--configfile", default="config.yaml", help="the study's config (default config.yaml)")
    p.add_argument("--workdir", default=".", help="where the study ran (default: here)")
    p.add_argument("--out", help="report directory (default: reports_dir, reports/default for reports)")
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="top-level overrides as given to snakemake --config (results_dir, reports_dir, train_seed)")
    args = p.parse_args(argv)
    try:
        overrides = {}
        for item in args.config:
            key, _, value = item.partition("=")
            overrides[key] = int(value) if value.lstrip("-").isdigit() else value
        cfg = load_config(args.configfile, overrides)
        out = Path(args.out or default_out(cfg))
        files = publish(cfg, Path(args.workdir), out, args.configfile)
    except (PublishError, ConfigError, OSError, KeyError, ValueError) as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return 2
    print(f"publish: {len(files)} files -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
