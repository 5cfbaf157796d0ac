"""Per-token losses, advantages, gates and schedules of the synchronized SFT+RL methods.

Small pure torch functions, one formula each, as ``../shared/SYNC_METHODS.md`` (the study's UPT
codebase, ``TsinghuaC3I/Unify-Post-Training``) specifies them; ``train.sync_trainer`` assembles them
into each method's loss. Conventions: ``logp`` is log pi_theta of the taken token, ``old_logp`` that
of the policy that produced the batch, ``mask`` 1 on tokens that are trained on. Every per-token
function returns the loss to *minimise* (the negative of the objective).

- LUFFY (``luffy_token_loss``): on-policy tokens -A * pi/pi_old without clipping; expert tokens the
  policy-shaped -A* * f(p), f(p) = p/(p + gamma), with no behaviour-policy denominator.
- SRFT (``srft_*``): entropy-weighted SFT on the expert row, LUFFY's off-policy term on its tokens,
  and on rollouts -a_i * log pi with a_i = +0.1 exp(H) for a correct rollout, -1 for a wrong one.
- UPT (``upt_solved``): per-prompt switch; unsolved prompts train one expert row with SFT.
- Prefix-RFT (``prefix_lower_bound``, ``prefix_ratio``, ``top_entropy_mask``): the prefix-ratio
  schedule and the entropy mask on demonstration-prefix tokens.
- CHORD (``chord_mu``, ``chord_phi``): the SFT/RL mixing weight schedule and the phi(p) = p(1 - p)
  token weights.
"""
from __future__ import annotations

import math
from typing import Any

import torch

LUFFY_GAMMA = 0.1   # policy-shaping constant (LUFFY's ``p_div_p_0.1``)


# ------------------------------------------------------------------------------------- advantages

def group_advantages(rewards: torch.Tensor, group: int, include: torch.Tensor | None = None) -> torch.Tensor:
    """A_i = r_i - mean(r of the group), without std scaling (``grpo_use_std=False``).

    Rows are group-contiguous, ``group`` per prompt. ``include`` (bool per row) restricts both the
    mean and the rows that receive an advantage (CHORD: the on-policy rows only); others get 0.
    """
    if rewards.dim() != 1 or rewards.numel() % group:
        raise ValueError(f"rewards must be 1-D with a multiple of group={group} entries, got {tuple(rewards.shape)}")
    inc = torch.ones_like(rewards, dtype=torch.bool) if include is None else include.bool()
    r = rewards.view(-1, group)
    w = inc.view(-1, group).to(r.dtype)
    mean = (r * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp(min=1.0)
    return ((r - mean) * w).view(-1)


# ------------------------------------------------------------------------------------------ LUFFY

def policy_shaping(logp: torch.Tensor, gamma: float = LUFFY_GAMMA) -> torch.Tensor:
    """f(p) = p / (p + gamma): the off-policy ratio reshaped (LUFFY; gradient gamma p / (p + gamma)^2)."""
    p = logp.exp()
    return p / (p + gamma)


def on_policy_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """-A * pi/pi_old without clipping (``loss_remove_clip=True``)."""
    return -adv * torch.exp(logp - old_logp)


def luffy_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, expert: torch.Tensor,
                     gamma: float = LUFFY_GAMMA) -> torch.Tensor:
    """LUFFY per token: the shaped off-policy term on expert tokens, the unclipped surrogate elsewhere.

    ``old_logp`` is not read on expert tokens: expert rows have no behaviour policy, so nothing the
    generation logged (or a vLLM sampling log-probability) enters their term.
    """
    expert = expert.bool()
    on = on_policy_token_loss(logp, torch.where(expert, logp.detach(), old_logp), adv)
    return torch.where(expert, -adv * policy_shaping(logp, gamma), on)


# ------------------------------------------------------------------------------------------- SRFT

