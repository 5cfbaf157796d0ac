"""``sft``: the SFT defaults, the runs of the matrix and the regime thresholds."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from plasticity.config.base import Strict
from plasticity.config.training import TrainSettings, batch_layout


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
    # validation loss: positions projected through the output layer at a time (train.val_loss; plan's GPU memory)
    val_chunk_tokens: int = Field(1024, gt=0)

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


class Tokenize(Strict):
    """The ``tokenize`` rule (plasticity.train.tokens): each SFT set tokenized once per model and max length."""

    workers: int | None = Field(None, gt=0)   # the job's CPUs: tokenizing processes (default 1)


class Sft(Strict):
    defaults: SftSettings
    runs: list[SftRun] = []
    regimes: Regimes = Regimes()
    tokenize: Tokenize = Tokenize()


