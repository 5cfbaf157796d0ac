"""DVC at the study's scale: the no-op `dvc repro` on a generated tree with the paper matrix's shape.

    nice -n 5 .venv/bin/python benchmarks/bench_dvc.py --config configs/paper-qwen2.5-7b.yaml \
        --work /tmp/bench_dvc --weights-gb 15.23 --repeat 3

Builds, in WORK, a git clone of this working tree with dvc.yaml rendered for CONFIG and every output
of that config's DAG in place (Snakemake's own DAG, ``plasticity.dvc_yaml.dag_jobs``):

- every model directory (the base, every SFT checkpoint, tracked or not, every RL branch's final
  model) holds the weights of ``--weights-gb`` GB (Qwen2.5-7B in bf16: 15.23) in 4 safetensors shards,
  plus config, generation config, tokenizer (7 MB) and metrics files;
- every data-phase directory one ``--data-gb`` file, every evaluation's generations ``--eval-gb``;
  everything else (stage configs, scores, curves, tables) a small file.

Large files are sparse with a distinct header, so they take no disk but DVC reads and hashes every
byte of them and no two share a hash (DVC would store identical files once). HOME is WORK/home, so
nothing of the machine's DVC set-up is used. Then, timed: `snakemake --touch` (ordering the mtimes),
`dvc commit -f` (the first hashing of everything tracked), ``--repeat`` no-op `dvc repro` and
`dvc status` runs, and the first `dvc status` after another `snakemake --touch` (the re-sync a pulled
clone runs: DVC keys its hash cache on mtimes, so whatever the touch changes is rehashed).
Results: WORK/results.json; the markdown rows are printed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from plasticity.config import load_config
from plasticity.dvc_yaml import ROOT, dag_jobs, job_outs

GB = 10**9
SHARDS = 4
TOKENIZER_BYTES = 7 * 10**6
DATA_RULES = {"benchmarks", "teacher", "ingest", "filter", "decontaminate", "difficulty", "subsets"}


def sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes: a header naming it, then a hole (reads as zeros). Small files are a
    line of JSON instead (DVC reads the metrics file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"file": str(path)}) + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(header)
        if size > 100_000:
            fh.truncate(size)


def model_dir(path: Path, weights: int) -> None:
    for i in range(1, SHARDS + 1):
        sparse(path / f"model-{i:05d}-of-{SHARDS:05d}.safetensors", weights // SHARDS)
    sparse(path / "tokenizer.json", TOKENIZER_BYTES)
    for name in ("config.json", "generation_config.json", "tokenizer_config.json", "metrics.json"):
        sparse(path / name, 1000)


def build_tree(clone: Path, configfile: str, args: argparse.Namespace) -> None:
    cfg = load_config(ROOT / configfile)
    weights = int(args.weights_gb * GB)
    for job in dag_jobs(str(ROOT / configfile)):
        for out in job.outputs:
            path = clone / out
            if job.rule == "sft":
                run = cfg.sft_run(job.wildcards["model"], job.wildcards["sft_data"])
                for step in run.save_steps:
                    model_dir(path / f"checkpoint-{step}", weights)
                for name in job_outs(cfg, job):
                    if not (clone / name).exists():
                        sparse(clone / name, 1000)
            elif job.rule == "base":
                model_dir(path, weights)
            elif job.rule == "rl":
                model_dir(path / "model", weights)
                for name in ("curve.csv", "branch.json", "train_log.jsonl", "eval.json", "manifest.json"):
                    sparse(path / name, 20_000)
            elif job.rule in DATA_RULES:
                sparse(path / "part-0.parquet", int(args.data_gb * GB))
            elif job.rule == "generate":
                sparse(path / "generations.parquet", int(args.eval_gb * GB))
            elif out in job.directories:
                sparse(path / "manifest.json", 1000)
            else:
                sparse(path, 1000)


def tracked_bytes(clone: Path) -> int:
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    total = 0
    for stage in stages.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            path = clone / next(iter(entry))
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            total += sum(p.stat().st_size for p in files if p.name != ".snakemake_timestamp")
    return total


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    if cmd[:2] == ["dvc", "repro"] and "Data and pipelines are up to date" not in out.stdout + out.stderr:
        raise SystemExit(f"dvc repro was not a no-op:\n{out.stdout[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/paper-qwen2.5-7b.yaml", help="relative to the repository")
    p.add_argument("--work", type=Path, required=True, help="scratch directory (emptied)")
    p.add_argument("--weights-gb", type=float, default=15.23, help="weights per model directory (GB)")
    p.add_argument("--data-gb", type=float, default=2.0, help="per data-phase directory (GB)")
    p.add_argument("--eval-gb", type=float, default=0.2, help="generations per evaluation (GB)")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)

    shutil.rmtree(args.work, ignore_errors=True)
    clone = args.work / "clone"
    clone.mkdir(parents=True)
    env = {**os.environ, "HOME": str(args.work / "home"), "PYTHONPATH": str(clone / "src"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.org",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.org"}
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    subprocess.run(["python", "-m", "plasticity", "dvc-yaml", "--config", args.config], cwd=clone, env=env,
                   check=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(cmd, cwd=clone, env=env, check=True)

    start = time.perf_counter()
    build_tree(clone, args.config, args)
    build = time.perf_counter() - start
    files = sum(1 for p in (clone / load_config(ROOT / args.config).results_dir).rglob("*") if p.is_file())
    result = {"config": args.config, "weights_gb": args.weights_gb, "data_gb": args.data_gb,
              "eval_gb": args.eval_gb, "tree_build_s": round(build, 1), "files_under_results": files,
              "tracked_gb": round(tracked_bytes(clone) / GB, 2),
              "dvc_outs": sum(len(s.get("outs", [])) + len(s.get("metrics", []))
                              for s in yaml.safe_load((clone / "dvc.yaml").read_text())["stages"].values())}
    snake = ["snakemake", "--touch", "--configfile", args.config]
    result["snakemake_touch_s"] = round(timed(snake, clone, env), 1)
    result["dvc_commit_first_hash_s"] = round(timed(["dvc", "commit", "-f", "-q"], clone, env), 1)
    result["noop_repro_s"] = [round(timed(["dvc", "repro"], clone, env), 2) for _ in range(args.repeat)]
    result["status_s"] = [round(timed(["dvc", "status"], clone, env), 2) for _ in range(args.repeat)]
    timed(snake, clone, env)
    result["status_after_touch_s"] = round(timed(["dvc", "status"], clone, env), 1)
    result["noop_repro_after_that_s"] = round(timed(["dvc", "repro"], clone, env), 2)
    result["hash_gb_per_s"] = round(result["tracked_gb"] / result["dvc_commit_first_hash_s"], 2)
    (args.work / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"| {args.config} | {args.weights_gb} | {result['dvc_outs']} | {result['tracked_gb']} | "
          f"{result['dvc_commit_first_hash_s']} | {statistics.median(result['noop_repro_s'])} | "
          f"{statistics.median(result['status_s'])} | {result['status_after_touch_s']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
