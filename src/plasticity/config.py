"""The one config schema (config.yaml and every configs/*.yaml), validated on load.

Unknown keys, wrong types and impossible combinations are errors naming the key path, e.g.
``rl.branches.1.switch: switch 'stabel' is neither a step nor one of [...]``. Imports no torch:
Snakemake loads this module to expand the experiment matrix.

Use: ``load_config(path) -> Config`` (or ``validate(dict)``); ``python -m plasticity.config FILE``
validates a file and prints the expanded matrix.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from plasticity.analysis.flops import MODEL_REGISTRY
from plasticity.methods import METHODS, get_method

# Wildcard values end up in paths and shell commands: keep them to a safe alphabet.
NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_NAME = re.compile(rf"^{NAME_RE}$")
REGIMES = ("adaptive", "stable", "mild", "severe")
SWITCH_RULES = ("min_val_loss",) + REGIMES
SOURCE_FORMATS = ("am_40m", "am_1.4m", "s1k", "skywork_or1", "retu_sft", "retu_rl")
SET_KINDS = ("val", "all", "uniform", "easy", "hard", "rl", "mix", "source")


SectionT = TypeVar("SectionT", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is invalid; the message names the file and every offending key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} must match {NAME_RE} (it becomes part of paths)")
    return value


# ----------------------------------------------------------------------------------------- models
class TinyArch(Strict):
    hidden_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyArch":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")
        return self


class Pretrain(Strict):
    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    examples: int = Field(gt=0)


class ModelSpec(Strict):
    """`tiny`: built here; `hub`: hub_id + pinned revision; `path`: local dir + sha256."""

    source: Literal["tiny", "hub", "path"]
    trust_remote_code: bool = False
    arch: TinyArch | None = None
    pretrain: Pretrain | None = None
    hub_id: str | None = None
    revision: str | None = None
    path: str | None = None
    sha256: str | None = None
    flops_constants: str | None = None   # key of analysis.flops.MODEL_REGISTRY

    @model_validator(mode="after")
    def _source_fields(self) -> "ModelSpec":
        need = {"tiny": ("arch", "pretrain"), "hub": ("hub_id", "revision"), "path": ("path", "sha256")}
        missing = [k for k in need[self.source] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"source {self.source!r} requires {missing}")
        return self


# ------------------------------------------------------------------------------------------- data
class Faults(Strict):
    wrong_answer: float = Field(0.0, ge=0, le=1)
    duplicate: float = Field(0.0, ge=0, le=1)
    non_math: float = Field(0.0, ge=0, le=1)
    other_teacher: float = Field(0.0, ge=0, le=1)
    overlong: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    benchmark_copy: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _total(self) -> "Faults":
        if sum(self.model_dump().values()) > 0.9:
            raise ValueError("fault fractions add up to more than 0.9: too little clean data would remain")
        return self


class Teacher(Strict):
    problems: int = Field(gt=0)
    rl_prompts: int = Field(gt=0)
    levels: list[int] = Field(min_length=1)
    shards: int = Field(1, gt=0)
    faults: Faults = Faults()

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        from plasticity.problems import MAX_LEVEL, MIN_LEVEL
        bad = [x for x in v if not MIN_LEVEL <= x <= MAX_LEVEL]
        if bad:
            raise ValueError(f"levels {bad} outside [{MIN_LEVEL}, {MAX_LEVEL}]")
        return v


class Source(Strict):
    name: str
    format: Literal[SOURCE_FORMATS]  # type: ignore[valid-type]
    path: str | None = None          # `teacher` = the simulated teacher's output; else a file/dir
    hub_id: str | None = None
    revision: str | None = None
    files: list[str] | None = None   # file names inside the hub repo (e.g. math_r1_1pass.jsonl)
    split: str | None = None

    _name = field_validator("name")(lambda v: _check_name(v, "source name"))

    @model_validator(mode="after")
    def _where(self) -> "Source":
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of `path` or `hub_id`")
        if self.hub_id is not None and not self.revision:
            raise ValueError("a hub source needs a pinned `revision`")
        return self


class Filter(Strict):
    max_prompt_tokens: int = Field(gt=0)
    max_response_tokens: int = Field(gt=0)
    tokenizer: str | None = None          # model name whose tokenizer counts tokens (default: first model)
    teachers: list[str] | None = None     # accepted teacher names (default: the R1-671B names)
    grader_mode: Literal["strict", "lenient"] = "strict"
    rl_difficulty: tuple[float, float] | None = None   # keep RL prompts with difficulty in [lo, hi]
    domains: list[str] = ["math"]
    exempt_sources: list[str] = []        # sources kept as released (e.g. s1k: worked-solution references)
    workers: int | None = Field(None, gt=0)   # the job's CPUs, passed to the stage as --threads (default 1)


class BenchmarkSide(Strict):
    model_path: str                       # local embedding model directory (safetensors)
    threshold: float = Field(0.8, gt=0, le=1)
    pooling: Literal["last", "mean"] = "last"   # without sentence-transformers; last: Qwen3-Embedding


class Decontaminate(Strict):
    ngram: int = Field(8, gt=0)
    fields: list[str] = ["prompt"]        # training-side text fields compared with benchmark prompts
    workers: int | None = Field(None, gt=0)   # the job's CPUs, passed to the stage as --threads (default 1)
    benchmark_side: BenchmarkSide | None = None


class Difficulty(Strict):
    source: Literal["metadata", "sample"] = "metadata"
    samples: int = Field(4, gt=0)
    model: str | None = None              # reference model (a `models` name) when source = sample
    column: str = "win_rate_small"        # win-rate column that sampling fills
    backend: Literal["transformers", "vllm"] = "transformers"
    temperature: float = Field(0.7, gt=0)   # sampling, never greedy (the evaluation's rule)
    max_new_tokens: int = Field(1024, gt=0)
    grader_mode: Literal["strict", "lenient"] = "strict"

    @model_validator(mode="after")
    def _model(self) -> "Difficulty":
        if self.source == "sample" and not self.model:
            raise ValueError("difficulty.source 'sample' needs `model` (a reference model name)")
        return self


class DataSet(Strict):
    kind: Literal[SET_KINDS]  # type: ignore[valid-type]
    size: int | None = Field(None, gt=0)
    min_win_rate: float | None = Field(None, ge=0, le=1)
    max_win_rate: float | None = Field(None, ge=0, le=1)
    max_response_tokens: int | None = Field(None, gt=0)
    source: str | None = None             # kind `source`: every row of this source (e.g. S1K)
    from_set: str | None = None           # draw from another named set's pool instead of all rows

    @model_validator(mode="after")
    def _kind_fields(self) -> "DataSet":
        if self.kind in ("val", "uniform", "easy", "hard") and self.size is None:
            raise ValueError(f"kind {self.kind!r} needs `size`")
        if self.kind == "source" and not self.source:
            raise ValueError("kind 'source' needs `source`")
        return self


class Data(Strict):
    teacher: Teacher | None = None
    sources: list[Source] = Field(min_length=1)
    rl_source: Source
    filter: Filter
    decontaminate: Decontaminate = Decontaminate()
    difficulty: Difficulty = Difficulty()
    sets: dict[str, DataSet]

    def uses_teacher(self) -> bool:
        """True when a source reads the simulated teacher's output (`path: teacher`)."""
        return any(s.path == "teacher" for s in [*self.sources, self.rl_source])

    @model_validator(mode="after")
    def _consistent(self) -> "Data":
        for name in self.sets:
            _check_name(name, "set name")
        if self.uses_teacher() and self.teacher is None:
            raise ValueError("a source has `path: teacher` but data.teacher is not configured")
        if sum(s.kind == "val" for s in self.sets.values()) != 1:
            raise ValueError("exactly one set of kind 'val' is required (the SFT validation set)")
        return self


