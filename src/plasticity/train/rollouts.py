"""Where an RL step's training groups come from: the prompt stream and DAPO's dynamic sampling with refill.

``PromptStream``: prompts without replacement from a seeded permutation per epoch; its position is
part of a branch's resume state, so a resumed branch draws exactly the prompts it would have drawn.

``branch_trainer_class()``: trl's ``GRPOTrainer`` with its generation-and-scoring step overridden
(composition over the parent's own step, never a copy of the trainer). Each RL step:

- without dynamic sampling (``grpo``): one round of ``prompts_per_step`` prompts x G rollouts;
- with it (``dapo_dc``, ``dapo_d``; PAPER 2.5): rounds of ``gen_prompts_per_round`` prompts x G until
  ``prompts_per_step`` groups with 1..G-1 correct are collected, the surplus dropped (the last
  round's late groups, deterministically), or ``max_gen_rounds`` rounds are spent; the step then
  trains on what was collected, the missing slots carried as masked rows so every process keeps
  the batch shape.

Several processes, pooled as verl pools a round (its DAPO trainer generates the round's batch over
all ranks, filters it whole and keeps the first ``train_batch_size`` groups): generation stays
sharded, each process generating a contiguous share of each round's prompts; the rewards are
gathered, so every process knows which groups of the round, in global prompt order, were kept, and
all take the same decisions without talking: the step keeps the first ``prompts_per_step`` kept
groups in (round, global prompt) order, and stops drawing rounds once it has them. Slot k of that
list is trained by process ``k // (prompts_per_step / world)``: each process takes a contiguous
share, as one process with gradient accumulation takes contiguous micro-batches. A kept group
generated on another process than the one that trains it is moved by an all-gather of the round's
kept groups (every per-row tensor padded to the largest width and count over the processes); the
receiving process keeps its slots and drops the rest. When no slot of a round changes process (one
process; every group kept, as without dynamic sampling) nothing is exchanged. Masked rows for
missing slots are copies of the training process's own last-round rows with a zero loss mask.

Rollouts do not depend on the process count: on the transformers generation path every group is
sampled in its own call, seeded by (seed, the prompt's position in the stream), so one process with
gradient accumulation and N processes generate the same completions for the same prompts (vLLM
seeds its own sampling), keep the same groups and train the same rows.

Each step appends a record to ``trainer.generation_records`` (the FLOPs formula's inputs, PAPER 2.6,
charging what ran): ``prompts`` per round, ``gen_rounds`` (K), ``train_prompts`` (kept groups
trained on), ``masked_groups`` (missing slots: masked rows that still run forward and backward),
``discarded_groups`` (generated, not trained), ``filled``; ``mean_prompt_tokens`` and
``mean_completion_tokens`` over every generated row (the rollout term's S), and
``mean_train_prompt_tokens`` and ``mean_train_completion_tokens`` over the rows that ran forward and
backward, kept and masked (the training term's S; a masked row counts the tokens of the generated
row it copies: the same tokens run through the model, only their loss mask is zero).
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np


class PromptStream:
    """Indices into a prompt table, a fresh seeded permutation per pass over it."""

    def __init__(self, size: int, seed: int, position: int = 0):
        if size < 1:
            raise ValueError("the RL prompt set is empty")
        self.size, self.seed, self.position = size, int(seed), int(position)

    def take(self, k: int) -> list[int]:
        out = []
        for pos in range(self.position, self.position + k):
            epoch, offset = divmod(pos, self.size)
            out.append(int(self._order(epoch)[offset]))
        self.position += k
        return out

    def _order(self, epoch: int) -> np.ndarray:
        if getattr(self, "_cached", (None,))[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.size))
        return self._cached[1]


def group_seed(seed: int, position: int) -> int:
    """The sampling seed of the group drawn at stream ``position``: the same on any process layout."""
    return int(np.random.default_rng([int(seed), 1, int(position)]).integers(2**63 - 1))


def kept_groups(rewards: Any, group: int) -> Any:
    """Per-group bool: 1..G-1 of the G binary rewards correct (the groups DAPO trains on)."""
    import torch

    if rewards.dim() != 1 or rewards.numel() % group:
        raise ValueError(f"rewards must be 1-D with a multiple of group={group} entries, got {tuple(rewards.shape)}")
    correct = (torch.nan_to_num(rewards, nan=0.0) > 0.5).view(-1, group).sum(dim=1)
    return (correct >= 1) & (correct <= group - 1)


# Keys of trl's generation output padded on the left (prompt side); other per-token keys are right-padded.
_LEFT = ("prompt_ids", "prompt_mask")


def concat_rows(parts: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Row-wise concatenation of several generation outputs, padding per-token tensors to one width."""
    import torch

    out: dict[str, Any] = {}
    for key, first in parts[0].items():
        if not torch.is_tensor(first) or first.dim() == 0:
            out[key] = first
            continue
        tensors = [p[key] for p in parts]
        if first.dim() == 2:
            width = max(t.size(1) for t in tensors)
            fill = pad_id if key in ("prompt_ids", "completion_ids") else 0
            tensors = [torch.nn.functional.pad(t, (width - t.size(1), 0) if key in _LEFT else (0, width - t.size(1)),
                                               value=fill) for t in tensors]
        out[key] = torch.cat(tensors, dim=0)
    return out


