"""SIGTERM as a normal event: every rank finishes its step, the trainer saves, the job exits for requeue.

The scheduler sends SIGTERM ahead of a job's time limit (``--signal=TERM@lead``, the lead from
``plan``: one step plus one checkpoint write) and on preemption. It reaches every process: directly
where the stage runs alone, and through ``plasticity.launch`` and the elastic agent (which waits the
configured grace before it kills) under several processes. Each rank only records it here; the
training callbacks ask all ranks at the next step boundary (an all-reduce, so they agree on the
step), set the trainer's save and stop flags there, and the stage exits ``SIGTERM_EXIT`` once the
checkpoint is complete. The retry resumes from it.
"""
from __future__ import annotations

import logging
import signal
from typing import Any

log = logging.getLogger(__name__)

SIGTERM_EXIT = 143     # 128 + SIGTERM: what the launcher and the profiles read as "stopped, resume me"


class Preemption:
    """Records SIGTERM (and SIGUSR1, which some sites send instead) in this process."""

    def __init__(self) -> None:
        self.received = False
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        log.warning("%s: saving a checkpoint at the next step boundary, then exiting %d",
                    signal.Signals(signum).name, SIGTERM_EXIT)
        self.received = True

    def agreed(self, device: Any) -> bool:
        """Whether any rank received the signal (a collective: every rank must call it at the same step)."""
        import torch
        from accelerate.utils import reduce

        flag = torch.tensor([int(self.received)], device=device)
        return bool(int(reduce(flag, reduction="sum").item()))


def stop_callback(preemption: Preemption, state: Any, boundary: int = 1) -> Any:
    """Callback: at an optimizer step that is a multiple of ``boundary`` (1 for SFT, the optimizer
    updates of one RL step for RL) after the signal, save the trainer's state and stop."""
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        def on_step_end(self, args, state_, control, **kwargs):
            if state_.global_step % boundary == 0 and preemption.agreed(state.device):
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopOnSignal()
