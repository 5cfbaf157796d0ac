"""``python -m plasticity plan``: what a matrix will train and cost, before anything runs.

For every training job of the config: the effective settings the stage will hand trl (the same
``train.trainer_config`` arithmetic: world size, per-device batch, gradient accumulation, global
batch, lr, warmup steps, AdamW betas, weight decay, precision) beside the study's values where
PAPER.md gives them; its compute in EF (``analysis.flops``), GPU-hours at a stated MFU and peak, and
the storage its checkpoints take. Totals: SFT / RL / evaluation EF, GPU-hours, checkpoint GB, and the
number of jobs per rule (from Snakemake's own dry run of the DAG).

    python -m plasticity plan --configfile configs/paper-qwen2.5-7b.yaml [--json] [--mfu 0.4]

Estimates, and what they assume (printed with them): SFT sequences have the study's mean
prompt + response length of their set kind (PAPER.md 2.2; a run's measured ``train_stats.json``
when it exists); an RL rollout is ``--rl-prompt-tokens`` + half of ``max_completion_length`` tokens
and a dynamic-sampling step draws ``--gen-rounds`` rounds; an evaluation samples every registry
problem ``samples`` times at ``--eval-tokens`` tokens (prompt + half the new-token budget). Weights are 2 bytes a parameter in bf16, 4 in fp32.
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

from plasticity.analysis.flops import (EF, MODEL_REGISTRY, ModelConstants, forward_flops_per_token, rl_step_flops,
                                       sft_step_flops)
from plasticity.config import Config, load_config
from plasticity.methods import get_method

ROOT = Path(__file__).resolve().parents[2]

# Mean prompt + response tokens of the study's SFT sets (PAPER.md 2.2, the FLOPs kit's values) by set kind.
STUDY_SEQ_LEN = {"all": 3771, "uniform": 3747, "easy": 2217, "hard": 8633, "source": 10011}
# The study's values (PAPER.md 2.4, 2.5) of the settings the plan prints.
STUDY_SFT = {"global_batch": 512, "lr": 1e-5, "warmup_ratio": 0.1, "adam_betas": [0.9, 0.95],
             "weight_decay": 0.01, "precision": "bf16"}
STUDY_SFT_S1K = {**STUDY_SFT, "global_batch": 16, "warmup_ratio": 0.05, "weight_decay": 1e-4}
STUDY_RL = {"dapo_dc": {"global_batch": 64, "completions_per_step": 512, "lr": 1e-6, "warmup_steps": 0,
                        "adam_betas": [0.9, 0.999], "weight_decay": 0.01, "precision": "bf16"},
            "dapo_d": {"global_batch": 128, "completions_per_step": 1024, "lr": 1e-6, "precision": "bf16"},
            "grpo": {"global_batch": 128, "completions_per_step": 1024, "lr": 1e-6, "precision": "bf16"}}


def model_constants(cfg: Config, name: str) -> ModelConstants:
    """FLOPs constants of a model: ``flops_constants`` (registry), or the tiny model's architecture."""
    spec = cfg.models[name]
    if spec.flops_constants:
        return MODEL_REGISTRY[spec.flops_constants]
    if spec.source == "tiny":
        from plasticity.models import TINY_VOCAB

        a = spec.arch
        return ModelConstants(layers=a.num_hidden_layers, hidden=a.hidden_size, ffn=a.intermediate_size,
                              vocab=len(TINY_VOCAB), heads=a.num_attention_heads, kv_heads=a.num_key_value_heads,
                              head_dim=a.hidden_size // a.num_attention_heads)
    raise ValueError(f"models.{name}: set flops_constants (one of {sorted(MODEL_REGISTRY)}) to plan its compute")


def parameters(m: ModelConstants, tied: bool = False) -> int:
    """Parameter count of a SwiGLU / GQA decoder (embeddings, attention, MLP, norms)."""
    attn = m.hidden * m.heads * m.head_dim * 2 + m.hidden * m.kv_dim * 2
    layer = attn + 3 * m.hidden * m.ffn + 2 * m.hidden
    return m.layers * layer + m.vocab * m.hidden * (1 if tied else 2) + m.hidden


def _precision(settings: Any) -> str:
    return settings.precision if settings.launch.gpus_per_node else "fp32 (CPU)"


def _bytes_per_param(settings: Any) -> int:
    return 2 if _precision(settings) == "bf16" else 4


def _hours(flops: float, args: argparse.Namespace) -> float:
    return flops / (args.mfu * args.gpu_tflops * 1e12) / 3600.0


def _sft_seq_len(cfg: Config, run: Any) -> tuple[float, str]:
    stats = Path(cfg.results_dir) / run.model / "sft" / run.data / "train_stats.json"
    if stats.is_file():
        return float(json.loads(stats.read_text())["mean_seq_len"]), "measured"
    kind = cfg.data.sets[run.data].kind
    return float(STUDY_SEQ_LEN.get(kind, cfg.sft_settings(run).max_length)), "PAPER 2.2"


def eval_flops(cfg: Config, m: ModelConstants, samples: dict[str, int] | None, tokens: float) -> float:
    """One evaluation of every benchmark: registry problem counts x avg@k samples x ``tokens`` each."""
    from plasticity.eval.registry import get

    samples = samples or cfg.eval.samples
    total = 0.0
    for name in cfg.eval.benchmarks + cfg.eval.ood_benchmarks:
        k = samples.get(name, samples.get("default", 1))
        total += get(name).count * k * tokens * forward_flops_per_token(m, tokens)
    return total


def sft_jobs(cfg: Config, args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = []
    for run in cfg.sft.runs:
        s = cfg.sft_settings(run)
        world = s.launch.world_size
        micro, accum = s.batch_layout(world)
        m = model_constants(cfg, run.model)
        seq, seq_from = _sft_seq_len(cfg, run)
        flops = s.steps * sft_step_flops(m, s.batch_size, seq)
        from plasticity.train.trainer_config import warmup_steps

        jobs.append({
            "rule": "sft", "name": f"{run.model}/sft/{run.data}", "world_size": world, "nodes": s.launch.nodes,
            "gpus_per_node": s.launch.gpus_per_node, "strategy": s.launch.strategy,
            "per_device_batch": micro, "grad_accum": accum, "global_batch": s.batch_size, "steps": s.steps,
            "lr": s.lr, "warmup_steps": warmup_steps(s, s.steps), "adam_betas": list(s.adam_betas),
            "weight_decay": s.weight_decay, "precision": _precision(s), "mean_seq_len": seq,
            "mean_seq_len_from": seq_from, "ef": flops / EF, "gpu_hours": _hours(flops, args),
            "checkpoint_gb": len(s.save_steps) * parameters(m) * _bytes_per_param(s) / 1e9,
            "study": (STUDY_SFT_S1K if cfg.data.sets[run.data].kind == "source" else STUDY_SFT)
            if cfg.models[run.model].source == "hub" else None,
        })
    return jobs


def rl_jobs(cfg: Config, args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = []
    for br in cfg.rl.branches:
        s = cfg.rl_settings(br)
        method = get_method(s.method)
        world = s.launch.world_size
        micro, accum = s.batch_layout(world)
        m = model_constants(cfg, br.model)
        gen = s.gen_prompts_per_round or s.prompts_per_step
        rounds = args.gen_rounds if method.dynamic_sampling else 1
        record = {"prompts": gen, "group": s.num_generations, "gen_rounds": rounds,
                  "train_prompts": s.prompts_per_step, "mean_prompt_tokens": args.rl_prompt_tokens,
                  "mean_completion_tokens": s.max_completion_length / 2}
        train = s.steps * rl_step_flops(m, s.method, record)
        evals = (s.steps // s.eval_every + 1) * eval_flops(cfg, m, s.eval_samples, args.eval_tokens)
        jobs.append({
            "rule": "rl", "name": f"{br.model}/rl/{br.sft_data}@{br.switch}/{s.method}", "method": s.method,
            "world_size": world, "nodes": s.launch.nodes, "gpus_per_node": s.launch.gpus_per_node,
            "strategy": s.launch.strategy, "per_device_batch": micro, "grad_accum": accum,
            "global_batch": s.prompts_per_step, "completions_per_step": s.prompts_per_step * s.num_generations,
            "updates_per_step": s.updates_per_step, "gen_prompts_per_round": gen if method.dynamic_sampling else None,
            "steps": s.steps, "lr": s.lr, "warmup_steps": s.warmup_steps or 0, "adam_betas": list(s.adam_betas),
            "weight_decay": s.weight_decay, "precision": _precision(s), "ef": (train + evals) / EF,
            "ef_in_loop_eval": evals / EF, "gpu_hours": _hours(train + evals, args),
            "checkpoint_gb": parameters(m) * _bytes_per_param(s) / 1e9,
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
    cfg = load_config(configfile)
    sft, rl = sft_jobs(cfg, args), rl_jobs(cfg, args)
    counts = job_counts(configfile)
    evals = 0.0
    for model in {r.model for r in cfg.sft.runs} | {b.model for b in cfg.rl.branches}:
        n = sum(len(r.save_steps) for r in cfg.sft.runs if r.model == model) + 1   # + the base
        evals += n * eval_flops(cfg, model_constants(cfg, model), None, args.eval_tokens)
    totals = {
        "sft_ef": sum(j["ef"] for j in sft), "rl_ef": sum(j["ef"] for j in rl), "eval_ef": evals / EF,
        "checkpoint_gb": sum(j["checkpoint_gb"] for j in sft + rl), "jobs": counts,
        "mfu": args.mfu, "gpu_tflops": args.gpu_tflops,
        "assumptions": {"rl_prompt_tokens": args.rl_prompt_tokens, "rl_completion_tokens": "max_completion_length / 2",
                        "gen_rounds": args.gen_rounds, "eval_tokens": args.eval_tokens},
    }
    totals["gpu_hours"] = _hours((totals["sft_ef"] + totals["rl_ef"] + totals["eval_ef"]) * EF, args)
    return {"jobs": sft + rl, "totals": totals}


def render(result: dict[str, Any]) -> str:
    cols = ("rule", "name", "world_size", "per_device_batch", "grad_accum", "global_batch", "lr", "warmup_steps",
            "adam_betas", "weight_decay", "precision", "ef", "gpu_hours", "checkpoint_gb")
    lines = ["| " + " | ".join(cols) + " | study |", "|" + "---|" * (len(cols) + 1)]
    for job in result["jobs"]:
        cells = [f"{job[c]:.4g}" if isinstance(job[c], float) else str(job[c]) for c in cols]
        study = job.get("study")
        lines.append("| " + " | ".join(cells) + " | "
                     + (", ".join(f"{k} {v}" for k, v in study.items()) if study else "-") + " |")
    t = result["totals"]
    lines += ["", f"SFT {t['sft_ef']:.4g} EF, RL {t['rl_ef']:.4g} EF, evaluation {t['eval_ef']:.4g} EF: "
              f"{t['gpu_hours']:.4g} GPU-hours at MFU {t['mfu']} of {t['gpu_tflops']} TFLOP/s; "
              f"checkpoints {t['checkpoint_gb']:.4g} GB",
              "jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(t["jobs"].items())),
              "assumptions: " + json.dumps(t["assumptions"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity plan", description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    parser.add_argument("--json", action="store_true", help='print {"jobs": [...], "totals": {...}}')
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation (default 0.4)")
    parser.add_argument("--gpu-tflops", type=float, default=989.0,
                        help="peak dense bf16 TFLOP/s per GPU (default 989: H100 SXM)")
    parser.add_argument("--rl-prompt-tokens", type=float, default=256.0, help="mean RL prompt tokens (default 256)")
    parser.add_argument("--gen-rounds", type=float, default=1.0,
                        help="generation rounds per dynamic-sampling step (default 1)")
    parser.add_argument("--eval-tokens", type=float,
                        help="mean prompt + completion tokens of an evaluation sample "
                             "(default: --rl-prompt-tokens + half of eval.sampling.max_new_tokens)")
    args = parser.parse_args(argv)
    if args.eval_tokens is None:
        args.eval_tokens = args.rl_prompt_tokens + load_config(args.configfile).eval.sampling.max_new_tokens / 2
    result = plan(args.configfile, args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
