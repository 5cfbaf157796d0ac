"""What a training job holds: host memory per rank, GPU memory per GPU, checkpoint bytes on disk.

A model from the config alone, so ``plan`` can fail a job before it is submitted. Bytes are decimal
(1 GB = 1e9 B, as ``mem_gb_per_process`` and ``gpu_mem_gb`` are read). P is the parameter count, T the
tokens of one micro-batch at its longest (micro-batch x max length: a padding-free micro-batch may
be that long too), H / H_ff / L / V the model's hidden, FFN, layers and vocabulary.

GPU, per GPU (the peak of the training, generation and validation phases):

- training state, ``STATE_BYTES`` per parameter, divided over the processes for FSDP and ZeRO-3:
  DDP keeps weights, gradients and AdamW state in the loaded dtype (fp32: 4 + 4 + 8; bf16: 2 + 2 + 4);
  FSDP2 under bf16 mixed precision upcasts the sharded weights to fp32 (accelerate), so 4 + 4 + 8;
  ZeRO-3 keeps bf16 weights and gradients and fp32 masters and moments (2 + 2 + 12);
- the weights FSDP / ZeRO-3 gather for the layer being computed and the next (2 x 2 bytes x a layer);
- activations: with gradient checkpointing L x T x H x 2 bytes (the layer inputs kept) plus one
  layer recomputed, T x (10 H + 6 H_ff) bytes (Korthikanti et al. 2022, 34 H at H_ff = 4 H, with
  FlashAttention: no attention-score term); without it, L layers of the latter;
- logits: none with Liger's fused linear cross-entropy; else T x V x 10 bytes (bf16 logits, their fp32
  copy, the loss's log-softmax). RL (trl computes the micro-batch's logits whole, then log-softmax a
  row at a time): T x V x 2 + completion x V x 8;
- SFT validation (no gradients): one micro-batch's hidden states and ``val_chunk_tokens`` x V x 10;
- the colocated vLLM engine: ``vllm_gpu_memory_utilization`` x GPU memory, during training too
  unless sleep mode frees it (then the generation phase holds state + vLLM);
- ``CUDA_OVERHEAD_GB`` of context, kernels and allocator slack.

vLLM's KV cache: its share minus the bf16 weights (over tensor parallelism) minus ``VLLM_OVERHEAD_GB``,
against 2 x L x kv_heads x head_dim x 2 bytes per token: one sequence of ``max_model_length`` must
fit (vLLM refuses to start otherwise), and the sequences that fit at the expected length are
reported beside the number trl lets vLLM decode at once.

Host, per rank: ``HOST_BASE_GB`` (interpreter, torch, CUDA host state, tokenizer), plus the larger of
loading (each DDP / FSDP process reads the whole model; ZeRO-3 partitions as it reads, a shard file at
a time) and saving (FSDP gathers the full fp32 weights and AdamW state on rank 0; ZeRO-3 gathers the
16-bit weights on rank 0 and each rank copies its own partition), plus vLLM's host swap and, in sleep
mode, its offloaded weights. The tokenized sets are memory-mapped: their pages are file cache, not
rank memory (benchmarks/bench_tokenize.py measures a rank's RSS flat from 100K to 889K rows).
A CPU job (no GPUs) holds the training state and activations in host memory instead.

Checkpoints: exported weights (2 bytes a parameter in bf16, 4 in fp32) per save step, and the
trainer's resume state: FSDP 12 P (fp32 weights and AdamW moments, gathered), ZeRO-3 16 P (each
rank's partition of weights, masters and moments, and the gathered 16-bit model), DDP the weights and
moments in their dtype; SFT keeps one resume state, RL two.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plasticity.analysis.flops import ModelConstants

GB = 1e9
CUDA_OVERHEAD_GB = 3.0
VLLM_OVERHEAD_GB = 2.0        # vLLM's activations, CUDA graphs and sampler beside weights and KV cache
VLLM_SWAP_GB = 4.0            # vLLM's default CPU swap space per GPU
HOST_BASE_GB = 3.0
SHARD_FILE_GB = 5.0           # the largest safetensors shard a hub model ships (ZeRO-3 loads one at a time)
STATE_BYTES = {("ddp", "fp32"): 16, ("ddp", "bf16"): 8, ("fsdp", "fp32"): 16, ("fsdp", "bf16"): 16,
               ("zero3", "fp32"): 16, ("zero3", "bf16"): 16}
RESUME_BYTES = {("ddp", "fp32"): 12, ("ddp", "bf16"): 6, ("fsdp", "fp32"): 12, ("fsdp", "bf16"): 12,
                ("zero3", "fp32"): 16, ("zero3", "bf16"): 16}
RESUME_KEPT = {"sft": 1, "rl": 2}


def parameters(m: ModelConstants, tied: bool = False) -> int:
    """Parameter count of a SwiGLU / GQA decoder (embeddings, attention, MLP, norms)."""
    attn = m.hidden * m.heads * m.head_dim * 2 + m.hidden * m.kv_dim * 2
    layer = attn + 3 * m.hidden * m.ffn + 2 * m.hidden
    return m.layers * layer + m.vocab * m.hidden * (1 if tied else 2) + m.hidden


def layer_parameters(m: ModelConstants) -> int:
    return m.hidden * m.heads * m.head_dim * 2 + m.hidden * m.kv_dim * 2 + 3 * m.hidden * m.ffn


def kv_bytes_per_token(m: ModelConstants) -> int:
    """Keys and values of every layer for one token, in bf16."""
    return 2 * m.layers * m.kv_dim * 2


@dataclass
class Memory:
    """One job's estimate (GB); ``parts`` say what each total is made of."""

    host_gb_per_rank: float                       # the busiest rank (rank 0 while it gathers a save)
    host_gb_per_node: float                       # rank 0 at its peak + the other ranks
    gpu_gb: float | None                          # per GPU at the peak phase; None on a CPU job
    checkpoint_gb: float                          # exported weights, every save of the job
    resume_state_gb: float                        # resume states kept at once
    resume_write_gb: float                        # what one save writes (a preemption's checkpoint)
    parts: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)   # RL with vLLM: the KV-cache budget


