"""trl's own ``SFTConfig`` / ``GRPOConfig`` built from the typed settings, one field for one key.

The settings (``plasticity.config.SftRunSettings`` / ``RlBranchSettings``) speak the study's
language: global batches (sequences per SFT step; prompts per RL step, times ``num_generations``
completions), a warmup ratio or step count, a precision. Here they become trl's per-process
arithmetic at the run's world size (``config.batch_layout``: an indivisible batch is an error naming
the key). Every trainer argument the stages use is set here and nowhere else; ``python -m plasticity
plan`` prints the same numbers before anything runs.

``cuda`` is whether the job has GPUs: bf16 needs them (``precision: bf16`` resolves to fp32 on a CPU
machine, so the miniature and the CPU tests train in fp32).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from plasticity.methods import get_method

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def process_state(cuda: bool) -> Any:
    """This process's place in the job (accelerate's ``PartialState``), created before the trainer.

    ``cpu`` must be said here: accelerate joins a ``torchrun`` / ``accelerate launch`` job on CPU
    (gloo) only when asked for CPU, and the state is a singleton the trainer then reuses.
    """
    from accelerate import PartialState

    return PartialState(cpu=not cuda)


# accelerate's distributed types each strategy may run as (DDP on GPUs or on CPU processes)
STRATEGY_TYPES = {"ddp": ("MULTI_GPU", "MULTI_CPU"), "fsdp": ("FSDP",), "zero3": ("DEEPSPEED",)}


def check_strategy(strategy: str, accelerator: Any) -> None:
    """Fail when a multi-process job does not run the configured strategy.

    accelerate turns an FSDP or DeepSpeed launch into plain DDP without a word where it cannot honour
    it (accelerate 1.15 enables FSDP for accelerator devices only: on CPU processes it runs
    ``MULTI_CPU``); a 7B run would then hold the whole model and optimizer on every GPU.
    """
    if accelerator.num_processes == 1:
        return
    actual = str(accelerator.distributed_type).rsplit(".", 1)[-1]
    if actual not in STRATEGY_TYPES[strategy]:
        raise RuntimeError(f"launch.strategy {strategy!r} was configured, but accelerate runs this "
                           f"{accelerator.num_processes}-process job as {actual} (FSDP and ZeRO-3 need GPUs; "
                           f"on CPU processes use strategy 'ddp')")


class CpuResume:
    """Trainer mixin: resuming a multi-process CPU job.

    transformers maps the optimizer state onto ``args.device`` when several processes train, which on
    CPU processes is ``cpu:<rank>``; torch 2.13 restores storages to ``"cpu"`` only and raises
    "don't know how to restore data location ... (tagged with cpu:0)". The load is mapped to ``"cpu"``
    instead (the same memory), so a preempted CPU job resumes as a GPU job does.
    """

    def _load_optimizer_and_scheduler(self, checkpoint: Any) -> Any:
        if checkpoint is None or self.args.device.type != "cpu":
            return super()._load_optimizer_and_scheduler(checkpoint)
        from unittest import mock

        import torch

        load = torch.load

        def load_on_cpu(*args: Any, **kwargs: Any) -> Any:
            if str(kwargs.get("map_location", "")).startswith("cpu"):
                kwargs["map_location"] = "cpu"
            return load(*args, **kwargs)

        with mock.patch.object(torch, "load", load_on_cpu):
            return super()._load_optimizer_and_scheduler(checkpoint)


def resolved_precision(precision: str, cuda: bool) -> str:
    """``bf16`` only where CUDA is present; ``fp32`` otherwise."""
    return "bf16" if precision == "bf16" and cuda else "fp32"


def model_dtype(precision: str, cuda: bool) -> Any:
    """The dtype weights are loaded (and so trained and saved) in."""
    import torch

    return torch.bfloat16 if resolved_precision(precision, cuda) == "bf16" else torch.float32


def warmup_steps(settings: Any, total_steps: int) -> int:
    """Warmup optimizer steps: the configured count, or ``ceil(ratio x total)`` (transformers' rule)."""
    if settings.warmup_ratio is not None:
        return math.ceil(settings.warmup_ratio * total_steps)
    return int(settings.warmup_steps or 0)


def _common(settings: Any, *, output_dir: str | Path, seed: int, cuda: bool, total_steps: int,
            tracking: dict[str, Any] | None = None) -> dict[str, Any]:
    """Optimizer, schedule, precision and bookkeeping arguments shared by both trainers.

    ``tracking``: ``train.tracking.trainer_kwargs`` (report_to, run name); none: nothing is reported.
    """
    beta1, beta2 = settings.adam_betas
    bf16 = resolved_precision(settings.precision, cuda) == "bf16"
    return dict(
        output_dir=str(output_dir),
        learning_rate=float(settings.lr),
        lr_scheduler_type=SCHEDULERS[settings.scheduler],
        warmup_steps=warmup_steps(settings, total_steps),
        weight_decay=float(settings.weight_decay),
        adam_beta1=float(beta1),
        adam_beta2=float(beta2),
        max_grad_norm=float(settings.max_grad_norm),
        gradient_checkpointing=bool(settings.gradient_checkpointing),
        bf16=bf16,
        fp16=False,
        use_cpu=not cuda,
        seed=int(seed),
        data_seed=int(seed),
        **(tracking or {"report_to": "none"}),
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def sft_config(settings: Any, *, output_dir: str | Path, seed: int, world_size: int, cuda: bool,
               resume_state_at: int | None = None, tracking: dict[str, Any] | None = None) -> Any:
    """The SFT trainer's ``SFTConfig``.

    The datasets the stage passes are tokenized and truncated already (the ``tokenize`` stage's
    memory-mapped shards: the same tokens the validation loss sees), so trl's dataset preparation is
    skipped (it would rewrite the set as cache files, and its truncation is off: ``max_length=None``,
    which padding-free micro-batches need) and every column reaches the collator
    (``train.data.CompletionCollator`` turns ``completion_mask`` into labels). ``resume_state_at``: the trainer saves its resume
    state (optimizer, scheduler, RNG) when the export callback asks; the step given here only keeps
    trl's periodic saving out of the way.
    """
    from trl import SFTConfig

    micro, accum = settings.batch_layout(world_size)
    return SFTConfig(
        **_common(settings, output_dir=output_dir, seed=seed, cuda=cuda, total_steps=settings.steps,
                  tracking=tracking),
        max_steps=int(settings.steps),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        max_length=None,
        completion_only_loss=True,
        packing=False,
        # padding-free micro-batches are flattened by the stage's collator (train.data.CompletionCollator,
        # from ``settings.padding_free``): trl refuses a collator of one's own beside its own flag
        padding_free=False,
        use_liger_kernel=bool(settings.liger),
        logging_steps=max(1, settings.steps // 100),   # about 100 training-loss points per run
        save_strategy="steps" if resume_state_at else "no",
        save_steps=(resume_state_at or 0) + 1 if resume_state_at else 500,
        save_total_limit=1,
        save_only_model=False,
        dataset_num_proc=None,
        dataset_kwargs={"skip_prepare_dataset": True},
        remove_unused_columns=False,
    )


def grpo_config(settings: Any, *, output_dir: str | Path, seed: int, world_size: int, cuda: bool,
                tracking: dict[str, Any] | None = None) -> Any:
    """The RL trainer's ``GRPOConfig``: the method's recipe (plasticity.methods) and the settings' batches.

    One RL step is one generation batch of ``prompts_per_step`` prompts x G completions, trained in
    ``updates_per_step`` optimizer updates of ``prompts_per_update`` prompts; trl counts optimizer
    steps, so ``max_steps = steps x updates_per_step`` and one generation serves
    ``steps_per_generation = accumulation x updates_per_step`` micro-batches.
    """
    from trl import GRPOConfig

    method = get_method(settings.method)
    micro, accum = settings.batch_layout(world_size)
    total = int(settings.steps) * settings.updates_per_step
    kwargs: dict[str, Any] = {}
    if settings.use_vllm:
        kwargs.update(vllm_mode=settings.vllm_mode,
                      vllm_importance_sampling_correction=bool(settings.vllm_importance_sampling_correction),
                      vllm_gpu_memory_utilization=float(settings.vllm_gpu_memory_utilization),
                      vllm_max_model_length=int(settings.max_model_length),
                      vllm_enable_sleep_mode=bool(settings.vllm_enable_sleep_mode and settings.vllm_mode == "colocate"),
                      vllm_tensor_parallel_size=int(settings.vllm_tensor_parallel_size))
    return GRPOConfig(
        **_common(settings, output_dir=output_dir, seed=seed, cuda=cuda, total_steps=total, tracking=tracking),
        max_steps=total,
        per_device_train_batch_size=micro,          # completions per process per forward
        gradient_accumulation_steps=accum,
        steps_per_generation=accum * settings.updates_per_step,
        num_generations=int(settings.num_generations),
        num_iterations=1,
        temperature=float(settings.temperature),
        top_p=1.0,
        top_k=0,
        max_completion_length=int(settings.max_completion_length),
        loss_type=method.loss_type,
        epsilon=method.epsilon,
        epsilon_high=method.epsilon_high,
        delta=method.delta,
        scale_rewards=method.scale_rewards,
        entropy_coef=method.entropy_coef,
        beta=0.0,
        use_vllm=bool(settings.use_vllm),
        logging_steps=1,
        save_strategy="no",
        log_completions=False,
        **kwargs,
    )
