"""Training stages: the tiny base model's pretraining, SFT and RL branches.

``pretrain`` (stage ``base``), ``sft`` and ``rl`` are stage modules (``main(argv)``, ``run(...)``);
``data`` builds their datasets, ``trainer_config`` trl's configurations from the typed settings,
``rollouts`` each RL step's groups (prompt stream, DAPO's dynamic sampling with refill), ``rewards``
the RL reward, ``sync_trainer`` the synchronized SFT+RL methods on the same trainer with
``sync_losses`` their loss formulas. Nothing here but ``sync_losses`` (torch formulas, imported only
where a trainer is built) imports torch at module import time.
"""
from __future__ import annotations


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (transformers.set_seed covers all three)."""
    from transformers import set_seed

    set_seed(int(seed))