# ------------------------------------------------------------------------------------------- eval
class Sampling(Strict):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(8192, gt=0)


class GraderCfg(Strict):
    mode: Literal["strict", "lenient"] = "strict"
    timeout_s: float = Field(5.0, gt=0)
    workers: int = Field(1, gt=0)


class Judge(Strict):
    """OpenAI-compatible endpoint adjudicating strict/lenient disagreements (eval/judge.py)."""

    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(1024, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0)
    concurrency: int = Field(4, gt=0)
    max_requests: int = Field(10_000, gt=0)


class Eval(Strict):
    benchmarks: list[str] = Field(min_length=1)
    backend: Literal["transformers", "vllm"] = "transformers"
    sampling: Sampling = Sampling()
    samples: dict[str, int] = {"default": 1}
    batch_size: int = Field(64, gt=0)
    tensor_parallel_size: int = Field(1, gt=0)
    grader: GraderCfg = GraderCfg()
    judge: Judge | None = None
    ood_benchmarks: list[str] = []

    @model_validator(mode="after")
    def _samples(self) -> "Eval":
        for name in self.benchmarks + self.ood_benchmarks:
            _check_name(name, "benchmark name")
        unknown = set(self.samples) - {"default"} - set(self.benchmarks) - set(self.ood_benchmarks)
        if unknown:
            raise ValueError(f"eval.samples names benchmarks not in eval.benchmarks: {sorted(unknown)}")
        if any(k < 1 for k in self.samples.values()):
            raise ValueError("eval.samples values must be >= 1")
        return self


