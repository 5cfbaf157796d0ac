"""``rl``: the RL defaults, the synchronized methods' settings and the branches of the matrix."""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from plasticity.config.base import SWITCH_RULES, Strict
from plasticity.config.training import TrainSettings, batch_layout
from plasticity.methods import get_method


class SyncSettings(Strict):
    """Settings of the synchronized SFT+RL methods where the study's sources disagree or are silent.

    ``agg``: how the RL term's token losses are summed into the loss. The released UPT-codebase
    scripts the study ran set ``loss_remove_token_mean=True`` (the sum over response tokens divided
    by the padded response width, ``max_completion_length``, per sequence: ``seq_sum_over_lmax``,
    Dr.GRPO-like); PAPER 4 says "token-mean" for LUFFY (``token_mean``: the mean over the update's
    tokens). Default: what the study ran. Applies to every synchronized method's RL term.
    """

    agg: Literal["seq_sum_over_lmax", "token_mean"] = "seq_sum_over_lmax"
    # Prefix-RFT: rho = lb(t) + (0.95 - lb(t)) x Beta(alpha, beta); PAPER.md does not give alpha, beta
    prefix_beta: tuple[float, float] = (1.0, 1.0)
    # Prefix-RFT: RL steps T over which the lower bound decays from 0.95 to 0.05; None: the branch's steps
    prefix_decay_steps: int | None = Field(None, gt=0)
    # CHORD (arXiv 2508.11408): mu(t) warms up linearly to mu_peak, decays by cosine to mu_valley.
    # Defaults: ../shared/SYNC_METHODS.md's worked example, not checked against the paper's runs.
    chord_mu_peak: float = Field(0.9, ge=0, le=1)
    chord_mu_valley: float = Field(0.05, ge=0, le=1)
    chord_mu_warmup_steps: int = Field(10, ge=0)
    chord_mu_decay_steps: int = Field(100, gt=0)
    chord_phi: bool = True                    # CHORD-phi: expert-token NLL weighted by p (1 - p)