def row_entropy(entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token entropy per row over its masked tokens, detached (stop-gradient weights)."""
    mask = mask.to(entropies.dtype)
    return ((entropies.detach() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0))


def srft_sft_weight(h_row: torch.Tensor) -> torch.Tensor:
    """w1 = 0.5 exp(-H) of an expert row."""
    return 0.5 * torch.exp(-h_row)


def srft_rollout_weight(rewards: torch.Tensor, h_row: torch.Tensor) -> torch.Tensor:
    """a_i = +0.1 exp(H) for a correct rollout, -1 for an incorrect one (``srft_type=paper``)."""
    return torch.where(rewards > 0.5, 0.1 * torch.exp(h_row), torch.full_like(h_row, -1.0))


def srft_rollout_token_loss(logp: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """-a_i * log pi on rollout tokens (``weight`` per row)."""
    return -weight.unsqueeze(-1) * logp


def sft_token_loss(logp: torch.Tensor, weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """-w * log pi (``weight`` a scalar, per row (B,) or per token (B, T))."""
    if torch.is_tensor(weight) and weight.dim() == 1:
        weight = weight.unsqueeze(-1)
    return -weight * logp


# -------------------------------------------------------------------------------------------- UPT

def upt_solved(rewards: torch.Tensor, group: int, gate: float = 0.0) -> torch.Tensor:
    """Per group: True when its mean reward is above ``gate`` (GRPO), False (SFT on the expert) otherwise.

    ``switch_gate=0``: a prompt with 0 of its G rollouts correct is trained with SFT.
    """
    if rewards.dim() != 1 or rewards.numel() % group:
        raise ValueError(f"rewards must be 1-D with a multiple of group={group} entries, got {tuple(rewards.shape)}")
    return (rewards > 0.5).to(torch.float32).view(-1, group).mean(dim=1) > gate


# ------------------------------------------------------------------------------------- Prefix-RFT

def prefix_lower_bound(step: float, total: float, low: float = 0.05, high: float = 0.95) -> float:
    """lb(t) = low + (high - low)/2 * (1 + cos(pi t / T)): 0.95 -> 0.05 over T steps, then 0.05."""
    t = min(max(float(step), 0.0), float(total))
    return low + 0.5 * (high - low) * (1.0 + math.cos(math.pi * t / float(total)))


def prefix_ratio(step: float, total: float, u: float, high: float = 0.95, low: float = 0.05) -> float:
    """rho = lb(t) + (high - lb(t)) * u, ``u`` a Beta(alpha, beta) draw in [0, 1]."""
    lb = prefix_lower_bound(step, total, low, high)
    return lb + (high - lb) * float(u)


def prefix_length(ratio: float, expert_len: int) -> int:
    """floor(rho |y*|) demonstration tokens in the hybrid row's prefix."""
    return int(math.floor(ratio * expert_len))


def top_entropy_mask(entropies: torch.Tensor, region: torch.Tensor, top_frac: float = 0.2) -> torch.Tensor:
    """1 on the ``top_frac`` highest-entropy tokens of each row's ``region``, 0 elsewhere in the region.

    Outside ``region`` the mask is 1 (those tokens keep their advantage). The number kept per row is
    ceil(top_frac x region tokens) - at least one where the region is non-empty; ties keep the
    earlier token (a stable sort).
    """
    region = region.bool()
    keep = torch.ones_like(region)
    h = entropies.detach().masked_fill(~region, float("-inf"))
    order = torch.sort(h, dim=1, descending=True, stable=True).indices
    for i in range(region.size(0)):
        n = int(region[i].sum())
        if n == 0:
            continue
        k = max(1, math.ceil(top_frac * n - 1e-9))
        row = torch.zeros_like(region[i])
        row[order[i, :k]] = True
        keep[i] = torch.where(region[i], row, keep[i])
    return keep


# ------------------------------------------------------------------------------------------ CHORD

def chord_mu(step: float, warmup: int, decay: int, peak: float, valley: float) -> float:
    """mu(t): linear 0 -> peak over ``warmup`` steps, cosine peak -> valley over ``decay``, then valley."""
    t = float(step)
    if t < warmup:
        return t / warmup * peak
    if t < warmup + decay:
        return valley + (peak - valley) * 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / decay))
    return valley


def chord_phi(logp: torch.Tensor) -> torch.Tensor:
    """phi(p) = p (1 - p) of the expert token's probability, detached (a weight, not a path)."""
    p = logp.detach().exp()
    return p * (1.0 - p)


# ------------------------------------------------------------------------------------ aggregation

def aggregate(per_token: torch.Tensor, mask: torch.Tensor, denominator: Any) -> torch.Tensor:
    """sum over masked tokens of ``per_token`` / ``denominator`` (the aggregation's normaliser)."""
    return (per_token * mask).sum() / denominator


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