# ---------------------------------------------------------------------------------- training runs
class Launch(Strict):
    """Where a training job runs: set once here; the rules derive SLURM resources and the launcher
    (``plasticity.launch``).

    ``processes_per_node`` defaults to one process per GPU (one process on a CPU-only node); the world
    size is ``nodes x processes_per_node``. ``strategy`` picks the shipped accelerate configuration
    (``configs/accelerate/<strategy>.yaml``): plain DDP, FSDP (full shard) or DeepSpeed ZeRO-3.
    """

    nodes: int = Field(1, gt=0)
    gpus_per_node: int = Field(0, ge=0)
    processes_per_node: int | None = Field(None, gt=0)
    strategy: Literal["ddp", "fsdp", "zero3"] = "ddp"
    cpus_per_process: int = Field(1, gt=0)        # the job's threads: torch intra-op threads per process
    mem_gb_per_process: float = Field(4.0, gt=0)  # host memory the scheduler reserves per process
    time_min: int = Field(60, gt=0)               # the job's time limit (SLURM --time), minutes

    @property
    def procs_per_node(self) -> int:
        return self.processes_per_node or max(self.gpus_per_node, 1)

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    @model_validator(mode="after")
    def _procs(self) -> "Launch":
        if self.gpus_per_node and self.processes_per_node not in (None, self.gpus_per_node):
            raise ValueError(f"processes_per_node ({self.processes_per_node}) must equal gpus_per_node "
                             f"({self.gpus_per_node}): one process per GPU")
        return self


def batch_layout(global_items: int, micro: int | None, world_size: int, what: str) -> tuple[int, int]:
    """(items per process per forward, gradient-accumulation steps) for ``global_items`` per optimizer step.

    ``global_items`` is spread evenly over ``world_size`` processes; each process accumulates
    micro-batches of ``micro`` items (default: its whole share in one forward). Anything that does not
    divide is an error naming ``what`` and the numbers.
    """
    if global_items % world_size:
        raise ValueError(f"{what} = {global_items} does not divide over {world_size} processes")
    share = global_items // world_size
    micro = micro or share
    if share % micro:
        raise ValueError(f"{what} = {global_items} over {world_size} processes is {share} per process, "
                         f"not a multiple of micro_batch_size = {micro}")
    return micro, share // micro


class TrainSettings(Strict):
    """Optimizer, schedule, precision and launch keys shared by SFT and RL (their defaults differ)."""

    lr: float = Field(gt=0)
    scheduler: Literal["cosine", "constant", "linear"]
    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    weight_decay: float = Field(ge=0)
    adam_betas: tuple[float, float]
    max_grad_norm: float = Field(1.0, gt=0)
    # bf16: weights loaded, trained and saved in bf16 where CUDA is present; fp32 on a CPU machine
    precision: Literal["bf16", "fp32"] = "bf16"
    gradient_checkpointing: bool = False
    launch: Launch = Launch()

    @model_validator(mode="after")
    def _one_warmup(self) -> "TrainSettings":
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("give warmup_steps or warmup_ratio, not both")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must lie in [0, 1), got {list(self.adam_betas)}")
        return self