class RlSettings(TrainSettings):
    """RL as the study runs it (PAPER 2.5); the method's loss recipe comes from plasticity.methods."""

    method: str = "dapo_dc"
    steps: int = Field(gt=0)                      # RL steps: generation batches (the study's step axis)
    prompts_per_step: int = Field(gt=0)           # prompts trained on per RL step, over all processes
    prompts_per_update: int | None = Field(None, gt=0)   # optimizer mini-batch (prompts); None: one update a step
    gen_prompts_per_round: int | None = Field(None, gt=0)   # dynamic sampling: prompts per generation round
    max_gen_rounds: int = Field(10, gt=0)         # dynamic sampling: rounds per step at most
    num_generations: int = Field(gt=1)            # rollouts per prompt (G)
    micro_batch_size: int | None = Field(None, gt=0)   # completions per process per forward
    temperature: float = Field(gt=0)
    max_completion_length: int = Field(gt=0)
    eval_every: int = Field(gt=0)                 # RL steps between in-loop evaluations
    # avg@k of the in-loop evaluation, per benchmark as eval.samples ({default: k, name: k}); None: eval.samples
    eval_samples: dict[str, int] | None = None
    save_every: int = Field(50, gt=0)             # RL steps between resume checkpoints (and on SIGTERM)
    # prompt tokens at most, chat template included (the study: 1,024; data.filter.max_prompt_tokens keeps
    # longer prompts out): with max_completion_length, the context vLLM must hold and plan's KV cache
    max_prompt_length: int = Field(1024, gt=0)
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    # trl's correction of the vLLM / trainer probability mismatch; the study trained without it
    vllm_importance_sampling_correction: bool = False
    # The colocated engine (trl's GRPOConfig keys; plan checks them against cluster.gpu_mem_gb). vLLM takes
    # this share of each GPU (weights + KV cache); the trainer keeps the rest.
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, lt=1)
    # Sequences the engine decodes at once (vLLM's max_num_seqs). None: trl's own cap, per-device batch x
    # tensor parallel x steps per generation. GRPOConfig has no key for it: train.rollouts.vllm_sequence_cap
    # hands it to the engine trl builds. plan reports the value in use and warns when the KV cache holds
    # fewer sequences of the expected length.
    vllm_max_num_seqs: int | None = Field(None, gt=0)
    vllm_max_model_length: int | None = Field(None, gt=0)   # None: max_prompt_length + max_completion_length
    vllm_enable_sleep_mode: bool = False   # colocate: vLLM frees its memory while the trainer trains
    vllm_tensor_parallel_size: int = Field(1, gt=0)
    # dynamic sampling: the share of generated groups with 1..G-1 correct, from which plan derives the
    # expected generation rounds per step (budget.timing.expected_rounds). PAPER.md gives no value: 0.5
    # is an assumption; a pilot run's train_log.jsonl (kept_groups over drawn groups) gives yours.
    expected_keep_rate: float = Field(0.5, gt=0, le=1)
    # The reward (PAPER 2.5; train.rewards): "released" is the study's GPU training reward
    # (math-verify, then the <answer> span as string / number / choice, then a Levenshtein ratio
    # > 0.6), "strict" math-verify alone. The evaluation grades with eval.grader either way. The
    # default stays strict: the embedded and miniature configs keep the verdicts they were built with.
    reward: Literal["released", "strict"] = "strict"
    scheduler: Literal["cosine", "constant", "linear"] = "constant"
    weight_decay: float = Field(0.01, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    sync: SyncSettings = SyncSettings()           # synchronized SFT+RL methods (plasticity.methods)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        get_method(v)
        return v

    @property
    def updates_per_step(self) -> int:
        """Optimizer updates per RL step (PPO mini-batches of ``prompts_per_update`` prompts)."""
        return self.prompts_per_step // (self.prompts_per_update or self.prompts_per_step)

    def batch_layout(self, world_size: int) -> tuple[int, int]:
        """(completions per process per forward, gradient-accumulation steps) of one optimizer update.

        Each process also generates an equal share of every round's prompts and keeps an equal share
        of the step's groups, so ``prompts_per_step`` and ``gen_prompts_per_round`` must divide too.
        """
        for key in ("prompts_per_step", "gen_prompts_per_round"):
            value = getattr(self, key)
            if value is not None and value % world_size:
                raise ValueError(f"{key} = {value} does not divide over {world_size} processes")
        update = self.prompts_per_update or self.prompts_per_step
        return batch_layout(update * self.num_generations, self.micro_batch_size, world_size,
                            "prompts_per_update x num_generations (completions)")

    @property
    def max_model_length(self) -> int:
        """The context vLLM is started with: prompt + completion unless configured."""
        return self.vllm_max_model_length or self.max_prompt_length + self.max_completion_length

    @model_validator(mode="after")
    def _batches(self) -> "RlSettings":
        if self.vllm_max_model_length is not None and \
                self.vllm_max_model_length < self.max_prompt_length + self.max_completion_length:
            raise ValueError(f"vllm_max_model_length ({self.vllm_max_model_length}) is below max_prompt_length + "
                             f"max_completion_length ({self.max_prompt_length + self.max_completion_length})")
        if self.use_vllm and self.launch.world_size % self.vllm_tensor_parallel_size:
            raise ValueError(f"vllm_tensor_parallel_size ({self.vllm_tensor_parallel_size}) does not divide the "
                             f"{self.launch.world_size} processes")
        update = self.prompts_per_update or self.prompts_per_step
        if self.prompts_per_step % update:
            raise ValueError(f"prompts_per_step ({self.prompts_per_step}) must be a multiple of "
                             f"prompts_per_update ({update})")
        if self.gen_prompts_per_round is not None and not get_method(self.method).dynamic_sampling:
            raise ValueError(f"gen_prompts_per_round: method {self.method!r} has no dynamic sampling "
                             "(its generation batch is prompts_per_step)")
        recipe = get_method(self.method).sync
        if recipe is not None and recipe.skip_grad_norm is not None and self.launch.strategy == "zero3":
            raise ValueError(f"launch.strategy: method {self.method!r} skips updates whose gradient norm exceeds "
                             f"{recipe.skip_grad_norm:g}, which needs the trainer's own clipping: ddp or fsdp, "
                             "not zero3 (DeepSpeed clips inside its engine)")
        return self


class RlBranchSettings(RlSettings):
    """One branch's resolved settings: the rl stage's input."""

    sft_data: str
    switch: Union[int, str]
    prompts: str


class RlBranch(Strict):
    model: str
    sft_data: str                     # a named SFT set with an SFT run, or `none` (RL from the base)
    switch: Union[int, str]
    method: str | None = None         # default: rl.defaults.method
    prompts: str = "rl"               # named set of RL prompts (e.g. rl, mix)
    overrides: dict[str, Any] = {}

    @field_validator("switch")
    @classmethod
    def _switch(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if v < 0:
                raise ValueError("switch step must be >= 0")
            return v
        if v not in SWITCH_RULES:
            raise ValueError(f"switch {v!r} is neither a step nor one of {list(SWITCH_RULES)}")
        return v


class Rl(Strict):
    defaults: RlSettings
    branches: list[RlBranch] = []


