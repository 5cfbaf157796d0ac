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

The synchronized SFT+RL methods (PAPER 4, ../shared/SYNC_METHODS.md; ``train.sync_trainer`` runs
them) mix expert trajectories of the MIX set into the RL step. Their fixed hyperparameters are in
``SyncRecipe``; what the study's sources disagree on or leave open is a config key (``rl.sync``):

- ``luffy``: 7 rollouts + 1 expert row per prompt, advantage over the union group without std, the
  expert term policy-shaped p/(p + 0.1), no clipping, entropy bonus 0.001 (lr 1e-6 in the scripts).
- ``srft``: LUFFY's layout; entropy-weighted SFT on the expert row, +0.1 exp(H) / -1 log-likelihood
  weights on correct / wrong rollouts.
- ``upt``: 8 rollouts; a prompt none of them solves trains its expert trajectory with SFT instead
  (the rollouts dropped), otherwise GRPO without clipping; an update whose gradient norm exceeds 80
  is skipped.
- ``prefix_rft``: 7 rollouts + 1 hybrid row (a demonstration prefix, then the policy's continuation),
  GRPO's clipped surrogate, the advantage kept only on the top 20% entropy prefix tokens.
- ``chord`` (beyond the study): (1 - mu) GRPO on 7 rollouts + mu SFT on the prompt's expert row,
  both token means over the update, mu on a warm-up / cosine schedule from the branch's step 0,
  optionally phi(p) = p (1 - p) token weights.

The study's methods aggregate their losses as the released scripts do (``train.sync_trainer``):
per micro-batch the RL token losses over the padded response width, the SFT term and the entropy
bonus as the micro-batch's means, each micro-batch over the gradient accumulation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SyncRecipe:
    """How a synchronized method puts the expert trajectory into the step and trains on it."""

    expert_row: Literal["last", "hybrid", "gate"]   # last: row G replaced by y*; hybrid: prefix of y* + policy;
                                                     # gate: y* replaces the rollouts of unsolved prompts
    clip: bool                 # PPO clipping of on-policy ratios (the UPT codebase removes it)
    shaping_gamma: float = 0.1           # LUFFY's off-policy shaping p / (p + gamma)
    sft_coef: float = 1.0                # UPT: coefficient of the expert row's SFT loss
    gate: float = 0.0                    # UPT: SFT when the prompt's mean reward <= gate (switch_gate)
    skip_grad_norm: float | None = None  # UPT: skip the update when the pre-clip gradient norm exceeds this
    prefix_bounds: tuple[float, float] = (0.05, 0.95)   # Prefix-RFT: final lower bound, upper bound of rho
    prefix_top_entropy: float = 0.2      # Prefix-RFT: prefix tokens keeping their advantage (top fraction)


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
    sync: SyncRecipe | None = None   # synchronized SFT+RL methods only


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("dapo_dc", "DAPO_dc", "rl", loss_type="dapo", epsilon=0.2, epsilon_high=0.28, delta=10.0,
           scale_rewards="group", entropy_coef=0.0, dynamic_sampling=True, flops="dapo"),
    Method("dapo_d", "DAPO_d", "rl", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=True, flops="dapo"),
    Method("grpo", "GRPO", "rl", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="grpo"),
    Method("luffy", "LUFFY", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="luffy",
           sync=SyncRecipe("last", clip=False)),
    Method("srft", "SRFT", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="luffy",
           sync=SyncRecipe("last", clip=False)),
    Method("upt", "UPT", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="upt",
           sync=SyncRecipe("gate", clip=False, skip_grad_norm=80.0)),
    Method("prefix_rft", "Prefix-RFT", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.001, dynamic_sampling=False, flops="prefix_rft",
           sync=SyncRecipe("hybrid", clip=True)),
    Method("chord", "CHORD", "sync", loss_type="dapo", epsilon=0.2, epsilon_high=0.2, delta=None,
           scale_rewards="none", entropy_coef=0.0, dynamic_sampling=False, flops="chord",
           sync=SyncRecipe("last", clip=True)),
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