class SftSettings(TrainSettings):
    """SFT as the study runs it (PAPER 2.4; verl ``fsdp_sft_trainer`` defaults where not overridden)."""

    batch_size: int = Field(gt=0)                 # sequences per optimizer step, over all processes
    micro_batch_size: int | None = Field(None, gt=0)   # sequences per process per forward; None: batch / world
    max_length: int = Field(gt=0)                 # prompt + response tokens, right-truncated
    scheduler: Literal["cosine", "constant", "linear"] = "cosine"
    weight_decay: float = Field(0.01, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.95)
    padding_free: bool = False                    # flatten each micro-batch with position ids (no padding)
    liger: bool = False                           # Liger kernels (CUDA; fused linear cross-entropy)

    def batch_layout(self, world_size: int) -> tuple[int, int]:
        """(sequences per process per forward, gradient-accumulation steps) on ``world_size`` processes."""
        return batch_layout(self.batch_size, self.micro_batch_size, world_size, "batch_size (sequences)")


class SftRun(Strict):
    model: str
    data: str
    steps: int = Field(gt=0)
    save_steps: list[int] = Field(min_length=1)
    # Steps over which warmup and cosine are laid out when the run is the continuation of a shorter
    # one (see configs/paper-qwen2.5-7b.yaml, Easy102K): up to the horizon the schedule is that of a
    # `schedule_horizon`-step run; after it, the schedule is rebuilt over all `steps`, as verl does
    # when a finished run is resumed with more steps. None: one schedule over `steps`.
    schedule_horizon: int | None = Field(None, gt=0)
    overrides: dict[str, Any] = {}          # any SftSettings key, for this run only

    @model_validator(mode="after")
    def _steps(self) -> "SftRun":
        bad = [s for s in self.save_steps if not 0 < s <= self.steps]
        if bad or sorted(set(self.save_steps)) != self.save_steps:
            raise ValueError(f"save_steps must be increasing, unique and within (0, steps={self.steps}]")
        if self.schedule_horizon is not None and not self.schedule_horizon < self.steps:
            raise ValueError(f"schedule_horizon ({self.schedule_horizon}) must be below steps ({self.steps})")
        return self


class SftRunSettings(SftSettings):
    """One SFT run's resolved settings (defaults + overrides + the run's own keys): the sft stage's input."""

    data: str
    steps: int = Field(gt=0)
    save_steps: list[int]
    schedule_horizon: int | None = None


class Regimes(Strict):
    delta: float = Field(0.02, gt=0)
    delta2: float = Field(0.10, gt=0)

    @model_validator(mode="after")
    def _order(self) -> "Regimes":
        if self.delta2 <= self.delta:
            raise ValueError("delta2 must be greater than delta")
        return self


class Sft(Strict):
    defaults: SftSettings
    runs: list[SftRun] = []
    regimes: Regimes = Regimes()


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
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    # trl's correction of the vLLM / trainer probability mismatch; the study trained without it
    vllm_importance_sampling_correction: bool = False
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

    @model_validator(mode="after")
    def _batches(self) -> "RlSettings":
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


# ------------------------------------------------------------------------------------------ report
class FitCfg(Strict):
    outlier_tau: Union[float, Literal["auto"]] = "auto"
    lts_alpha: Union[float, Literal["auto", "none"]] = "auto"
    eps: Union[float, Literal["free"]] = 0.0


class Report(Strict):
    fit: FitCfg = FitCfg()
    # Curves from elsewhere (the layout of reference/sft889k_curves.csv) rendered instead of this
    # project's results, with optional per-branch fit hyperparameters (the layout of
    # reference/sft889k_table4.csv) and per-set minimum validation losses for Tables 1, 5 and Figure 8
    # (the layout of reference/min_val_loss.csv): the study's own published curves through this pipeline.
    import_curves: str | None = None
    import_hparams: str | None = None
    import_min_loss: str | None = None
    model: str | None = None                # model whose runs the report covers (default: first in use)


# ------------------------------------------------------------------------------ scheduler requests
# Every rule that runs as its own job and is not a training rule (those take their launch settings).
JOB_RULES = ("benchmarks", "teacher", "ingest", "filter", "decontaminate", "difficulty", "subsets",
             "tokenizer", "base", "generate", "grade", "curves", "fits", "table", "figure", "metrics")


class JobRequest(Strict):
    """What one job of a non-training rule asks the scheduler for. The defaults fit any one-node
    cluster; a config raises them per rule (``resources: {filter: {mem_gb: 64, time_min: 480}}``).
    CPUs are the rule's threads: ``workers`` of filter / decontaminate, one elsewhere."""

    mem_gb: float = Field(2.0, gt=0)
    time_min: int = Field(60, gt=0)


