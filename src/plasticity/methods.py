"""The RL method registry: every method a config may name, what it is, and how it is costed.

One table read by the config check (a method the config accepts is a method that runs), the rl stage
(the loss, clipping, advantage and group filter each method trains with) and the FLOPs module (the
per-step cost formula of PAPER 2.6). Torch-free: Snakemake and the config schema import it.

The recipes are the study's (PAPER 2.5), fixed per method rather than per config, so a method name
in a results path always means the same algorithm:

- ``dapo_dc``: DAPO as §6.2/6.3 run it. Std-normalised group advantage, clip-higher 0.2 / 0.28,
  dual-clip c = 10 (trl's ``delta`` is verl's dual-clip), token-mean loss, no KL, no entropy bonus,
  dynamic sampling keeping groups with 1..G-1 correct, refilled over up to ``max_gen_rounds``.
- ``dapo_d``: §6.1's DAPO_d. GRPO (mean-centred advantage without std, token-level loss, symmetric
  clip 0.2, entropy bonus 0.001) plus the same dynamic-sampling filter and refill.
- ``grpo``: §6.1's GRPO: as ``dapo_d`` without the filter.

The synchronized SFT+RL methods (LUFFY, SRFT, UPT, Prefix-RFT, CHORD) are listed so that error
messages can name them; they are rejected by the config check until the rl stage runs them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Method:
    name: str                  # config value and results path component
    title: str                 # as the study's tables and figures name it
    paradigm: Literal["rl", "sync"]
    loss_type: str             # trl GRPOConfig.loss_type ("dapo": token-mean over the global batch)
    epsilon: float             # lower clip
    epsilon_high: float        # upper clip (clip-higher when > epsilon)
    delta: float | None        # dual-clip bound c on negative-advantage ratios; None: off
    scale_rewards: Literal["group", "none"]   # "group": divide advantages by the group's std
    entropy_coef: float        # entropy bonus subtracted from the loss
    dynamic_sampling: bool     # train only on groups with 1..G-1 correct, refilling up to max_gen_rounds
    flops: Literal["dapo", "grpo", "luffy", "upt", "prefix_rft", "chord"]   # per-step cost (analysis.flops)
    implemented: bool = True


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("dapo_dc", "DAPO_dc", "rl", loss_type="dapo", epsilon=0.2, epsilon_high=0.28, delta=10.0,
           scale_rewards="group", entropy_coef=0.0, dynamic_sampling=True, flops="dapo"),
    Method("dapo_d", "DAPO_d", "rl", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=True, flops="dapo"),
    Method("grpo", "GRPO", "rl", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="grpo"),
    Method("luffy", "LUFFY", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="luffy", implemented=False),
    Method("srft", "SRFT", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="luffy", implemented=False),
    Method("upt", "UPT", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="upt", implemented=False),
    Method("prefix_rft", "Prefix-RFT", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="prefix_rft",
           implemented=False),
    Method("chord", "CHORD", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.0, dynamic_sampling=False, flops="chord", implemented=False),
)}

RUNNABLE = tuple(name for name, m in METHODS.items() if m.implemented)


def get_method(name: str) -> Method:
    """The registry entry of a runnable method; a clear error for an unknown or not-yet-runnable one."""
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown RL method {name!r}; runnable: {list(RUNNABLE)}")
    if not method.implemented:
        raise ValueError(f"RL method {name!r} ({method.title}, a synchronized SFT+RL method) does not run "
                         f"yet; runnable: {list(RUNNABLE)}")
    return method
