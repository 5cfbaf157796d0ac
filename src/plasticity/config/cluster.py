"""``cluster``: the machines a config's GPU jobs run on, as ``plan`` and the rules' time limits assume them.

Nothing here changes what a job computes: ``plan`` turns these into each job's memory, hours and
resumable segments (``plasticity.budget``), fails a job that would not fit before it is submitted,
and the rules take each training job's stop-signal lead, elastic grace and retries from the same
numbers. Defaults: H100 SXM nodes of 8 x 80 GB (the study's GPU hardware, PAPER 2.4 / 2.5).
"""
from __future__ import annotations

from pydantic import Field

from plasticity.config.base import Strict


class Cluster(Strict):
    gpu_mem_gb: float = Field(80.0, gt=0)            # memory of one GPU
    gpu_tflops: float = Field(989.0, gt=0)           # dense bf16 peak of one GPU (H100 SXM: 989)
    mfu: float = Field(0.4, gt=0, le=1)              # training FLOPs utilisation
    # vLLM generation throughput of one GPU, in completion tokens per second summed over the sequences it
    # decodes at once, at the RL branches' lengths. Default: a conservative figure for a 7B bf16 model
    # decoding 64 sequences of up to 9K tokens on one H100 [I]; measure it on the cluster (the RL train
    # log's completion tokens over its generation time) and set it here.
    decode_tokens_per_s: float = Field(2500.0, gt=0)
    checkpoint_write_gb_per_s: float = Field(1.0, gt=0)   # what one node writes to the shared file system
    # a job's start before its first step (imports, model load, vLLM start-up, resume state read)
    startup_s: float = Field(600.0, ge=0)
