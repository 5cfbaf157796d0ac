"""What each training job of a config needs: memory (``budget.memory``), time and segments
(``budget.timing``), and the errors that stop it before submission.

One model for the two places that use it: ``plan`` prints and checks every job, and the rules take
each training job's stop-signal lead, elastic grace and retries from the same numbers
(``rules/common.smk``). Imports no torch.

Assumptions beside the config (``Assumptions``; ``plan`` flags override them): an RL prompt's mean
tokens, the completion's (half of ``max_completion_length``), an evaluation sample's tokens; SFT
sequences have the study's mean length for their set kind (PAPER 2.2) or, in ``plan``, the run's
measured ``train_stats.json`` when it exists.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plasticity.analysis.flops import MODEL_REGISTRY, ModelConstants, forward_flops_per_token, sft_step_flops
from plasticity.budget.memory import Memory, training_memory
from plasticity.budget.timing import Timing, cpu_timing, expected_rounds, segment_timing
from plasticity.methods import get_method

# Mean prompt + response tokens of the study's SFT sets (PAPER.md 2.2, the FLOPs kit's values) by set kind.
STUDY_SEQ_LEN = {"all": 3771, "uniform": 3747, "easy": 2217, "hard": 8633, "source": 10011}


@dataclass(frozen=True)
class Assumptions:
    rl_prompt_tokens: float = 256.0
    rl_completion_share: float = 0.5        # of max_completion_length
    eval_tokens: float | None = None        # None: rl_prompt_tokens + half of eval.sampling.max_new_tokens


@dataclass
class JobBudget:
    rule: str
    name: str
    memory: Memory
    timing: Timing
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def model_constants(cfg: Any, name: str) -> ModelConstants:
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


def sft_seq_len(cfg: Any, run: Any, measured: bool) -> tuple[float, str]:
    """Mean prompt + response tokens of a run's set: measured (``train_stats.json``) or the study's."""
    stats = Path(cfg.results_dir) / run.model / "sft" / run.data / "train_stats.json"
    if measured and stats.is_file():
        return float(json.loads(stats.read_text())["mean_seq_len"]), "measured"
    kind = cfg.data.sets[run.data].kind
    return float(STUDY_SEQ_LEN.get(kind, cfg.sft_settings(run).max_length)), "PAPER 2.2"


def _gpu_seconds(flops: float, cluster: Any, gpus: int) -> float:
    return flops / (gpus * cluster.gpu_tflops * 1e12 * cluster.mfu)


def _checks(b: JobBudget, s: Any, cluster: Any, where: str) -> None:
    mem, launch = b.memory, s.launch
    if mem.gpu_gb is not None and mem.gpu_gb > cluster.gpu_mem_gb:
        p = mem.parts
        b.errors.append(f"{where}.micro_batch_size: about {mem.gpu_gb:.0f} GB per GPU (state {p['state']:.1f}, "
                        f"activations {p['activations']:.1f}, logits {p['logits']:.1f}) exceeds cluster.gpu_mem_gb "
                        f"{cluster.gpu_mem_gb:g}: a smaller micro-batch, gradient checkpointing, liger or a "
                        f"sharded launch.strategy")
    budget = launch.mem_gb_per_process * launch.procs_per_node
    if mem.host_gb_per_node > budget:
        b.errors.append(f"{where}.launch.mem_gb_per_process: about {mem.host_gb_per_node:.0f} GB per node "
                        f"(rank 0 {mem.host_gb_per_rank:.0f} GB while it saves) exceeds {launch.mem_gb_per_process:g} "
                        f"x {launch.procs_per_node} processes")
    kv = mem.kv
    if kv and kv["kv_cache_gb"] < kv["one_sequence_gb"]:
        b.errors.append(f"{where}.vllm_gpu_memory_utilization: {s.vllm_gpu_memory_utilization:g} x "
                        f"{cluster.gpu_mem_gb:g} GB leaves {kv['kv_cache_gb']:.1f} GB of KV cache beside the weights, "
                        f"less than one sequence of max model length {kv['max_model_length']} "
                        f"({kv['one_sequence_gb']:.1f} GB)")


def sft_budget(cfg: Any, run: Any, *, measured: bool = False, cluster: Any = None) -> JobBudget:
    cluster = cluster or cfg.cluster
    s = cfg.sft_settings(run)
    where = f"sft.runs.{cfg.sft.runs.index(run)}"
    micro, _ = s.batch_layout(s.launch.world_size)
    m = model_constants(cfg, run.model)
    seq, seq_from = sft_seq_len(cfg, run, measured)
    memory = training_memory(m, s, "sft", micro, s.max_length, gpu_mem_gb=cluster.gpu_mem_gb)
    extra = {"mean_seq_len": seq, "mean_seq_len_from": seq_from}
    errors: list[str] = []
    if not s.launch.gpus_per_node:
        return JobBudget("sft", f"{run.model}/sft/{run.data}", memory, cpu_timing(s.launch.time_min), extra=extra)
    gpus = s.launch.nodes * s.launch.gpus_per_node
    passes = 4 / 3 if s.gradient_checkpointing else 1.0
    step = _gpu_seconds(passes * sft_step_flops(m, s.batch_size, seq), cluster, gpus)
    save = memory.resume_write_gb / (cluster.checkpoint_write_gb_per_s * s.launch.nodes)
    try:
        timing = segment_timing(s.steps * step / 3600, step, save, s.launch.time_min, cluster.startup_s, where)
    except ValueError as exc:
        errors.append(str(exc))
        timing = Timing(hours=s.steps * step / 3600, step_s=step, save_s=save, grace_s=0, lead_s=0, segments=0)
    b = JobBudget("sft", f"{run.model}/sft/{run.data}", memory, timing, errors, extra)
    _checks(b, s, cluster, where)
    return b


def eval_tokens(cfg: Any, samples: dict[str, int] | None, tokens: float) -> float:
    """Tokens one evaluation of every benchmark processes: registry problems x avg@k samples x ``tokens``."""
    from plasticity.eval.registry import get

    samples = samples or cfg.eval.samples
    return sum(get(name).count * samples.get(name, samples.get("default", 1)) * tokens
               for name in cfg.eval.benchmarks + cfg.eval.ood_benchmarks)


def rl_budget(cfg: Any, branch: Any, *, assume: Assumptions = Assumptions(), cluster: Any = None) -> JobBudget:
    cluster = cluster or cfg.cluster
    s = cfg.rl_settings(branch)
    method = get_method(s.method)
    where = f"rl.branches.{cfg.rl.branches.index(branch)}"
    name = f"{branch.model}/rl/{branch.sft_data}@{branch.switch}/{s.method}"
    micro, _ = s.batch_layout(s.launch.world_size)
    m = model_constants(cfg, branch.model)
    completion = s.max_completion_length * assume.rl_completion_share
    seq = assume.rl_prompt_tokens + completion
    gen_prompts = s.gen_prompts_per_round or s.prompts_per_step
    rounds = (expected_rounds(s.expected_keep_rate, gen_prompts, s.prompts_per_step, s.max_gen_rounds)
              if method.dynamic_sampling else 1.0)
    memory = training_memory(m, s, "rl", micro, s.max_prompt_length + s.max_completion_length,
                             gpu_mem_gb=cluster.gpu_mem_gb, expected_rl_tokens=seq)
    concurrency = s.vllm_max_num_seqs or (   # trl's own cap unless the config sets one
        micro * s.vllm_tensor_parallel_size * s.batch_layout(s.launch.world_size)[1] * s.updates_per_step)
    extra = {"expected_gen_rounds": rounds, "vllm_max_num_seqs": concurrency if s.use_vllm else None,
             "rl_completion_tokens": completion}
    if not s.launch.gpus_per_node:
        return JobBudget("rl", name, memory, cpu_timing(s.launch.time_min), extra=extra)
    gpus = s.launch.nodes * s.launch.gpus_per_node
    gen_s = rounds * gen_prompts * s.num_generations * completion / (cluster.decode_tokens_per_s * gpus)
    passes = 4.0 if s.gradient_checkpointing else 3.0
    train_s = _gpu_seconds(passes * s.prompts_per_step * s.num_generations * seq * forward_flops_per_token(m, seq),
                           cluster, gpus)
    eval_tok = eval_tokens(cfg, s.eval_samples, assume.eval_tokens or
                           assume.rl_prompt_tokens + cfg.eval.sampling.max_new_tokens / 2)
    evals = s.steps // s.eval_every + 1
    eval_s = evals * eval_tok / 2 / (cluster.decode_tokens_per_s * gpus)   # half of a sample's tokens are decoded
    save = memory.resume_write_gb / (cluster.checkpoint_write_gb_per_s * s.launch.nodes)
    hours = (s.steps * (gen_s + train_s) + eval_s) / 3600
    errors: list[str] = []
    try:
        timing = segment_timing(hours, gen_s + train_s, save, s.launch.time_min, cluster.startup_s, where)
    except ValueError as exc:
        errors.append(str(exc))
        timing = Timing(hours=hours, step_s=gen_s + train_s, save_s=save, grace_s=0, lead_s=0, segments=0)
    timing.gen_hours = (s.steps * gen_s + eval_s) / 3600
    timing.train_hours = s.steps * train_s / 3600
    if s.use_vllm and memory.kv and memory.kv["sequences_at_expected_length"] < concurrency:
        extra["warning"] = (f"vLLM holds about {memory.kv['sequences_at_expected_length']:.0f} sequences of the expected "
                            f"length at once, max_num_seqs lets it decode {concurrency}: the rest wait "
                            "(slower generation; rl.vllm_max_num_seqs caps it)")
    b = JobBudget("rl", name, memory, timing, errors, extra)
    _checks(b, s, cluster, where)
    return b


def rule_retries(budgets: list[JobBudget]) -> int | None:
    """Snakemake retries of a training rule: its longest job's segments (each a resumption), one to
    spare; None where no job has a time model (CPU), leaving the profile's retries."""
    timed = [b.timing.segments for b in budgets if b.timing.hours]
    return max(timed) if timed else None

