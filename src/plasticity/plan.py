"""``python -m plasticity plan``: what a matrix will train, cost and hold, before anything runs.

For every training job of the config: the effective settings the stage will hand trl (the same
``train.trainer_config`` arithmetic: world size, per-device batch, gradient accumulation, global
batch, lr, warmup steps, AdamW betas, weight decay, precision) beside the study's values where
PAPER.md gives them; its compute in EF (``analysis.flops``); and from ``plasticity.budget`` (the model
the rules take their time limits from): host memory per rank, GPU memory per GPU, checkpoint and
resume-state sizes, hours (RL: generation and training apart), the resumable SLURM segments of
``launch.time_min`` it needs, the KV cache of a colocated vLLM engine. A job that would not fit its
GPUs, its node's memory or its time limit is an error naming the key, and plan exits 1. Totals: SFT /
RL / evaluation EF, GPU-hours, checkpoint GB, and the number of jobs per rule (Snakemake's dry run).

    python -m plasticity plan --configfile configs/paper-qwen2.5-7b.yaml [--json] [--mfu 0.4]

What the estimates assume is printed with them (``budget.Assumptions``, the config's ``cluster``
section; the memory model's terms in ``budget.memory``, the time model's in ``budget.timing``).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from plasticity.analysis.flops import EF, forward_flops_per_token, rl_step_flops, sft_step_flops
from plasticity.budget import Assumptions, eval_tokens, model_constants, rl_budget, sft_budget
from plasticity.config import Config, load_config
from plasticity.config.base import group_entries
from plasticity.methods import get_method

ROOT = Path(__file__).resolve().parents[2]

# The study's values (PAPER.md 2.4, 2.5) of the settings the plan prints.
STUDY_SFT = {"global_batch": 512, "lr": 1e-5, "warmup_ratio": 0.1, "adam_betas": [0.9, 0.95],
             "weight_decay": 0.01, "precision": "bf16"}
STUDY_SFT_S1K = {**STUDY_SFT, "global_batch": 16, "warmup_ratio": 0.05, "weight_decay": 1e-4}
STUDY_RL = {"dapo_dc": {"global_batch": 64, "completions_per_step": 512, "lr": 1e-6, "warmup_steps": 0,
                        "adam_betas": [0.9, 0.999], "weight_decay": 0.01, "precision": "bf16"},
            "dapo_d": {"global_batch": 128, "completions_per_step": 1024, "lr": 1e-6, "precision": "bf16"},
            "grpo": {"global_batch": 128, "completions_per_step": 1024, "lr": 1e-6, "precision": "bf16"}}


def _precision(settings: Any) -> str:
    return settings.precision if settings.launch.gpus_per_node else "fp32 (CPU)"


def _flops_hours(flops: float, cluster: Any) -> float:
    return flops / (cluster.mfu * cluster.gpu_tflops * 1e12) / 3600.0


def _budget_columns(b: Any, gpus: int) -> dict[str, Any]:
    mem, t = b.memory, b.timing
    return {"host_mem_gb_per_rank": mem.host_gb_per_rank, "host_mem_gb_per_node": mem.host_gb_per_node,
            "gpu_mem_gb": mem.gpu_gb, "checkpoint_gb": mem.checkpoint_gb, "resume_state_gb": mem.resume_state_gb,
            "hours": t.hours, "segments": t.segments, "signal_lead_s": t.lead_s, "grace_s": t.grace_s,
            "memory_parts": mem.parts, **({"vllm": mem.kv} if mem.kv else {}), **b.extra}


def sft_jobs(cfg: Config, assume: Assumptions) -> list[dict[str, Any]]:
    from plasticity.train.trainer_config import warmup_steps

    jobs = []
    for run in cfg.sft.runs:
        s = cfg.sft_settings(run)
        b = sft_budget(cfg, run, measured=True)
        micro, accum = s.batch_layout(s.launch.world_size)
        flops = s.steps * sft_step_flops(model_constants(cfg, run.model), s.batch_size, b.extra["mean_seq_len"])
        gpus = s.launch.nodes * s.launch.gpus_per_node
        jobs.append({
            "rule": "sft", "name": b.name, "world_size": s.launch.world_size, "nodes": s.launch.nodes,
            "gpus_per_node": s.launch.gpus_per_node, "strategy": s.launch.strategy,
            "per_device_batch": micro, "grad_accum": accum, "global_batch": s.batch_size, "steps": s.steps,
            "lr": s.lr, "warmup_steps": warmup_steps(s, s.steps), "adam_betas": list(s.adam_betas),
            "weight_decay": s.weight_decay, "precision": _precision(s), "ef": flops / EF,
            "gpu_hours": b.timing.hours * gpus if gpus else _flops_hours(flops, cfg.cluster),
            **_budget_columns(b, gpus), "errors": b.errors,
            "study": (STUDY_SFT_S1K if cfg.data.sets[run.data].kind == "source" else STUDY_SFT)
            if cfg.models[run.model].source == "hub" else None,
        })
    return jobs


def rl_jobs(cfg: Config, assume: Assumptions) -> list[dict[str, Any]]:
    jobs = []
    for br in cfg.rl.branches:
        s = cfg.rl_settings(br)
        b = rl_budget(cfg, br, assume=assume)
        method = get_method(s.method)
        micro, accum = s.batch_layout(s.launch.world_size)
        m = model_constants(cfg, br.model)
        gen = s.gen_prompts_per_round or s.prompts_per_step
        record = {"prompts": gen, "group": s.num_generations, "gen_rounds": b.extra["expected_gen_rounds"],
                  "train_prompts": s.prompts_per_step, "mean_prompt_tokens": assume.rl_prompt_tokens,
                  "mean_completion_tokens": b.extra["rl_completion_tokens"]}
        train = s.steps * rl_step_flops(m, s.method, record)
        tokens = assume.eval_tokens or assume.rl_prompt_tokens + cfg.eval.sampling.max_new_tokens / 2
        evals = (s.steps // s.eval_every + 1) * eval_tokens(cfg, s.eval_samples, tokens) \
            * forward_flops_per_token(m, tokens)
        gpus = s.launch.nodes * s.launch.gpus_per_node
        jobs.append({
            "rule": "rl", "name": b.name, "method": s.method,
            "world_size": s.launch.world_size, "nodes": s.launch.nodes, "gpus_per_node": s.launch.gpus_per_node,
            "strategy": s.launch.strategy, "per_device_batch": micro, "grad_accum": accum,
            "global_batch": s.prompts_per_step, "completions_per_step": s.prompts_per_step * s.num_generations,
            "updates_per_step": s.updates_per_step, "gen_prompts_per_round": gen if method.dynamic_sampling else None,
            "steps": s.steps, "lr": s.lr, "warmup_steps": s.warmup_steps or 0, "adam_betas": list(s.adam_betas),
            "weight_decay": s.weight_decay, "precision": _precision(s), "ef": (train + evals) / EF,
            "ef_in_loop_eval": evals / EF,
            "gpu_hours": b.timing.hours * gpus if gpus else _flops_hours(train + evals, cfg.cluster),
            "rl_gen_hours": b.timing.gen_hours, "rl_train_hours": b.timing.train_hours,
            **_budget_columns(b, gpus), "errors": b.errors,
            "study": STUDY_RL.get(s.method) if cfg.models[br.model].source == "hub" else None,
        })
    return jobs


def job_counts(configfile: str) -> dict[str, int]:
    """Jobs per rule of the whole DAG from a fresh directory, as Snakemake's dry run counts them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", tmp, "-n",
                              "--quiet", "rules", "--configfile", str(Path(configfile).resolve())],
                             capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"snakemake dry run failed:\n{out.stderr[-2000:]}")
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, re.M)
            if m[1] not in ("total", "stage_config")}


