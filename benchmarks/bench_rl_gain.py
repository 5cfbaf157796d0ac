"""RL gain of one branch, measured with a paired standard error: does RL beat its own starting point?

    .venv/bin/python benchmarks/bench_rl_gain.py --configfile config.yaml --branch tiny/uniform@400/dapo_dc \
        --results results --samples 8 --work /tmp/rl_gain [--set steps=30 --set lr=5e-5 ...] \
        [--report reports/benchmarks.md]

Needs the branch's inputs built (``snakemake results/tiny/sft/uniform results/data/sets results/benchmarks``).
Runs the branch (unless WORK already holds it finished) with the config's settings (``--set KEY=VALUE`` overrides rl settings, YAML values)
through ``python -m plasticity rl`` (wall time reported), then evaluates its start and its final model
on every configured benchmark with ``--samples`` samples per problem (the config's sampling, seeds
from the config seed) and reports the micro-averaged gain with its paired standard error: the
standard error of the mean over problems of (final - start) per-problem accuracy. Pairing on the
problems removes their difficulty spread, which dominates the unpaired standard error of each curve
point; the samples per problem set the remaining sampling noise.

``--report`` rewrites the ``## RL gain`` section of that markdown file from WORK/results.json (one
entry per branch and settings).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def per_problem(model_dir: Path, suites: dict, eval_cfg: dict, samples: int, seed: int, grader) -> list[float]:
    """Per-problem accuracy over ``samples`` samples, every benchmark's problems in order: the RL stage's
    in-loop evaluation with every benchmark at avg@``samples``."""
    from plasticity.models import load_model_and_tokenizer
    from plasticity.train.rl import problem_accuracies
    from plasticity.train.trainer_config import process_state

    model, tokenizer = load_model_and_tokenizer(model_dir)
    per_bench = problem_accuracies(model, tokenizer, suites, {**eval_cfg, "samples": {"default": samples}}, seed,
                                   grader, process_state(cuda=False))
    return [a for name in suites for a in per_bench[name]["per_problem"]]


def paired(start: list[float], final: list[float]) -> tuple[float, float]:
    """(mean gain, its standard error), percent, over problems."""
    diffs = [f - s for s, f in zip(start, final)]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return 100.0 * mean, 100.0 * math.sqrt(var / n)


def write_report(path: Path, entries: list[dict]) -> None:
    lines = ["## RL gain", "",
             "A branch's micro-averaged gain over its start with the paired standard error (per-problem "
             "final - start, averaged over problems), by `benchmarks/bench_rl_gain.py`.", "",
             "| branch | settings | samples/problem | problems | start % | final % | gain ± SE | gain / SE | "
             "RL wall s | date |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['branch']} | {e['settings']} | {e['samples']} | {e['problems']} | {e['start']:.2f} | "
                     f"{e['final']:.2f} | {e['gain']:+.2f} ± {e['se']:.2f} | {e['gain'] / e['se']:.1f} | "
                     f"{e['rl_wall_s']:.0f} | {e['date']} |")
    lines += ["", "Command: " + "; ".join(sorted({e["command"] for e in entries})), ""]
    text = path.read_text() if path.exists() else ""
    start = text.find("## RL gain")
    if start < 0:
        text = text.rstrip() + "\n\n" + "\n".join(lines)
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + "\n".join(lines) + (text[end:] if end >= 0 else "\n")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", default="config.yaml")
    parser.add_argument("--branch", required=True, help="MODEL/SFT_DATA@SWITCH/METHOD")
    parser.add_argument("--results", default="results", help="the study's results directory (inputs)")
    parser.add_argument("--benchmarks", help="benchmark directory (default: RESULTS/benchmarks)")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--work", required=True)
    parser.add_argument("--set", action="append", default=[], help="rl settings override KEY=VALUE")
    parser.add_argument("--report")
    args = parser.parse_args(argv)

    from plasticity.config import load_config
    from plasticity.eval.registry import load_suites
    from plasticity.grading import Grader
    from plasticity.io import read_json, write_json

    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    raw = yaml.safe_load(Path(args.configfile).read_text())
    raw["rl"]["defaults"].update(overrides)
    cfg_path = Path(args.work) / "config.yaml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path)
    section = cfg.section("rl", args.branch)
    model, branch, method = args.branch.split("/")
    sft_data = branch.split("@")[0]
    results = Path(args.results)
    start = results / model / ("base" if sft_data == "none" else f"sft/{sft_data}")
    bench = Path(args.benchmarks) if args.benchmarks else results / "benchmarks"
    tag = "-".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "config"
    out = Path(args.work) / f"{args.branch.replace('/', '_')}_{tag}"
    write_json(Path(args.work) / "section.json", section.model_dump(mode="json"))
    cmd = [sys.executable, "-m", "plasticity", "rl", "--config", str(Path(args.work) / "section.json"),
           "--start-from", str(start), "--prompts", str(results / "data" / "sets" / f"{section.rl.prompts}.parquet"),
           "--benchmarks", str(bench), "--out", str(out), "--threads", str(os.cpu_count())]
    started = out.with_name(f".{out.name}.started")   # RL wall time survives a rerun of the evaluation
    if not (out / "manifest.json").is_file():
        started.write_text(f"{time.time():.0f}\n")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = (out / "manifest.json").stat().st_mtime - float(started.read_text())

    start_dir = Path(read_json(out / "branch.json")["start_dir"])
    suites = load_suites(bench, cfg.eval.benchmarks)
    eval_cfg = cfg.eval.model_dump()
    with Grader(mode=cfg.eval.grader.mode, workers=1, timeout_s=cfg.eval.grader.timeout_s) as grader:
        before = per_problem(start_dir, suites, eval_cfg, args.samples, cfg.seed, grader)
        after = per_problem(out / "model", suites, eval_cfg, args.samples, cfg.seed, grader)
    gain, se = paired(before, after)
    entry = {"branch": args.branch, "settings": tag, "samples": args.samples, "problems": len(before),
             "start": 100.0 * sum(before) / len(before), "final": 100.0 * sum(after) / len(after),
             "gain": gain, "se": se, "rl_wall_s": wall, "date": datetime.date.today().isoformat(),
             "command": "benchmarks/bench_rl_gain.py " + shlex.join(argv if argv is not None else sys.argv[1:])}
    print(json.dumps(entry, indent=1))
    store = Path(args.work) / "results.json"
    entries = [e for e in (json.loads(store.read_text()) if store.exists() else [])
               if (e["branch"], e["settings"], e["samples"]) != (entry["branch"], entry["settings"], entry["samples"])]
    entries.append(entry)
    store.write_text(json.dumps(entries, indent=1))
    if args.report:
        write_report(Path(args.report), entries)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
