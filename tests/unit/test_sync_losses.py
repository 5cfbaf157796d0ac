"""The synchronized methods' loss pieces against the hand-computed vectors of SYNC_METHODS.md."""
from __future__ import annotations

import math

import pytest
import torch

from plasticity.train import sync_losses as sl


def _logp(p: float, requires_grad: bool = True) -> torch.Tensor:
    return torch.tensor([[math.log(p)]], dtype=torch.float64, requires_grad=requires_grad)


def test_luffy_advantage_over_the_union_group():
    rewards = torch.tensor([1, 0, 0, 1, 0, 0, 0, 1], dtype=torch.float64)   # 7 on-policy, then the expert
    adv = sl.group_advantages(rewards, 8)
    assert adv.tolist() == pytest.approx([.625, -.375, -.375, .625, -.375, -.375, -.375, .625])


def test_luffy_expert_token_is_policy_shaped():
    logp = _logp(0.5)
    loss = sl.luffy_token_loss(logp, torch.zeros_like(logp), torch.tensor([[0.625]], dtype=torch.float64),
                               expert=torch.tensor([[True]]))
    loss.sum().backward()
    assert sl.policy_shaping(logp).item() == pytest.approx(0.833333, abs=1e-6)
    assert loss.item() == pytest.approx(-0.520833, abs=1e-6)
    assert logp.grad.item() == pytest.approx(-0.086806, abs=1e-6)


def test_luffy_on_policy_token_is_the_unclipped_surrogate():
    for adv in (0.625, -0.375):
        logp = _logp(0.3)
        loss = sl.luffy_token_loss(logp, logp.detach(), torch.tensor([[adv]], dtype=torch.float64),
                                   expert=torch.tensor([[False]]))
        loss.sum().backward()
        assert loss.item() == pytest.approx(-adv) and logp.grad.item() == pytest.approx(-adv)
    # no clipping: a ratio of 2 is used as is
    loss = sl.luffy_token_loss(_logp(0.6), _logp(0.3, False), torch.tensor([[1.0]], dtype=torch.float64),
                               expert=torch.tensor([[False]]))
    assert loss.item() == pytest.approx(-2.0)


def test_expert_tokens_ignore_any_old_log_probability():
    """The expert row's term is the same whatever the generation logged for it (NaN included)."""
    logp = _logp(0.5)
    adv = torch.tensor([[0.625]], dtype=torch.float64)
    expert = torch.tensor([[True]])
    a = sl.luffy_token_loss(logp, torch.full_like(logp, float("nan")), adv, expert)
    b = sl.luffy_token_loss(logp, torch.full_like(logp, -30.0), adv, expert)
    assert a.item() == b.item() == pytest.approx(-0.520833, abs=1e-6)


def test_srft_vectors():
    h_expert = torch.tensor([0.5], dtype=torch.float64)
    w1 = sl.srft_sft_weight(h_expert)
    assert w1.item() == pytest.approx(0.303265, abs=1e-6)
    assert sl.sft_token_loss(_logp(0.5), w1).item() == pytest.approx(0.210208, abs=1e-6)
    h = torch.tensor([0.2, 0.2], dtype=torch.float64)
    a = sl.srft_rollout_weight(torch.tensor([1.0, 0.0], dtype=torch.float64), h)
    assert a.tolist() == pytest.approx([0.122140, -1.0], abs=1e-6)
    logp = torch.full((2, 1), math.log(0.5), dtype=torch.float64)
    loss = sl.srft_rollout_token_loss(logp, a)
    assert loss[:, 0].tolist() == pytest.approx([0.084661, -0.693147], abs=1e-6)


def test_row_entropy_is_a_detached_masked_mean():
    ent = torch.tensor([[0.2, 0.8, 5.0]], requires_grad=True)
    h = sl.row_entropy(ent, torch.tensor([[1, 1, 0]]))
    assert h.item() == pytest.approx(0.5) and not h.requires_grad


def test_upt_sft_loss_of_an_unsolved_prompt():
    logp = torch.log(torch.tensor([[0.5, 0.25]], dtype=torch.float64))
    loss = sl.masked_mean(sl.sft_token_loss(logp), torch.ones_like(logp))
    assert loss.item() == pytest.approx(1.039721, abs=1e-6)


def test_upt_gate_with_zero_and_three_of_eight_correct():
    rewards = torch.tensor([0.0] * 8 + [1, 0, 1, 0, 0, 1, 0, 0])
    assert sl.upt_solved(rewards, 8).tolist() == [False, True]
    with pytest.raises(ValueError, match="multiple of group=8"):
        sl.upt_solved(rewards[:7], 8)


def test_prefix_lower_bound_schedule():
    T = 400
    assert sl.prefix_lower_bound(0, T) == pytest.approx(0.95)
    assert sl.prefix_lower_bound(T / 4, T) == pytest.approx(0.818198, abs=1e-6)
    assert sl.prefix_lower_bound(T / 2, T) == pytest.approx(0.5)
    assert sl.prefix_lower_bound(T, T) == pytest.approx(0.05)
    assert sl.prefix_lower_bound(2 * T, T) == pytest.approx(0.05)
    # the ratio lies between the lower bound and 0.95
    assert sl.prefix_ratio(T / 2, T, 0.0) == pytest.approx(0.5)
    assert sl.prefix_ratio(T / 2, T, 1.0) == pytest.approx(0.95)
    assert sl.prefix_length(0.5, 9) == 4


def test_prefix_entropy_mask_keeps_the_top_fifth():
    ent = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 3.0, 3.0]])
    region = torch.tensor([[1] * 10 + [0, 0]])
    keep = sl.top_entropy_mask(ent, region, 0.2)
    kept = [round(e, 1) for e, k, r in zip(ent[0].tolist(), keep[0].tolist(), region[0].tolist()) if k and r]
    assert kept == [0.9, 1.0]
    assert keep[0, 10:].tolist() == [True, True]   # outside the prefix nothing is masked
    shuffled = ent[:, torch.tensor([9, 0, 8, 1, 2, 3, 4, 5, 6, 7, 10, 11])]
    assert sl.top_entropy_mask(shuffled, region, 0.2)[0, :10].tolist() == [True, False, True] + [False] * 7


def test_chord_mu_schedule():
    mu = [sl.chord_mu(t, warmup=10, decay=100, peak=0.9, valley=0.05) for t in (0, 5, 10, 60, 110, 500)]
    assert mu == pytest.approx([0.0, 0.45, 0.9, 0.475, 0.05, 0.05])


def test_chord_phi_weights():
    for p, phi, nll in ((0.5, 0.25, 0.173287), (0.9, 0.09, 0.009482)):
        logp = _logp(p)
        w = sl.chord_phi(logp)
        assert w.item() == pytest.approx(phi) and not w.requires_grad
        assert sl.sft_token_loss(logp, w).item() == pytest.approx(nll, abs=1e-6)


def test_advantage_restricted_to_on_policy_rows():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    adv = sl.group_advantages(rewards, 4, include=torch.tensor([True, True, True, False]))
    assert adv.tolist() == pytest.approx([2 / 3, -1 / 3, -1 / 3, 0.0])