# ------------------------------------------------------------------------------------------- root
class Config(Strict):
    seed: int = 1234
    # Seed of training and evaluation sampling (SFT, RL, generation); None: ``seed``. The data world
    # (teacher, sets, benchmarks), the tokenizer and the base model keep ``seed``, so runs that differ
    # only here are repeats of one study (bash run.sh seeds).
    train_seed: int | None = None
    results_dir: str = "results"
    reports_dir: str = "reports"
    models: dict[str, ModelSpec] = Field(min_length=1)
    data: Data
    eval: Eval
    sft: Sft
    rl: Rl
    report: Report = Report()
    resources: dict[str, JobRequest] = {}   # by rule name (JOB_RULES)

    @model_validator(mode="after")
    def _cross_refs(self) -> "Config":
        errors = []
        for name in self.models:
            try:
                _check_name(name, "model name")
            except ValueError as exc:
                errors.append(f"models.{name}: {exc}")
        sets = self.data.sets
        run_keys = set()
        for i, run in enumerate(self.sft.runs):
            if run.model not in self.models:
                errors.append(f"sft.runs.{i}.model: unknown model {run.model!r}")
            if run.data not in sets:
                errors.append(f"sft.runs.{i}.data: unknown data set {run.data!r}")
            elif sets[run.data].kind in ("val", "rl"):
                errors.append(f"sft.runs.{i}.data: set {run.data!r} of kind {sets[run.data].kind!r} is not SFT data")
            bad = set(run.overrides) - set(SftSettings.model_fields)
            if bad:
                errors.append(f"sft.runs.{i}.overrides: unknown keys {sorted(bad)}")
            else:
                errors += _resolved_errors(lambda: self.sft_settings(run), f"sft.runs.{i}")
            if (run.model, run.data) in run_keys:
                errors.append(f"sft.runs.{i}: duplicate run for ({run.model}, {run.data})")
            run_keys.add((run.model, run.data))
        for i, br in enumerate(self.rl.branches):
            where = f"rl.branches.{i}"
            if br.model not in self.models:
                errors.append(f"{where}.model: unknown model {br.model!r}")
            if br.prompts not in sets or sets[br.prompts].kind not in ("rl", "mix"):
                errors.append(f"{where}.prompts: {br.prompts!r} is not a data set of kind rl or mix")
            elif (getattr(METHODS.get(br.method or self.rl.defaults.method), "sync", None) is not None
                  and sets[br.prompts].kind != "mix"):
                errors.append(f"{where}.prompts: method {br.method or self.rl.defaults.method!r} trains on the "
                              f"expert trajectories of a data set of kind mix, not {br.prompts!r}")
            if br.sft_data == "none":
                if br.switch != 0:
                    errors.append(f"{where}.switch: RL from the base (sft_data none) needs switch 0")
            elif (br.model, br.sft_data) not in run_keys:
                errors.append(f"{where}.sft_data: no sft run for ({br.model}, {br.sft_data})")
            elif isinstance(br.switch, int):
                run = next(r for r in self.sft.runs if (r.model, r.data) == (br.model, br.sft_data))
                if br.switch not in run.save_steps:
                    errors.append(f"{where}.switch: step {br.switch} is not a save step of that run "
                                  f"{run.save_steps}")
            bad = set(br.overrides) - set(RlSettings.model_fields)
            if bad:
                errors.append(f"{where}.overrides: unknown keys {sorted(bad)}")
            else:
                errors += _resolved_errors(lambda: self.rl_settings(br), where) or self._in_loop_backend(br, where)
        for name, spec in self.models.items():
            if spec.flops_constants is not None and spec.flops_constants not in MODEL_REGISTRY:
                errors.append(f"models.{name}.flops_constants: {spec.flops_constants!r} is not one of "
                              f"{sorted(MODEL_REGISTRY)}")
        if self.report.import_hparams and not self.report.import_curves:
            errors.append("report.import_hparams: only used with report.import_curves")
        if self.report.import_min_loss and not self.report.import_curves:
            errors.append("report.import_min_loss: only used with report.import_curves")
        if self.report.model and self.report.model not in self.models:
            errors.append(f"report.model: unknown model {self.report.model!r}")
        if self.data.difficulty.model and self.data.difficulty.model not in self.models:
            errors.append(f"data.difficulty.model: unknown model {self.data.difficulty.model!r}")
        if self.data.filter.tokenizer and self.data.filter.tokenizer not in self.models:
            errors.append(f"data.filter.tokenizer: unknown model {self.data.filter.tokenizer!r}")
        errors += [f"resources.{name}: not a rule of its own job {JOB_RULES}"
                   for name in self.resources if name not in JOB_RULES]
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # -- resolved views used by the workflow and the stages ------------------------------------
    def sft_settings(self, run: SftRun) -> SftRunSettings:
        """One run's settings: defaults, then the run's overrides, then its own keys; batch layout checked."""
        merged = {**self.sft.defaults.model_dump(exclude_unset=True), **run.overrides}
        settings = SftRunSettings(**merged, data=run.data, steps=run.steps, save_steps=run.save_steps,
                                  schedule_horizon=run.schedule_horizon)
        settings.batch_layout(settings.launch.world_size)
        return settings

    def rl_settings(self, branch: RlBranch) -> RlBranchSettings:
        """One branch's settings: defaults, the branch's overrides and method; batch layout checked."""
        merged = {**self.rl.defaults.model_dump(exclude_unset=True), **branch.overrides}
        if branch.method:
            merged["method"] = branch.method
        settings = RlBranchSettings(**merged, sft_data=branch.sft_data, switch=branch.switch,
                                    prompts=branch.prompts)
        settings.batch_layout(settings.launch.world_size)
        return settings

    def job_request(self, rule: str) -> JobRequest:
        """The scheduler request of a non-training rule: its ``resources`` entry or the defaults."""
        return self.resources.get(rule, JobRequest())

    def sft_run(self, model: str, data: str) -> SftRun:
        for run in self.sft.runs:
            if (run.model, run.data) == (model, data):
                return run
        raise KeyError(f"no sft run for model {model!r} and data {data!r}")

    def rl_branch(self, model: str, sft_data: str, switch: str, method: str) -> RlBranch:
        for b in self.rl.branches:
            if (b.model, b.sft_data, str(b.switch), b.method or self.rl.defaults.method) == \
                    (model, sft_data, str(switch), method):
                return b
        raise KeyError(f"no rl branch {model}/{sft_data}@{switch}/{method} in the config")

    def _in_loop_backend(self, branch: RlBranch, where: str) -> list[str]:
        return _in_loop_backend_errors(self.eval.backend, self.rl_settings(branch), where)

    def tokenizer_model(self) -> str:
        return self.data.filter.tokenizer or next(iter(self.models))

    def section(self, stage: str, key: str = "all") -> BaseModel:
        """The resolved config section a stage reads (``results/configs/<stage>/<key>.json``).

        Each stage gets only the keys it reads, so a change elsewhere does not rerun it; the stage
        loads the file back through the same model (``load_section``).
        """
        seed, data = self.seed, self.data
        run_seed = self.seed if self.train_seed is None else self.train_seed
        if stage in ("tokenizer", "base", "generate"):
            model = {"seed": seed, "model_name": key, "model": self.models[key]}
            if stage == "generate":
                return GenerateSection(**{**model, "seed": run_seed}, eval=_pick(self.eval, EvalGeneration))
            return ModelSection(**model)
        if stage == "sft":
            model, sft_data = key.split("/")
            return SftSection(seed=run_seed, model_name=model, model=self.models[model],
                              sft=self.sft_settings(self.sft_run(model, sft_data)), regimes=self.sft.regimes)
        if stage == "rl":
            model, branch, method = key.split("/")
            sft_data, switch = branch.split("@")
            return RlSection(seed=run_seed, model_name=model, model=self.models[model],
                             rl=self.rl_settings(self.rl_branch(model, sft_data, switch, method)),
                             regimes=self.sft.regimes, eval=self.eval)
        if stage == "grade":
            return GradeSection(seed=seed, eval=_pick(self.eval, EvalGrading))
        if stage == "teacher":
            return TeacherSection(seed=seed, teacher=data.teacher)
        if stage == "ingest":
            return IngestSection(seed=seed, sources=data.sources, rl_source=data.rl_source)
        if stage == "filter":
            return FilterSection(seed=seed, filter=data.filter)
        if stage == "decontaminate":
            return DecontaminateSection(seed=seed, decontaminate=data.decontaminate)
        if stage == "difficulty":
            return DifficultySection(seed=seed, difficulty=data.difficulty)
        if stage == "subsets":
            return SubsetsSection(seed=seed, sets=data.sets)
        if stage == "benchmarks":
            return BenchmarksSection(seed=seed, benchmarks=self.eval.benchmarks + self.eval.ood_benchmarks)
        if stage == "settings":   # Table 2: the study's training and evaluation settings
            return SettingsSection(sft=self.sft.defaults, rl=self.rl.defaults, sampling=self.eval.sampling,
                                   regimes=self.sft.regimes)
        raise ValueError(f"unknown stage {stage!r}")