def take_rows(batch: dict[str, Any], rows: Any) -> dict[str, Any]:
    """The rows ``rows`` (a 1-D index tensor) of every per-row tensor of a generation output."""
    import torch

    n = batch["completion_ids"].size(0)
    return {k: (v[rows] if torch.is_tensor(v) and v.dim() > 0 and v.size(0) == n else v) for k, v in batch.items()}


@contextlib.contextmanager
def vllm_sequence_cap(max_num_seqs: int | None) -> Iterator[None]:
    """While trl's GRPOTrainer is built, its colocated vLLM engine gets ``max_num_seqs`` (rl section's
    ``vllm_max_num_seqs``) instead of trl's per-device batch x tensor parallel x steps per generation.

    trl 1.16 has no GRPOConfig key for it and passes its own value to ``VLLMGeneration`` inside
    ``GRPOTrainer.__init__``; the name is swapped in trl's module for the construction only. ``None``
    leaves trl's value."""
    if max_num_seqs is None:
        yield
        return
    from trl.trainer import grpo_trainer

    build = grpo_trainer.VLLMGeneration

    def capped(*args: Any, **kwargs: Any) -> Any:
        return build(*args, **{**kwargs, "max_num_seqs": int(max_num_seqs)})

    grpo_trainer.VLLMGeneration = capped
    try:
        yield
    finally:
        grpo_trainer.VLLMGeneration = build


