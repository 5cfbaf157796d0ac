"""The synchronized SFT+RL methods on trl's GRPOTrainer: expert rows mixed into each step's groups.

``sync_trainer_class()`` subclasses the rl stage's ``BranchTrainer`` (train.rollouts: the prompt
stream, refill and resume) and overrides three of trl's steps, never copying them:

- ``_generate_single_turn``: the policy generates only the on-policy rows; the last row of each
  group becomes the prompt's expert trajectory (LUFFY, SRFT, CHORD: token ids of the MIX set's
  ``response``, with no sampling log-probabilities: NaN where vLLM logs them) or a hybrid row
  (Prefix-RFT: a prefix of the expert trajectory, then the policy's continuation from it). UPT
  generates all G rows.
- ``_score_round`` (after trl's scoring, which grades every row with the one grader and computes the
  mean-centred group advantage over all G rows, LUFFY's union group): per-row ``row_kind``,
  ``expert_len``, ``reward`` and ``loss_weight``; UPT replaces the rollouts of a prompt none of them
  solved by one SFT row on its expert trajectory; CHORD's advantage is recomputed over its rollouts.
- ``_compute_loss``: the method's per-token loss (``train.sync_losses``) aggregated as below.

Rows per kind (``row_kind``): 0 rollout, 1 expert trained off-policy (LUFFY, SRFT), 2 hybrid
(Prefix-RFT), 3 expert trained with SFT only (UPT's unsolved prompts, CHORD).

Aggregation, as the study's scripts compute it (../shared/SYNC_METHODS.md section 0; the UPT
codebase's ``mix_core_alg.py`` ``loss_remove_token_mean`` and ``mix_actor.py``): one micro-batch's
loss is

    sum over its trained RL tokens of l / max_completion_length      (the padded response width)
    + the SFT term: a masked mean over the micro-batch's SFT tokens (SRFT's, UPT's)
    - entropy_coef x the masked mean entropy of its trained tokens

and each micro-batch's loss is divided by the gradient accumulation (trl's loop sums the update's
micro-batches; DDP averages the processes, as verl's FSDP does). Nothing is divided by the rows of a
micro-batch, so the RL term weighs (rows per micro-batch) times more beside the SFT and entropy terms
than a per-row mean would make it, as in the scripts. The scripts balance micro-batches by tokens
(``use_dynamic_bsz``, at most 32,768 tokens per GPU) and configure the micro-batch size equal to the
mini-batch's, so their divisor is 1 and their micro-batches simply add up: the RL:SFT:entropy weights
here equal theirs when ``rl.micro_batch_size`` holds as many rows as their micro-batches, and the
gradient (which clipping at ``max_grad_norm`` and UPT's skip above 80 see) is theirs divided by the
accumulation. ``rl.sync.agg: token_mean`` divides the RL term by the update's trained RL tokens
instead (trl's ``dapo`` normaliser; PAPER 4's "token-mean"), the SFT and entropy terms unchanged.
CHORD mixes two token means over the update, (1 - mu) x the RL term and mu x the SFT term, as the
CHORD paper writes its objective (whatever ``agg`` says; mu read at the RL step being trained,
counted from 0 like Prefix-RFT's schedule). With ``method=grpo`` the trainer reproduces trl's own
loss exactly (the tests check loss and gradients bit for bit).

Every random choice (Prefix-RFT's prefix ratio) is drawn from the run seed, the RL step and the
process, so a resumed branch draws what the uninterrupted one drew.

Decisions where the sources leave room: every step's batch keeps the shape G rows x prompts (trl's
split into micro-batches and processes needs it), so UPT's dropped rollouts stay in the batch with
``loss_weight`` 0 (no loss, no entropy, not in the token counts), and CHORD's SFT batch is the
step's prompts' expert trajectories, one row in place of the G-th rollout, rather than a separately
sampled SFT batch (the MIX37K pairing is kept; the paper's separate sampler is not reproduced).
Expert rows are graded like any completion (the one grader), so LUFFY's union-group mean includes
the expert's reward.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from plasticity.methods import Method

ROLLOUT, EXPERT, HYBRID, SFT = 0, 1, 2, 3


def expert_token_ids(tokenizer: Any, responses: list[str], max_tokens: int) -> tuple[list[list[int]], int]:
    """(each expert trajectory as the policy would emit it: response + EOS cut to ``max_tokens``, how many
    were cut)."""
    eos = tokenizer.eos_token
    full = tokenizer([r + eos for r in responses], add_special_tokens=False)["input_ids"]
    return [ids[:max_tokens] for ids in full], sum(len(ids) > max_tokens for ids in full)


def row_layout(n_rows: int, group: int, expert_row: str) -> list[int]:
    """The kind of each of ``n_rows`` group-contiguous rows before scoring (UPT decides after it)."""
    last = {"last": EXPERT, "hybrid": HYBRID, "gate": ROLLOUT}[expert_row]
    return [last if j % group == group - 1 else ROLLOUT for j in range(n_rows)]


def mix_rows(generated: list[list[int]], logprobs: list[list[float]] | None, kinds: list[int],
             expert_ids: list[list[int]], prefix_lens: list[int], max_tokens: int) -> tuple[list, list | None]:
    """Completions of all rows from the generated ones (in row order, for the non-expert rows).

    Expert rows take their expert ids and NaN log-probabilities (no behaviour policy produced them);
    hybrid rows are the prefix followed by the generated continuation, cut to ``max_tokens``.
    """
    out_ids, out_lp, it = [], ([] if logprobs is not None else None), iter(range(len(generated)))
    for kind, ids, plen in zip(kinds, expert_ids, prefix_lens):
        if kind == EXPERT:
            out_ids.append(list(ids))
            if out_lp is not None:
                out_lp.append([math.nan] * len(ids))
            continue
        k = next(it)
        prefix = list(ids[:plen]) if kind == HYBRID else []
        out_ids.append((prefix + list(generated[k]))[:max_tokens])
        if out_lp is not None:
            out_lp.append(([math.nan] * len(prefix) + list(logprobs[k]))[:max_tokens])
    return out_ids, out_lp


def put_completion(out: dict[str, Any], row: int, ids: list[int], pad_id: int) -> None:
    """Replace one row's completion by ``ids`` (widening every completion-width tensor if needed).

    The row's per-token side values (old / sampling log-probabilities, importance ratios) become
    neutral: 0 log-probability difference, ratio 1; an SFT row reads none of them.
    """
    import torch

    width = out["completion_ids"].size(1)
    new = max(width, len(ids))
    for key, value in list(out.items()):
        if torch.is_tensor(value) and value.dim() == 2 and value.size(1) == width and key not in (
                "prompt_ids", "prompt_mask"):
            fill = pad_id if key == "completion_ids" else (1.0 if key == "importance_sampling_ratio" else 0)
            if new > width:
                value = torch.nn.functional.pad(value, (0, new - width), value=fill)
            value[row] = fill
            out[key] = value
    n = len(ids)
    out["completion_ids"][row, :n] = torch.tensor(ids, dtype=out["completion_ids"].dtype)
    out["completion_mask"][row, :n] = 1


def sync_setup(rows: list[dict[str, Any]], experts: str | None, prompts: str, tokenizer: Any, rl: Any,
               method: Method) -> tuple[type, dict[str, Any], dict[str, Any]]:
    """(trainer class, its extra arguments, manifest facts) of a synchronized method's branch.

    Adds each row's expert trajectory (``expert``, text) from the MIX file ``experts``; the trainer
    tokenizes those of each step's prompts (a trajectory longer than ``max_completion_length`` is cut
    there, counted in the step's record as ``experts_cut``), so the whole set never sits in memory as
    token ids.
    """
    from plasticity.train.data import expert_responses

    if experts is None:
        raise ValueError(f"method {method.name!r} ({method.title}) trains on expert trajectories: give --experts "
                         "(the MIX set the prompts come from)")
    for row, response in zip(rows, expert_responses(experts, rows, prompts)):
        row["expert"] = response
    return sync_trainer_class(), {"method": method, "sync": rl.sync, "total_steps": rl.steps}, {"experts": len(rows)}


def sync_trainer_class() -> type:
    """``BranchTrainer`` running a synchronized method (or ``grpo``, for the equivalence test)."""
    import torch

    from plasticity.train import sync_losses as sl
    from plasticity.train.rollouts import branch_trainer_class

    class SyncTrainer(branch_trainer_class()):
        def __init__(self, *args: Any, method: Method, sync: Any, total_steps: int, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.method, self.sync, self.total_steps = method, sync, int(total_steps)
            self.recipe = method.sync
            if self.recipe is not None and self.recipe.skip_grad_norm is not None and self.is_deepspeed_enabled:
                raise ValueError(f"{method.name}: skipping updates with a large gradient norm needs the "
                                 "trainer's own clipping, not DeepSpeed's")
            self._plan: dict[str, Any] | None = None
            self._chord_mu = self._mu(0) if method.name == "chord" else 0.0   # set at each step's generation
            self.skipped_updates = 0

        # ------------------------------------------------------------------ generation
        def _rl_step(self) -> int:
            return len(self.generation_records)   # RL steps completed (restored on resume)

        def _score_round(self, inputs):
            if self.recipe is None:   # grpo: every row a rollout, the loss built here all the same
                kinds, experts = [ROLLOUT] * len(inputs), [[] for _ in inputs]
            else:
                kinds = row_layout(len(inputs), self.num_generations, self.recipe.expert_row)
                group = self.num_generations   # rows are group-contiguous: one tokenization per prompt
                ids, self._round_cut = expert_token_ids(self._tokenizer, [r["expert"] for r in inputs[::group]],
                                                        self.max_completion_length)
                experts = [e for e in ids for _ in range(group)]
            prefix = [0] * len(inputs)
            if self.recipe is not None and self.recipe.expert_row == "hybrid":
                low, high = self.recipe.prefix_bounds
                rng = np.random.default_rng([self.args.seed, self._rl_step(), self.accelerator.process_index])
                a, b = self.sync.prefix_beta
                steps = self.sync.prefix_decay_steps or self.total_steps
                for j, kind in enumerate(kinds):
                    if kind == HYBRID:
                        rho = sl.prefix_ratio(self._rl_step(), steps, rng.beta(a, b), high=high, low=low)
                        prefix[j] = sl.prefix_length(rho, len(experts[j]))
            self._plan = {"kinds": kinds, "experts": experts, "prefix": prefix} if self.recipe else None
            try:
                out = super()._score_round(inputs)
            finally:
                self._plan = None
            return self._annotate(out, kinds, experts, prefix)

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False):
            plan = self._plan
            if plan is None or not self.model.training:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            gen = [list(p) + list(e[:n]) if k == HYBRID else list(p)
                   for p, k, e, n in zip(prompt_ids, plan["kinds"], plan["experts"], plan["prefix"])
                   if k != EXPERT]
            completion_ids, logprobs = super()._generate_single_turn(gen, images, multimodal_fields, 1,
                                                                     has_tool_images)
            return mix_rows(completion_ids, logprobs, plan["kinds"], plan["experts"], plan["prefix"],
                            self.max_completion_length)

        def _annotate(self, out: dict[str, Any], kinds: list[int], experts: list[list[int]],
                      prefix: list[int]) -> dict[str, Any]:
            """Per-row kinds, expert lengths, rewards and weights; UPT's gate and CHORD's advantages."""
            device = out["completion_ids"].device
            n, group = len(kinds), self.num_generations
            rank = self.accelerator.process_index
            rewards = (self._last_rewards * self.reward_weights.to(self._last_rewards.device)).nansum(dim=1)
            rewards = rewards[rank * n:(rank + 1) * n].to(device)
            kind = torch.tensor(kinds, device=device)
            expert_len = torch.tensor([len(e) if k == EXPERT else p for k, e, p in zip(kinds, experts, prefix)],
                                      device=device)
            weight = torch.ones(n, device=device)
            if self.recipe is not None and self.recipe.expert_row == "gate":
                solved = sl.upt_solved(rewards, group, self.recipe.gate)
                for g in torch.nonzero(~solved).flatten().tolist():
                    last = g * group + group - 1
                    put_completion(out, last, experts[last], self._tokenizer.pad_token_id)
                    weight[g * group:last] = 0.0
                    kind[last], expert_len[last] = SFT, len(experts[last])
                    out["advantages"][g * group:last + 1] = 0.0
            if self.method.name == "chord":
                kind = torch.where(kind == EXPERT, torch.full_like(kind, SFT), kind)
                out["advantages"] = sl.group_advantages(rewards, group, include=kind == ROLLOUT).to(
                    out["advantages"].dtype)
            out.update(row_kind=kind, expert_len=expert_len, reward=rewards, loss_weight=weight)
            mask = out["completion_mask"] * (weight > 0).unsqueeze(1).to(out["completion_mask"].dtype)
            is_sft = (kind == SFT).unsqueeze(1)
            # rows with an SFT term: UPT's and CHORD's SFT rows, SRFT's expert rows (also in the RL term)
            has_sft = is_sft | ((kind == EXPERT) & (self.method.name == "srft")).unsqueeze(1)
            out["rl_tokens"] = self.accelerator.gather((mask * ~is_sft).sum()).sum()
            out["sft_tokens"] = self.accelerator.gather((mask * has_sft).sum()).sum()
            self._round_lengths = self._lengths(out, kind, weight)
            return out

        def _lengths(self, out: dict[str, Any], kind: Any, weight: Any) -> dict[str, float]:
            """Per-prompt row counts and mean lengths of on- and off-policy rows (PAPER 2.6's S_on, S_off)."""
            seq = (out["prompt_mask"].sum(dim=1) + out["completion_mask"].sum(dim=1)).float()
            prompt = out["prompt_mask"].sum(dim=1).float()
            off = (kind == EXPERT) | (kind == SFT)
            on = ~off        # generated rows (UPT's dropped rollouts included: their generation is paid)
            stats = torch.stack([(on & (weight > 0)).sum(), off.sum(), on.sum(), (seq * on).sum(),
                                 (seq * off).sum(), (prompt * on).sum(),
                                 torch.tensor(kind.numel() / self.num_generations, device=kind.device)]).float()
            n_on, n_off, gen, s_on, s_off, p_on, prompts = self.accelerator.reduce(stats, reduction="sum").tolist()
            return {"n_on": n_on / prompts, "n_off": n_off / prompts,
                    "mean_prompt_tokens": p_on / max(gen, 1.0),
                    "mean_completion_tokens": (s_on - p_on) / max(gen, 1.0),
                    "mean_offpolicy_tokens": s_off / max(n_off, 1.0)}

        def _generate_and_score_completions(self, inputs):
            if self.model.training and self.method.name == "chord":
                self._chord_mu = self._mu(self._rl_step())   # the step about to be generated and trained
            batch = super()._generate_and_score_completions(inputs)
            if self.model.training and self.recipe is not None:
                rec, lengths = self.generation_records[-1], dict(self._round_lengths)
                rec["experts_cut"] = int(self.accelerator.reduce(
                    torch.tensor([self._round_cut], device=self.accelerator.device), reduction="sum").item())
                n_on, n_off = lengths.pop("n_on"), lengths.pop("n_off")
                if self.recipe.expert_row == "gate":   # UPT: G rollouts generated, n_on + n_off rows trained
                    rec.update(lengths, n_on=n_on, n_off=n_off)
                elif self.recipe.expert_row == "last":   # G - 1 rollouts and one expert row per prompt
                    rec.update(lengths, group=self.num_generations - 1, off_policy=1)
                # Prefix-RFT is costed as GRPO over all G rows, the hybrid row's prefix included
                if self.method.name == "chord":
                    rec["mu"] = self._chord_mu
            return batch

        # ------------------------------------------------------------------ loss
        def _mu(self, step: int) -> float:
            """CHORD's mu at RL step ``step`` (0 for the branch's first step)."""
            s = self.sync
            return sl.chord_mu(step, s.chord_mu_warmup_steps, s.chord_mu_decay_steps, s.chord_mu_peak,
                               s.chord_mu_valley)

        def _normalisers(self, inputs: dict[str, Any], sft_mask: Any) -> tuple[Any, Any]:
            """(RL-term, SFT-term) denominators of one micro-batch's summed token losses (module docstring).

            trl's loop adds the update's micro-batches, so every denominator carries the accumulation.
            A token mean over the update divides by the update's tokens on this process: the generation
            batch's count (gathered over the processes) / processes x accumulation / micro-batches per
            generation, trl's own ``dapo`` normaliser.
            """
            world = self.accelerator.num_processes
            accum, spg = self.current_gradient_accumulation_steps, self.args.steps_per_generation
            if not self.model.training:
                accum = spg = 1

            def update_mean(key: str) -> Any:
                return inputs[key].clamp(min=1.0) / world * accum / spg

            if self.method.name == "chord":   # two token means over the update (the CHORD paper)
                return update_mean("rl_tokens"), update_mean("sft_tokens")
            if self.recipe is None or self.sync.agg == "token_mean":
                rl = update_mean("rl_tokens")
            else:   # the scripts: the padded response width, then the accumulation; never the rows
                rl = accum * self.max_completion_length
            return rl, sft_mask.sum().clamp(min=1.0) * accum   # the micro-batch's SFT mean, / accumulation

        def _compute_loss(self, model, inputs):
            if "row_kind" not in inputs:   # not a training batch of this trainer (trl's evaluation)
                return super()._compute_loss(model, inputs)
            prompt_ids, completion_ids = inputs["prompt_ids"], inputs["completion_ids"]
            input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
            attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            logp, entropies, _ = self._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True)
            loss, metrics = self.sync_loss(inputs, logp, entropies)
            mode = "train" if self.model.training else "eval"
            for name, value in metrics.items():
                self._metrics[mode][name].append(value)
            return loss

        def sync_loss(self, inputs: dict[str, Any], logp: Any, entropies: Any) -> tuple[Any, dict[str, float]]:
            """The method's loss of one micro-batch from the policy's log-probabilities and entropies."""
            name = self.method.name
            width = logp.size(1)
            kind, weight = inputs["row_kind"], inputs["loss_weight"]
            mask = inputs["completion_mask"] * (weight > 0).unsqueeze(1).to(inputs["completion_mask"].dtype)
            positions = torch.arange(width, device=logp.device).unsqueeze(0)
            in_expert = positions < inputs["expert_len"].unsqueeze(1)
            expert_tok = in_expert & (kind == EXPERT).unsqueeze(1)
            sft_rows = (kind == SFT).unsqueeze(1)
            rl_mask, sft_mask = mask * ~sft_rows, mask * sft_rows
            old = inputs.get("old_per_token_logps")
            old = logp.detach() if old is None else old
            adv = inputs["advantages"]
            adv = adv.unsqueeze(1) if adv.dim() == 1 else adv
            clipped = torch.zeros((), device=logp.device)

            if name == "luffy":
                rl_tok = sl.luffy_token_loss(logp, old, adv, expert_tok, self.recipe.shaping_gamma)
            elif name == "srft":
                h = sl.row_entropy(entropies, mask)
                shaped = sl.luffy_token_loss(logp, old, adv, expert_tok, self.recipe.shaping_gamma)
                rollout = sl.srft_rollout_token_loss(logp, sl.srft_rollout_weight(inputs["reward"], h))
                rl_tok = torch.where(expert_tok, shaped, rollout)
                # the expert rows' entropy-weighted SFT term: a mean over the micro-batch's expert tokens
                sft_mask = mask * expert_tok
                sft_tok = sl.sft_token_loss(logp, sl.srft_sft_weight(h))
            else:   # grpo, upt, prefix_rft, chord: the policy-gradient surrogate on the rollouts
                if name == "prefix_rft":
                    prefix = in_expert & (kind == HYBRID).unsqueeze(1)
                    keep = sl.top_entropy_mask(entropies, prefix & mask.bool(), self.recipe.prefix_top_entropy)
                    adv = adv * keep.to(adv.dtype)
                if self.recipe is not None and not self.recipe.clip:   # UPT: no clipping
                    rl_tok = sl.on_policy_token_loss(logp, old, adv)
                else:   # PPO's clipped surrogate, trl's own formula
                    coef_1 = torch.exp(logp - old)
                    coef_2 = torch.clamp(coef_1, 1 - self.epsilon_low, 1 + self.epsilon_high)
                    rl_tok = -torch.min(coef_1 * adv, coef_2 * adv)
                    clipped = (((coef_1 < 1 - self.epsilon_low) & (adv < 0))
                               | ((coef_1 > 1 + self.epsilon_high) & (adv > 0)))
                if name == "upt":
                    sft_tok = sl.sft_token_loss(logp, self.recipe.sft_coef)
                if name == "chord":
                    sft_tok = sl.sft_token_loss(logp, sl.chord_phi(logp) if self.sync.chord_phi else 1.0)
            if "importance_sampling_ratio" in inputs and self.use_vllm and self.vllm_importance_sampling_correction:
                ratio = inputs["importance_sampling_ratio"]
                rl_tok = rl_tok * torch.where(expert_tok, torch.ones_like(rl_tok), ratio)

            rl_norm, sft_norm = self._normalisers(inputs, sft_mask)
            loss = sl.aggregate(rl_tok, rl_mask, rl_norm)
            metrics = {"policy_loss": loss.detach().item()}
            if name in ("srft", "upt", "chord"):
                sft = sl.aggregate(sft_tok, sft_mask, sft_norm)
                if name == "chord":
                    mu = self._chord_mu
                    loss, metrics["mu"] = (1.0 - mu) * loss + mu * sft, mu
                else:
                    loss = loss + sft
                # logged as the micro-batch's mean per SFT token, whatever the normaliser
                metrics["sft_loss"] = (sft.detach() * sft_norm / sft_mask.sum().clamp(min=1.0)).item()
            if self.method.entropy_coef:
                accum = self.current_gradient_accumulation_steps if self.model.training else 1.0
                loss = loss - self.method.entropy_coef * (
                    (entropies * mask).sum() / mask.sum().clamp(min=1.0) / accum)
            metrics["entropy"] = self._global_mean(entropies, mask)
            metrics["clip_ratio/region_mean"] = self._global_mean(clipped.float().expand_as(logp), rl_mask)
            return loss, metrics

        def _global_mean(self, values: Any, mask: Any) -> float:
            totals = self.accelerator.reduce(torch.stack([(values.detach() * mask).sum(), mask.sum().float()]),
                                             reduction="sum")
            return (totals[0] / totals[1].clamp(min=1.0)).item()

        # ------------------------------------------------------------------ UPT's update skip
        def _clip_grad_norm(self, model):
            norm = super()._clip_grad_norm(model)
            limit = self.recipe.skip_grad_norm if self.recipe is not None else None
            if limit is not None and not float(norm) <= limit:   # NaN or too large: skip this update
                for p in model.parameters():
                    p.grad = None   # AdamW leaves a parameter without a gradient untouched
                self.skipped_updates += 1
                self._metrics["train"]["skipped_update"].append(1.0)
            return norm

    return SyncTrainer
