"""Training stages: the tiny base model's pretraining, SFT and RL branches.

``pretrain`` (stage ``base``), ``sft`` and ``rl`` are stage modules (``main(argv)``, ``run(...)``);
``data`` builds their datasets, ``callbacks`` holds the trainer hooks (checkpoint export, validation
loss, evaluation during RL), ``rewards`` the RL reward and the dynamic-sampling group filter.
Nothing here imports torch at module import time.
"""
from __future__ import annotations

from typing import Any


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (transformers.set_seed covers all three)."""
    from transformers import set_seed

    set_seed(int(seed))


def device_kwargs(cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    """TrainingArguments flags for the machine at hand: fp32 on CPU; bf16 only when configured on GPU."""
    import torch

    cuda = torch.cuda.is_available()
    return {"use_cpu": not cuda, "bf16": bool(cuda and (cfg or {}).get("bf16", False)), "fp16": False}