def branch_trainer_class() -> type:
    """trl's GRPOTrainer drawing each step's groups from a ``PromptStream``, with DAPO's refill."""
    import torch
    from trl import GRPOTrainer

    class BranchTrainer(GRPOTrainer):
        def __init__(self, *args: Any, rows: list[dict[str, Any]], stream: PromptStream, prompts_per_step: int,
                     gen_prompts_per_round: int, max_gen_rounds: int, dynamic_sampling: bool,
                     vllm_max_num_seqs: int | None = None, **kwargs: Any):
            with vllm_sequence_cap(vllm_max_num_seqs):
                super().__init__(*args, **kwargs)
            self.rows, self.stream = rows, stream
            self.prompts_per_step, self.dynamic_sampling = prompts_per_step, dynamic_sampling
            self.gen_prompts_per_round = gen_prompts_per_round if dynamic_sampling else prompts_per_step
            self.max_gen_rounds = max_gen_rounds if dynamic_sampling else 1
            self.generation_records: list[dict[str, Any]] = []
            self._last_rewards = None
            self._group_seeds: list[int] = []   # this round's groups, consumed by _generate_single_turn

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._last_rewards = rewards_per_func  # gathered over processes, group-contiguous
            return rewards_per_func

        def _round(self) -> tuple[dict[str, Any], Any]:
            """One generation round of this process's share of the next prompts.

            Returns (this process's output, kept flag per group of the whole round in global prompt
            order: the same on every process, from the gathered rewards).
            """
            world, rank = self.accelerator.num_processes, self.accelerator.process_index
            share = self.gen_prompts_per_round // world
            mine = slice(rank * share, (rank + 1) * share)
            first = self.stream.position
            indices = self.stream.take(self.gen_prompts_per_round)[mine]
            self._group_seeds = [group_seed(self.args.seed, first + i) for i in range(self.gen_prompts_per_round)][mine]
            inputs = [self.rows[i] for i in indices for _ in range(self.num_generations)]
            out = self._score_round(inputs)
            rewards = (self._last_rewards * self.reward_weights.to(self._last_rewards.device)).nansum(dim=1)
            keep = kept_groups(rewards, self.num_generations)
            return out, keep if self.dynamic_sampling else torch.ones_like(keep)

        def _score_round(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            """trl's generation and scoring of one round's rows (a subclass mixes expert rows in here)."""
            return super()._generate_and_score_completions(inputs)

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations,
                                  has_tool_images=False):
            seeds, self._group_seeds = self._group_seeds, []
            if self.use_vllm or not seeds:
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     has_tool_images)
            group = len(prompt_ids) // len(seeds)
            completions = []
            devices = [self.accelerator.device] if self.accelerator.device.type == "cuda" else []
            for k, seed in enumerate(seeds):   # one call per group: its samples depend on its seed alone
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(seed)
                    ids, _ = super()._generate_single_turn(prompt_ids[k * group:(k + 1) * group], images,
                                                           multimodal_fields, num_generations, has_tool_images)
                completions.extend(ids)
            return completions, None

        def _generate_and_score_completions(self, inputs):
            if not self.model.training:
                return super()._generate_and_score_completions(inputs)
            world, rank = self.accelerator.num_processes, self.accelerator.process_index
            quota, group = self.prompts_per_step, self.num_generations
            share, slots_per_rank = self.gen_prompts_per_round // world, quota // world
            parts, generated, kept, rounds = [], [], 0, 0
            while rounds < self.max_gen_rounds and kept < quota:   # the same decision on every process
                out, keep = self._round()
                rounds += 1
                generated.append(out)
                chosen = torch.nonzero(keep).flatten()[:quota - kept].cpu()   # global groups, in order
                slots = torch.arange(kept, kept + chosen.numel())
                kept += int(chosen.numel())
                part = self._route(out, chosen // share, chosen % share, slots // slots_per_rank, rank)
                if part is not None:
                    parts.append(part)
            trained_here = sum(p["completion_ids"].size(0) for p in parts) // group
            if trained_here < slots_per_rank:   # max_gen_rounds spent: the missing slots are masked rows
                last = generated[-1]
                rows = torch.arange((slots_per_rank - trained_here) * group, device=last["completion_ids"].device)
                filler = take_rows(last, rows % last["completion_ids"].size(0))
                filler["_ran_completion_tokens"] = filler["completion_mask"].sum(dim=1)
                filler["completion_mask"] = torch.zeros_like(filler["completion_mask"])
                if "tool_mask" in filler:
                    filler["tool_mask"] = torch.zeros_like(filler["tool_mask"])
                parts.append(filler)
            for part in parts:   # completion tokens that run forward and backward, before any masking
                part.setdefault("_ran_completion_tokens", part["completion_mask"].sum(dim=1))
            batch = concat_rows(parts, self._tokenizer.pad_token_id)
            ran = batch.pop("_ran_completion_tokens").float()
            loss_mask = batch["completion_mask"] * batch.get("tool_mask", 1)
            batch["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
            gather = lambda t: self.accelerator.gather(t.float()).mean().item()   # noqa: E731
            self.generation_records.append({
                "prompts": self.gen_prompts_per_round, "group": group, "gen_rounds": rounds,
                "train_prompts": kept, "masked_groups": quota - kept,
                "discarded_groups": rounds * self.gen_prompts_per_round - kept, "filled": kept == quota,
                "mean_prompt_tokens": gather(torch.cat([g["prompt_mask"].sum(dim=1) for g in generated])),
                "mean_completion_tokens": gather(torch.cat([g["completion_mask"].sum(dim=1) for g in generated])),
                "mean_train_prompt_tokens": gather(batch["prompt_mask"].sum(dim=1)),
                "mean_train_completion_tokens": gather(ran),
            })
            return batch

        def _route(self, out: dict[str, Any], owner: Any, local: Any, dest: Any, rank: int) -> dict[str, Any] | None:
            """The rows of this process's slots among one round's chosen groups (in slot order), or None.

            ``owner`` / ``local``: the process that generated each chosen group and its index there;
            ``dest``: the process that trains it. Every process holds the same three lists.
            """
            group = self.num_generations

            def rows_of(groups: Any) -> Any:
                groups = groups.to(out["completion_ids"].device)
                return (groups.unsqueeze(1) * group + torch.arange(group, device=groups.device)).flatten()

            mine = dest == rank
            if bool((owner == dest).all()):   # no group changes process: take the local rows
                return take_rows(out, rows_of(local[mine])) if bool(mine.any()) else None
            world = self.accelerator.num_processes
            width = int(torch.bincount(owner, minlength=world).max())   # groups per process in the exchange
            n_out = out["completion_ids"].size(0)   # the same on every process: one share of the round
            sent = take_rows(out, rows_of(local[owner == rank]))
            n, gathered = sent["completion_ids"].size(0), {}
            for key, value in out.items():   # the same keys, in the same order, on every process
                if not (torch.is_tensor(value) and value.dim() > 0 and value.size(0) == n_out):
                    continue   # scalars are recomputed for the assembled batch
                value, pad = sent[key], self._tokenizer.pad_token_id if key in ("prompt_ids", "completion_ids") else 0
                if value.dim() == 2:   # one width over the processes; prompts are left-padded
                    value = self.accelerator.pad_across_processes(value, dim=1, pad_index=pad, pad_first=key in _LEFT)
                value = torch.nn.functional.pad(value, (0, 0) * (value.dim() - 1) + (0, width * group - n), value=pad)
                gathered[key] = self.accelerator.gather(value)
            if not bool(mine.any()):
                return None
            # each chosen group's place among its owner's contributions, then its rows in the gathered tensors
            place = torch.tensor([int((owner[:i] == owner[i]).sum()) for i in range(owner.numel())], dtype=torch.long)
            picked = rows_of((owner * width + place)[mine])
            return {k: gathered[k][picked.to(gathered[k].device)] if k in gathered else v for k, v in sent.items()}

    return BranchTrainer