def _in_loop_backend_errors(eval_backend: str, settings: "RlBranchSettings", where: str) -> list[str]:
    """In-loop evaluation through vLLM reuses the trainer's own colocated engine (no second copy of the
    model on the GPUs; a server-mode engine lives elsewhere and serves the trainer only)."""
    if eval_backend == "vllm" and not (settings.use_vllm and settings.vllm_mode == "colocate"):
        return [f"{where}: eval.backend vllm evaluates RL branches on the trainer's colocated vLLM engine: "
                "set use_vllm: true and vllm_mode: colocate, or eval.backend: transformers"]
    return []


def _resolved_errors(resolve: Any, where: str) -> list[str]:
    """Errors of a run's or branch's merged settings, each prefixed with the entry's key path."""
    try:
        resolve()
    except ValidationError as exc:
        return [f"{where}: " + line.strip() for line in _format_errors(exc, "").splitlines()[1:]]
    except ValueError as exc:
        return [f"{where}: {exc}"]
    return []


def _subset(model: type[BaseModel], name: str, fields: tuple[str, ...]) -> type[BaseModel]:
    """A model of some of ``model``'s fields, each with its one definition (type, default, bounds)."""
    return create_model(name, __base__=Strict,
                        **{f: (model.model_fields[f].annotation, model.model_fields[f]) for f in fields})


