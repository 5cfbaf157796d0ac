"""The trl configurations the stages build from every shipped config, at the configured world size.

These are the settings a cluster job would train with: built here on CPU exactly as the stages build
them (``train.trainer_config``), with CUDA simulated so that ``precision: bf16`` takes effect. The
study's effective values (PAPER.md 2.4, 2.5) are asserted for the paper configs.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from plasticity.config import load_config
from plasticity.methods import METHODS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml")), ROOT / "tests" / "smoke" / "config.yaml"]
PAPER = [p for p in CONFIGS if p.name.startswith("paper-")]


@pytest.fixture(autouse=True)
def cuda_host(monkeypatch):
    """transformers refuses bf16 without a GPU: pretend this is the GPU host the config asks for."""
    import transformers.training_args as training_args

    monkeypatch.setattr(training_args, "is_torch_bf16_gpu_available", lambda *a, **k: True)


def built(path: Path):
    from plasticity.train.trainer_config import grpo_config, sft_config

    cfg = load_config(path)
    sft = [(run, cfg.sft_settings(run)) for run in cfg.sft.runs]
    rl = [(br, cfg.rl_settings(br)) for br in cfg.rl.branches]
    sft_args = [(run, s, sft_config(s, output_dir="/tmp/x", seed=cfg.seed, world_size=s.launch.world_size,
                                    cuda=s.launch.gpus_per_node > 0, resume_state_at=max(s.save_steps)))
                for run, s in sft]
    rl_args = [(br, s, grpo_config(s, output_dir="/tmp/x", seed=cfg.seed, world_size=s.launch.world_size,
                                   cuda=s.launch.gpus_per_node > 0)) for br, s in rl]
    return sft_args, rl_args


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem if p.parent.name != "smoke" else "smoke")
def test_every_config_builds_its_trainer_configs(path):
    sft_args, rl_args = built(path)
    for _, s, args in sft_args:
        world = s.launch.world_size
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps * world == s.batch_size
        assert args.max_steps == s.steps and args.learning_rate == s.lr
        assert (args.adam_beta1, args.adam_beta2) == tuple(s.adam_betas) and args.weight_decay == s.weight_decay
    for _, s, args in rl_args:
        world = s.launch.world_size
        completions = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
        assert completions == (s.prompts_per_update or s.prompts_per_step) * s.num_generations
        assert args.max_steps == s.steps * s.updates_per_step
        assert args.steps_per_generation == args.gradient_accumulation_steps * s.updates_per_step
        assert args.num_iterations == 1 and args.beta == 0.0


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_sft_trains_as_the_study(path):
    sft_args, _ = built(path)
    for run, s, args in sft_args:
        world = s.launch.world_size
        assert world == 16                                          # 2 nodes x 8 GPUs
        global_batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
        assert global_batch == (16 if run.data == "S1K" else 512)
        assert args.per_device_train_batch_size == (1 if run.data == "S1K" else 4)
        assert args.learning_rate == 1e-5 and args.lr_scheduler_type == "cosine"
        assert (args.adam_beta1, args.adam_beta2) == (0.9, 0.95) and args.max_grad_norm == 1.0
        assert args.weight_decay == (1e-4 if run.data == "S1K" else 0.01)
        assert args.warmup_steps == math.ceil((0.05 if run.data == "S1K" else 0.1) * run.steps)
        assert args.bf16 and not args.use_cpu and args.gradient_checkpointing
        assert s.padding_free and args.use_liger_kernel and args.max_length is None
        # the stage's collator flattens the micro-batches (trl's own flag would refuse that collator)
        assert not args.padding_free and args.dataset_kwargs == {"skip_prepare_dataset": True}


def test_easy102k_continues_the_1800_step_schedule():
    cfg = load_config(ROOT / "configs" / "paper-qwen2.5-7b.yaml")
    easy = cfg.sft_settings(cfg.sft_run("qwen2.5-7b", "Easy102K"))
    uniform = cfg.sft_settings(cfg.sft_run("qwen2.5-7b", "Uniform102K"))
    assert (easy.steps, easy.schedule_horizon, uniform.steps, uniform.schedule_horizon) == (6120, 1800, 1800, None)


@pytest.mark.parametrize("path", PAPER, ids=lambda p: p.stem)
def test_paper_rl_trains_as_the_study(path):
    _, rl_args = built(path)
    for br, s, args in rl_args:
        method = br.method or "dapo_dc"
        world = s.launch.world_size
        assert world == 8
        prompts = args.per_device_train_batch_size * args.gradient_accumulation_steps * world // args.num_generations
        if method == "dapo_dc":
            assert (prompts, args.num_generations, s.prompts_per_step, s.gen_prompts_per_round) == (64, 8, 64, 128)
            assert s.max_gen_rounds == 10 and args.temperature == 0.7
        else:   # section 6.1 (the UPT codebase's scripts): 128 prompts a step in two updates of 64, temperature 1
            assert (prompts, s.prompts_per_step, s.updates_per_step, args.temperature) == (64, 128, 2, 1.0)
            assert (s.gen_prompts_per_round is not None) == METHODS[method].dynamic_sampling
            assert br.prompts == "MIX37K"   # the paradigm comparison's prompts and expert trajectories
        lr = 5e-6 if method == "upt" else 1e-6   # UPT's script: 5e-6; LUFFY, SRFT and the RL baselines: 1e-6
        assert args.learning_rate == lr and args.warmup_steps == 0 and args.lr_scheduler_type == "constant_with_warmup"
        assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (0.9, 0.999, 0.01, 1.0)
        assert args.bf16 and args.use_vllm and args.vllm_importance_sampling_correction is False
        assert args.max_completion_length == 8192
        # the colocated engine as plan budgets it: the study's tensor parallelism 2, half of each GPU,
        # asleep while the trainer trains, a context of the study's max prompt + response
        assert (args.vllm_mode, args.vllm_tensor_parallel_size, args.vllm_gpu_memory_utilization) == ("colocate", 2, 0.5)
        assert args.vllm_enable_sleep_mode and args.vllm_max_model_length == 1024 + 8192


def _grpo_args(method: str):
    from plasticity.config import RlBranchSettings
    from plasticity.train.trainer_config import grpo_config

    s = RlBranchSettings(method=method, steps=10, lr=1e-6, prompts_per_step=64, num_generations=8, temperature=0.7,
                         max_completion_length=64, eval_every=10, sft_data="none", switch=0, prompts="rl",
                         precision="fp32")
    return grpo_config(s, output_dir="/tmp/x", seed=1, world_size=1, cuda=False)


def test_dapo_dc_is_the_studys_dapo():
    """PAPER.md 2.5 (section 6.2/6.3): clip-higher 0.2/0.28, dual-clip 10, std-normalised, token-mean, no KL."""
    args = _grpo_args("dapo_dc")
    assert (args.epsilon, args.epsilon_high, args.delta) == (0.2, 0.28, 10.0)
    assert (args.scale_rewards, args.loss_type, args.beta, args.entropy_coef) == ("group", "dapo", 0.0, 0.0)
    assert METHODS["dapo_dc"].dynamic_sampling


def test_dapo_d_and_grpo_are_section_6_1():
    """PAPER.md 2.5 (section 6.1): symmetric clip, no std, token-level loss, entropy 0.001, no KL."""
    for method, filtered in (("dapo_d", True), ("grpo", False)):
        args = _grpo_args(method)
        assert (args.epsilon, args.epsilon_high, args.delta) == (0.2, 0.2, None)
        assert (args.scale_rewards, args.loss_type, args.beta, args.entropy_coef) == ("none", "dapo", 0.0, 0.001)
        assert METHODS[method].dynamic_sampling is filtered