def plan(configfile: str, args: argparse.Namespace) -> dict[str, Any]:
    from plasticity.features import config_warnings

    cfg = load_config(configfile)
    overrides = {k: v for k, v in (("mfu", args.mfu), ("gpu_tflops", args.gpu_tflops)) if v is not None}
    cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update=overrides)})
    assume = Assumptions(rl_prompt_tokens=args.rl_prompt_tokens, eval_tokens=args.eval_tokens)
    sft, rl = sft_jobs(cfg, assume), rl_jobs(cfg, assume)
    errors = [e for j in sft + rl for e in j["errors"]]
    counts = {} if errors else job_counts(configfile)   # the workflow refuses to build a DAG with these errors
    evals = 0.0
    tokens = assume.eval_tokens or assume.rl_prompt_tokens + cfg.eval.sampling.max_new_tokens / 2
    for model in {r.model for r in cfg.sft.runs} | {b.model for b in cfg.rl.branches}:
        n = sum(len(r.save_steps) for r in cfg.sft.runs if r.model == model) + 1   # + the base
        m = model_constants(cfg, model)
        evals += n * eval_tokens(cfg, None, tokens) * forward_flops_per_token(m, tokens)
    totals = {
        "sft_ef": sum(j["ef"] for j in sft), "rl_ef": sum(j["ef"] for j in rl), "eval_ef": evals / EF,
        "checkpoint_gb": sum(j["checkpoint_gb"] for j in sft + rl),
        "resume_state_gb": sum(j["resume_state_gb"] for j in sft + rl), "jobs": counts,
        "gpu_hours": sum(j["gpu_hours"] for j in sft + rl) + _flops_hours(evals, cfg.cluster),
        "cluster": cfg.cluster.model_dump(),
        "assumptions": {"rl_prompt_tokens": assume.rl_prompt_tokens,
                        "rl_completion_tokens": f"max_completion_length x {assume.rl_completion_share}",
                        "eval_tokens": tokens, "evaluation": "FLOPs at the cluster's MFU"},
    }
    return {"jobs": sft + rl, "totals": totals, "errors": errors,
            "warnings": config_warnings(cfg) + [f"{j['name']}: {j['warning']}" for j in rl if "warning" in j]}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render(result: dict[str, Any]) -> str:
    cols = ("rule", "name", "world_size", "per_device_batch", "grad_accum", "global_batch", "lr", "warmup_steps",
            "precision", "ef", "gpu_hours", "hours", "segments", "gpu_mem_gb", "host_mem_gb_per_rank",
            "checkpoint_gb", "resume_state_gb")
    lines = ["| " + " | ".join(cols) + " | study |", "|" + "---|" * (len(cols) + 1)]
    for job in result["jobs"]:
        study = job.get("study")
        lines.append("| " + " | ".join(_cell(job.get(c)) for c in cols) + " | "
                     + (", ".join(f"{k} {v}" for k, v in study.items()) if study else "-") + " |")
    t = result["totals"]
    lines += ["", f"SFT {t['sft_ef']:.4g} EF, RL {t['rl_ef']:.4g} EF, evaluation {t['eval_ef']:.4g} EF: "
              f"{t['gpu_hours']:.4g} GPU-hours; checkpoints {t['checkpoint_gb']:.4g} GB, resume states "
              f"{t['resume_state_gb']:.4g} GB",
              "jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(t["jobs"].items())),
              "cluster: " + json.dumps(t["cluster"]),
              "assumptions: " + json.dumps(t["assumptions"])]
    lines += [f"warning: {w}" for w in group_entries(result["warnings"])]
    lines += [f"error: {e}" for e in group_entries(result["errors"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity plan", description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    parser.add_argument("--json", action="store_true", help='print {"jobs": [...], "totals": {...}, "errors": [...]}')
    parser.add_argument("--mfu", type=float, help="model FLOPs utilisation (default: cluster.mfu)")
    parser.add_argument("--gpu-tflops", type=float, help="peak dense bf16 TFLOP/s per GPU (default: cluster.gpu_tflops)")
    parser.add_argument("--rl-prompt-tokens", type=float, default=256.0, help="mean RL prompt tokens (default 256)")
    parser.add_argument("--eval-tokens", type=float,
                        help="mean prompt + completion tokens of an evaluation sample "
                             "(default: --rl-prompt-tokens + half of eval.sampling.max_new_tokens)")
    args = parser.parse_args(argv)
    result = plan(args.configfile, args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    for line in group_entries(result["errors"]):
        print(f"plan: {line}", file=sys.stderr)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
