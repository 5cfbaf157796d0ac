"""Keys shared by SFT and RL: where a job runs (``launch``), the batch arithmetic, optimizer and precision."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from plasticity.config.base import Strict


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
    # experiment tracking through the trainer's own integration (plasticity.features: the extra to install);
    # the run's id (stable across a preempted job's segments) is written to the stage's manifest.json
    report_to: Literal["none", "wandb", "tensorboard", "trackio"] = "none"
    launch: Launch = Launch()

    @model_validator(mode="after")
    def _one_warmup(self) -> "TrainSettings":
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("give warmup_steps or warmup_ratio, not both")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must lie in [0, 1), got {list(self.adam_betas)}")
        return self


