"""The budget model behind ``plan`` and the rules' time limits: rounds, memory, time, and the errors
that stop a job before submission, each naming its key."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from plasticity.analysis.flops import MODEL_REGISTRY
from plasticity.budget import memory, rl_budget, sft_budget
from plasticity.budget.timing import expected_rounds, segment_timing
from plasticity.config import ConfigError, validate

ROOT = Path(__file__).resolve().parents[2]
QWEN = MODEL_REGISTRY["qwen2.5-7b"]


def _paper(**changes):
    raw = yaml.safe_load((ROOT / "configs" / "paper-qwen2.5-7b.yaml").read_text())
    for path, value in changes.items():
        node = raw
        *parents, key = path.split(".")
        for part in parents:
            node = node[part]
        node[key] = value
    return validate(raw)


def _simulated_rounds(keep: float, prompts: int, quota: int, max_rounds: int, trials: int = 20000) -> float:
    """verl's pooled dynamic sampling: rounds until the kept groups of all ranks reach the quota."""
    rng = np.random.default_rng(0)
    kept = rng.binomial(prompts, keep, size=(trials, max_rounds)).cumsum(axis=1)
    done = kept >= quota
    return float(np.where(done.any(axis=1), done.argmax(axis=1) + 1, max_rounds).mean())


@pytest.mark.parametrize("keep,verl", [(0.30, 2.03), (0.55, 1.12), (0.1, None), (0.9, None)])
def test_expected_rounds_are_verls_pooled_quota(keep, verl):
    analytic = expected_rounds(keep, 128, 64, 10)
    assert analytic == pytest.approx(_simulated_rounds(keep, 128, 64, 10), abs=0.02)
    if verl is not None:                       # the simulation quoted in the issue
        assert analytic == pytest.approx(verl, abs=0.02)
    assert 1.0 <= analytic <= 10.0


def test_memory_terms_of_the_qwen_matrix():
    p = memory.parameters(QWEN)
    assert 7.5e9 < p < 7.7e9                                  # Qwen2.5-7B: 7.6B with untied embeddings
    assert memory.kv_bytes_per_token(QWEN) == 2 * 28 * 4 * 128 * 2   # 56 KiB per token in bf16
    cfg = _paper()
    rl = rl_budget(cfg, cfg.rl.branches[0])
    assert rl.memory.parts["state"] == pytest.approx(16 * p / 8 / 1e9)          # ZeRO-3 over 8 GPUs
    assert rl.memory.resume_state_gb == pytest.approx(2 * 16 * p / 1e9)         # two kept, 16 bytes a parameter
    assert rl.memory.checkpoint_gb == pytest.approx(2 * p / 1e9)                # the final bf16 weights
    assert rl.memory.gpu_gb <= cfg.cluster.gpu_mem_gb and not rl.errors
    sft = sft_budget(cfg, cfg.sft.runs[0])
    assert sft.memory.parts["state"] == pytest.approx(16 * p / 16 / 1e9)        # FSDP over 16 GPUs, fp32 masters
    assert sft.memory.parts["logits"] == 0.0                                     # liger: fused cross-entropy
    assert sft.memory.checkpoint_gb == pytest.approx(40 * 2 * p / 1e9)          # 40 save steps in bf16
    assert sft.memory.host_gb_per_rank == pytest.approx(3 + 12 * p / 1e9)       # rank 0 gathers weights + moments


def test_rl_time_is_generation_plus_training_and_exceeds_the_flops_estimate():
    cfg = _paper()
    b = rl_budget(cfg, cfg.rl.branches[0])
    assert b.timing.hours == pytest.approx(b.timing.gen_hours + b.timing.train_hours)
    assert b.timing.gen_hours > 3 * b.timing.train_hours       # decode-bound
    slower = _paper(**{"cluster.decode_tokens_per_s": 1250.0})
    assert rl_budget(slower, slower.rl.branches[0]).timing.gen_hours == pytest.approx(2 * b.timing.gen_hours)