def _pick(value: BaseModel, model: type[BaseModel]) -> BaseModel:
    return model(**{f: getattr(value, f) for f in model.model_fields})


# ------------------------------------------------------------------------------ stage sections
# What each stage reads; `Config.section` builds them, `load_section` reads them back in the stage.
EvalGeneration = _subset(Eval, "EvalGeneration", ("benchmarks", "ood_benchmarks", "backend", "sampling",
                                                   "samples", "batch_size", "tensor_parallel_size"))
EvalGrading = _subset(Eval, "EvalGrading", ("benchmarks", "ood_benchmarks", "grader", "judge"))


class Section(Strict):
    seed: int


class ModelSection(Section):
    model_name: str
    model: ModelSpec


class GenerateSection(ModelSection):
    eval: EvalGeneration  # type: ignore[valid-type]


class GradeSection(Section):
    eval: EvalGrading  # type: ignore[valid-type]


class SftSection(ModelSection):
    sft: SftRunSettings
    regimes: Regimes


class RlSection(ModelSection):
    rl: RlBranchSettings
    regimes: Regimes
    eval: Eval


class TeacherSection(Section):
    teacher: Teacher | None


class IngestSection(Section):
    sources: list[Source]
    rl_source: Source


class FilterSection(Section):
    filter: Filter


class DecontaminateSection(Section):
    decontaminate: Decontaminate


class DifficultySection(Section):
    difficulty: Difficulty


class SubsetsSection(Section):
    sets: dict[str, DataSet]


class BenchmarksSection(Section):
    benchmarks: list[str]


class SettingsSection(Strict):
    sft: SftSettings
    rl: RlSettings
    sampling: Sampling
    regimes: Regimes


def load_section(path: str | Path, model: type[SectionT]) -> SectionT:
    """Read a stage's resolved config section back through its model; errors name the file and key."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config section not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(path))) from None


def _format_errors(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid config"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def validate(raw: dict[str, Any], where: str = "<config>") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: top level must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, where)) from None


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return validate({**(raw or {}), **(overrides or {})}, str(path))


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m plasticity.config",
                                     description="Validate config files and print their matrix.")
    parser.add_argument("configs", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    for path in args.configs:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{path}: ok: {len(cfg.models)} models, {len(cfg.sft.runs)} sft runs, "
              f"{len(cfg.rl.branches)} rl branches")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