def _precision(settings: Any) -> str:
    return "bf16" if settings.precision == "bf16" and settings.launch.gpus_per_node else "fp32"


def _activations(m: ModelConstants, tokens: float, checkpointing: bool) -> float:
    layer = tokens * (10 * m.hidden + 6 * m.ffn)
    return m.layers * tokens * m.hidden * 2 + layer if checkpointing else m.layers * layer


def training_memory(m: ModelConstants, settings: Any, kind: str, micro: int, tokens_per_row: float, *,
                    gpu_mem_gb: float, expected_rl_tokens: float = 0.0) -> Memory:
    """The estimate of one SFT run (``kind`` sft) or RL branch (``kind`` rl) with these settings.

    ``tokens_per_row``: a micro-batch row at its longest; ``expected_rl_tokens``: an RL sequence's
    expected prompt + completion (the KV cache's concurrency); ``gpu_mem_gb``: ``cluster.gpu_mem_gb``.
    """
    launch = settings.launch
    precision = _precision(settings)
    p = parameters(m)
    world = launch.world_size
    shard = world if launch.strategy in ("fsdp", "zero3") else 1
    weight_bytes = 2 if precision == "bf16" else 4
    state = p * STATE_BYTES[(launch.strategy, precision)] / shard
    tokens = micro * tokens_per_row
    parts = {"state": state / GB}
    if shard > 1:
        parts["gathered_layers"] = 2 * 2 * layer_parameters(m) / GB
    parts["activations"] = _activations(m, tokens, settings.gradient_checkpointing) / GB
    if kind == "sft":
        parts["logits"] = 0.0 if getattr(settings, "liger", False) else tokens * m.vocab * 10 / GB
        validation = (tokens * m.hidden * 2 + settings.val_chunk_tokens * m.vocab * 10) / GB
    else:
        parts["logits"] = (tokens * m.vocab * 2 + settings.max_completion_length * m.vocab * 8) / GB
        validation = 0.0
    train = sum(parts.values())
    kv: dict[str, float] = {}
    gpu = None
    if launch.gpus_per_node:
        overhead = CUDA_OVERHEAD_GB
        phases = {"train": train, "validation": parts["state"] + parts.get("gathered_layers", 0) + validation}
        if kind == "rl" and settings.use_vllm and settings.vllm_mode == "colocate":
            kv = vllm_kv(m, settings, gpu_mem_gb, expected_rl_tokens)
            vllm = kv["vllm_gb"]
            sleep = settings.vllm_enable_sleep_mode
            phases["generation"] = parts["state"] + vllm
            phases["train"] = train + (0.0 if sleep else vllm)
        gpu = max(phases.values()) + overhead
        parts.update({f"phase_{k}": v for k, v in phases.items()}, cuda_overhead=overhead)
    # host, per rank
    load = p * weight_bytes if launch.strategy != "zero3" else min(p * weight_bytes, SHARD_FILE_GB * GB)
    save_rank0 = {"fsdp": 12 * p, "zero3": 2 * p + 12 * p / world, "ddp": RESUME_BYTES[("ddp", precision)] * p}
    host_parts = {"base": HOST_BASE_GB, "load_or_save": max(load, save_rank0[launch.strategy]) / GB}
    if not launch.gpus_per_node:      # CPU training: the state and activations live in host memory
        host_parts["training"] = train
    if kind == "rl" and settings.use_vllm:
        host_parts["vllm"] = VLLM_SWAP_GB + (p * 2 / settings.vllm_tensor_parallel_size / GB
                                             if settings.vllm_enable_sleep_mode else 0.0)
    host = sum(host_parts.values())
    others = host - host_parts["load_or_save"] + load / GB
    parts.update({f"host_{k}": v for k, v in host_parts.items()})
    exported = p * weight_bytes / GB
    saves = len(settings.save_steps) if kind == "sft" else 1
    resume = p * RESUME_BYTES[(launch.strategy, precision)] / GB
    return Memory(host_gb_per_rank=host, host_gb_per_node=host + (launch.procs_per_node - 1) * others,
                  gpu_gb=gpu, checkpoint_gb=saves * exported, resume_state_gb=RESUME_KEPT[kind] * resume,
                  resume_write_gb=resume + (exported if kind == "sft" else 0.0), parts=parts, kv=kv)


def vllm_kv(m: ModelConstants, settings: Any, gpu_mem_gb: float, expected_tokens: float) -> dict[str, float]:
    """The colocated engine's share, its KV cache and how many sequences it holds at once."""
    tp = settings.vllm_tensor_parallel_size
    share = settings.vllm_gpu_memory_utilization * gpu_mem_gb
    cache = share - parameters(m) * 2 / tp / GB - VLLM_OVERHEAD_GB
    per_token = kv_bytes_per_token(m) / tp / GB
    return {"vllm_gb": share, "kv_cache_gb": cache, "max_model_length": settings.max_model_length,
            "one_sequence_gb": per_token * settings.max_model_length,
            "sequences_at_expected_length": max(0.0, cache) / (per_token * expected_tokens)}