def test_a_long_job_is_cut_into_segments_and_a_short_limit_is_an_error():
    t = segment_timing(hours=10.0, step_s=120.0, save_s=60.0, time_min=240, startup_s=600, where="sft.runs.0")
    assert t.grace_s == 330 and t.lead_s == 390          # 1.5 x (step + save) + 60, then a minute for SLURM
    assert t.segments == 3                               # 10 h over segments of 240 min - 6.5 - 10 min
    with pytest.raises(ValueError, match=r"sft\.runs\.0\.launch\.time_min"):
        segment_timing(hours=1.0, step_s=3000.0, save_s=600.0, time_min=60, startup_s=600, where="sft.runs.0")


@pytest.mark.parametrize("changes,key", [
    ({"rl.defaults.micro_batch_size": 8, "rl.defaults.vllm_enable_sleep_mode": False}, "rl.branches.0.micro_batch_size"),
    ({"rl.defaults.vllm_gpu_memory_utilization": 0.12, "rl.defaults.vllm_tensor_parallel_size": 1},
     "rl.branches.0.vllm_gpu_memory_utilization"),
    ({"rl.defaults.launch.mem_gb_per_process": 2}, "rl.branches.0.launch.mem_gb_per_process"),
    ({"rl.defaults.launch.time_min": 20}, "rl.branches.0.launch.time_min"),
])
def test_a_job_that_does_not_fit_is_an_error_naming_the_key(changes, key):
    cfg = _paper(**changes)
    errors = rl_budget(cfg, cfg.rl.branches[0]).errors
    assert any(e.startswith(key) for e in errors), errors


def test_vllm_context_below_prompt_plus_completion_is_a_config_error():
    with pytest.raises(ConfigError, match="vllm_max_model_length"):
        _paper(**{"rl.defaults.vllm_max_model_length": 8192})


def test_a_launch_override_keeps_the_defaults_it_does_not_name():
    """An override of the strategy alone keeps the defaults' time limit, GPUs and CPUs (not the schema's
    60 minutes)."""
    raw = yaml.safe_load((ROOT / "configs" / "paper-qwen2.5-7b.yaml").read_text())
    raw["rl"]["branches"][0]["overrides"]["launch"] = {"strategy": "fsdp"}
    cfg = validate(raw)
    launch = cfg.rl_settings(cfg.rl.branches[0]).launch
    assert (launch.strategy, launch.time_min, launch.gpus_per_node, launch.cpus_per_process) == ("fsdp", 4320, 8, 8)


def test_cpu_jobs_have_no_throughput_model():
    from plasticity.config import load_config

    cfg = load_config(ROOT / "config.yaml")
    b = sft_budget(cfg, cfg.sft.runs[0])
    assert b.memory.gpu_gb is None and b.timing.hours == 0.0 and b.timing.segments == 1
    assert b.timing.lead_s == max(60, 6 * cfg.sft_settings(cfg.sft.runs[0]).launch.time_min)


def test_vllm_sequence_cap_is_trls_unless_configured():
    """plan reports the sequences vLLM decodes at once: trl's per-device batch x TP x steps per generation,
    or rl.vllm_max_num_seqs; a cap above what the KV cache holds is a warning naming the key."""
    cfg = _paper()
    s = cfg.rl_settings(cfg.rl.branches[0])
    micro, accum = s.batch_layout(s.launch.world_size)
    trl_cap = micro * s.vllm_tensor_parallel_size * accum * s.updates_per_step
    assert rl_budget(cfg, cfg.rl.branches[0]).extra["vllm_max_num_seqs"] == trl_cap
    capped = _paper(**{"rl.defaults.vllm_max_num_seqs": 3})
    assert rl_budget(capped, capped.rl.branches[0]).extra["vllm_max_num_seqs"] == 3
    wide = _paper(**{"rl.defaults.vllm_max_num_seqs": 100000})
    assert "rl.vllm_max_num_seqs" in rl_budget(wide, wide.rl.branches[0]).extra["warning"]
