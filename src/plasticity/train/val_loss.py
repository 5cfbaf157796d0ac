"""SFT validation loss in bounded memory: never the full rows x width x vocabulary logits.

The study's validation loss (PAPER 1.4) is the token-mean cross-entropy over the completion tokens
(+ EOS) of the validation set. Computed naively, a micro-batch's logits alone are rows x width x
vocabulary numbers (4 x 12,000 x 152,064 in bf16 is 14.6 GB), and their fp32 copy and log-softmax
triple that. Here the model's output layer is swapped, for the forward only, for ``ChunkedNLL``: it
receives the final hidden states, keeps the positions whose next token is scored, and projects them
through the real output layer ``chunk_tokens`` positions at a time, summing the cross-entropy in
float64. The peak beyond the model's own forward is about ``chunk_tokens x vocabulary x 12`` bytes
(the chunk's logits in the model's dtype, their fp32 copy, the log-softmax inside the loss): 1.9 GB
at 1,024 tokens and Qwen's vocabulary, whatever the micro-batch and width.

Swapping the output layer (rather than calling the decoder and the head separately) keeps the one
forward call of the model, so FSDP and ZeRO-3 gather and release parameters exactly as in any
forward; the real head is called inside it. Models that transform their logits after the output
layer (softcapping, a logit scale) are refused: the chunked sum would not be their loss.
"""
from __future__ import annotations

import math
from typing import Any

CHUNK_TOKENS = 1024


class ChunkedNLL:
    """Stand-in output layer: the summed NLL of the scored positions, ``chunk_tokens`` at a time."""

    def __init__(self, head: Any, chunk_tokens: int):
        import torch

        class _Module(torch.nn.Module):      # a module so the model may call and move it like its head
            def forward(inner, hidden: Any) -> Any:
                return self._forward(hidden)

        self.module = _Module()
        self.head, self.chunk_tokens = head, int(chunk_tokens)
        self.targets: Any = None          # (rows, width) next-token ids, -100 where not scored
        self.total: Any = None            # float64 sum of the NLL over scored positions

    def _forward(self, hidden: Any) -> Any:
        import torch
        import torch.nn.functional as F

        flat = hidden.reshape(-1, hidden.size(-1))
        target = self.targets.reshape(-1)
        scored = torch.nonzero(target != -100).flatten()
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        for start in range(0, scored.numel(), self.chunk_tokens):
            idx = scored[start:start + self.chunk_tokens]
            logits = self.head(flat.index_select(0, idx)).float()
            total += F.cross_entropy(logits, target.index_select(0, idx), reduction="sum").double()
        self.total = total
        return hidden.new_zeros(hidden.shape[:-1] + (1,))   # the model's "logits": nothing of size vocabulary


def _check_plain_head(model: Any) -> None:
    config = getattr(model, "config", None)
    for key in ("final_logit_softcapping", "logit_scale"):
        if getattr(config, key, None) not in (None, 1.0):
            raise NotImplementedError(f"validation loss: {type(model).__name__} sets {key}; the chunked loss "
                                      "assumes the output layer's result is the logits")


def completion_nll(model: Any, input_ids: Any, attention_mask: Any, targets: Any,
                   chunk_tokens: int = CHUNK_TOKENS) -> Any:
    """Summed NLL (float64 tensor) of ``targets`` (same shape as ``input_ids``; ``targets[:, t]`` is the
    token position ``t`` predicts, -100 where not scored) under one forward of ``model``."""
    _check_plain_head(model)
    head = model.get_output_embeddings()
    chunked = ChunkedNLL(head, chunk_tokens)
    chunked.targets = targets
    model.set_output_embeddings(chunked.module)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        model.set_output_embeddings(head)
    return chunked.total


def validation_loss(model: Any, dataset: Any, *, micro_batch_size: int, pad_id: int,
                    chunk_tokens: int = CHUNK_TOKENS) -> float:
    """Token-mean cross-entropy on the completion tokens (+ EOS) of ``dataset``, over all ranks.

    ``dataset``: rows with ``input_ids`` and ``completion_mask`` (the ``tokenize`` stage's shards,
    or a dict of columns). Each process takes every world-th row in micro-batches of
    ``micro_batch_size``; every process runs the same number of forwards (a process short of rows
    repeats one with weight 0), so sharded models (FSDP, ZeRO-3) gather their parameters in
    lockstep. Memory: one micro-batch's hidden states and one chunk's logits (module docstring).
    """
    import torch
    import torch.distributed as dist

    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    device = next(model.parameters()).device
    size = len(dataset["input_ids"]) if isinstance(dataset, dict) else len(dataset)
    mine = list(range(rank, size, world))
    batches = math.ceil(math.ceil(size / world) / micro_batch_size)
    totals = torch.zeros(2, dtype=torch.float64, device=device)    # summed NLL, token count
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b in range(batches):
            rows = mine[b * micro_batch_size:(b + 1) * micro_batch_size]
            weight = 1.0 if rows else 0.0
            rows = rows or [0]
            batch = ({k: [dataset[k][i] for i in rows] for k in ("input_ids", "completion_mask")}
                     if isinstance(dataset, dict) else dataset[rows])      # a Dataset reads these rows only
            ids, masks = batch["input_ids"], batch["completion_mask"]
            width = max(map(len, ids))
            input_ids = torch.tensor([list(x) + [pad_id] * (width - len(x)) for x in ids], device=device)
            attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
            # position t predicts token t+1: the target of t is token t+1 where that token is scored
            targets = torch.full_like(input_ids, -100)
            for r, (x, mk) in enumerate(zip(ids, masks)):
                nxt = torch.tensor([t if m else -100 for t, m in zip(x[1:], mk[1:])], dtype=input_ids.dtype)
                targets[r, :len(nxt)] = nxt
            nll = completion_nll(model, input_ids, attention, targets, chunk_tokens)
            totals += weight * torch.stack([nll, (targets != -100).sum().double()])
    model.train(was_training)
    if dist.is_initialized():
        dist.all_reduce(totals)
    return float(totals[0] / totals[1].clamp(min=1))
