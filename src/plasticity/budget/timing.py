"""How long a training job takes, and how it is cut into resumable SLURM jobs.

- SFT: an optimizer step is ``3 B S F_fwd`` FLOPs (PAPER 2.6; x 4/3 with gradient checkpointing, which
  recomputes the forward) at ``cluster.mfu`` of ``cluster.gpu_tflops`` on every GPU of the job.
- RL: a step generates and then trains. Generation is decode-bound, so it is timed by throughput,
  not FLOPs: ``rounds x prompts per round x G`` completions of the expected length at
  ``cluster.decode_tokens_per_s`` per GPU. Training is the method's training FLOPs at MFU (3 passes per
  trained token, 4 with gradient checkpointing, plus trl's forward for the old log-probabilities).
  The in-loop evaluation decodes every benchmark problem ``eval_samples`` times at the same
  throughput. Dynamic sampling's rounds per step are ``expected_rounds``: verl's pooled quota (the
  round's kept groups counted over all processes), from ``expected_keep_rate``.
- A save writes the resume state (``budget.memory``) at ``cluster.checkpoint_write_gb_per_s`` per node.

A job of ``launch.time_min`` minutes gets SIGTERM ``lead_s`` before its limit: the workers may need one
step plus one save to stop (``grace_s``, 1.5x that plus a minute, what the elastic agent waits
before it kills), and SLURM delivers the signal up to a minute late. What remains after the start-up
(``cluster.startup_s``) and the lead is a segment's useful time; a job longer than that runs as
several segments, each a Snakemake retry resuming the last (``retries`` = segments, one to spare).
A segment too short for one step and one save can never progress: plan fails it naming
``launch.time_min``. CPU jobs (no GPUs) have no throughput model: the lead is a tenth of the limit
(at least a minute), the grace 30 s less, and the profile's retries apply.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def expected_rounds(keep_rate: float, prompts_per_round: int, quota: int, max_rounds: int) -> float:
    """Mean generation rounds of a dynamic-sampling step: rounds of ``prompts_per_round`` groups, each kept
    with probability ``keep_rate``, until ``quota`` are kept over all processes, at most ``max_rounds``.

    E[R] = sum over r < max_rounds of P(fewer than ``quota`` kept after r rounds), kept ~ Binomial(r x
    prompts, keep_rate) (r = 0 counts the first round).
    """
    from scipy.stats import binom

    return float(sum(1.0 if r == 0 else binom.cdf(quota - 1, r * prompts_per_round, keep_rate)
                     for r in range(max_rounds)))


@dataclass
class Timing:
    hours: float                # the whole job, on its GPUs (wall-clock, not GPU-hours)
    step_s: float               # one optimizer step (SFT) or RL step
    save_s: float               # one resume save
    grace_s: int                # what the workers get after SIGTERM
    lead_s: int                 # how long before the time limit SLURM signals
    segments: int               # SLURM jobs of launch.time_min the job needs
    gen_hours: float = 0.0      # RL: generation (and in-loop evaluation) part of ``hours``
    train_hours: float = 0.0    # RL: training part of ``hours``


def cpu_timing(time_min: int) -> Timing:
    """No throughput model on CPU: a tenth of the limit as the lead (at least 60 s), the profile's retries."""
    lead = max(60, time_min * 6)
    return Timing(hours=0.0, step_s=0.0, save_s=0.0, grace_s=max(30, lead - 30), lead_s=lead, segments=1)


def segment_timing(hours: float, step_s: float, save_s: float, time_min: int, startup_s: float,
                   where: str) -> Timing:
    """Grace, lead and segments of a job of ``hours`` on GPUs; an impossible limit names ``where``."""
    grace = int(math.ceil(1.5 * (step_s + save_s) + 60))
    lead = grace + 60
    useful = time_min * 60 - lead - startup_s
    if useful < step_s + save_s:
        raise ValueError(f"{where}.launch.time_min: {time_min} min leaves {useful / 60:.1f} min after start-up "
                         f"({startup_s / 60:.0f} min) and the stop signal's lead ({lead / 60:.1f} min), less than "
                         f"one step and one save ({(step_s + save_s) / 60:.1f} min)")
    return Timing(hours=hours, step_s=step_s, save_s=save_s, grace_s=grace, lead_s=lead,
                  segments=max(1, math.ceil(hours * 3600 / useful)))
