"""Trainer hooks: checkpoint export at exact steps (SFT) and periodic evaluation (RL).

Both are ``transformers.TrainerCallback`` subclasses built lazily by factory functions, so importing
this module stays free of torch/transformers.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterable

from plasticity.io import atomic_path, write_json

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / f"{CHECKPOINT_PREFIX}{int(step)}"


def export_checkpoints_callback(run_dir: str | Path, save_steps: Iterable[int], tokenizer: Any,
                                measure: Callable[[Any], dict[str, Any]]) -> Any:
    """Callback that exports HF-format weights + tokenizer at exactly ``save_steps``.

    Each export is written to a temporary sibling and renamed, so a killed run never leaves a
    ``checkpoint-<step>`` that looks finished. ``measure(model)`` (e.g. the validation loss) is
    stored in the checkpoint as ``metrics.json``. The trainer is also told to save its full resume
    state (optimizer, scheduler, RNG) at the same steps, into its own output directory.
    """
    from transformers import TrainerCallback

    from plasticity.models import save_model_and_tokenizer

    steps = sorted({int(s) for s in save_steps})

    class ExportCheckpoints(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            if step not in steps:
                return control
            control.should_save = True
            if not state.is_world_process_zero:  # under accelerate launch, rank 0 exports
                return control
            was_training = model.training
            model.eval()
            metrics = {"step": step, **measure(model)}
            model.train(was_training)
            with atomic_path(checkpoint_dir(run_dir, step)) as tmp:
                tmp.mkdir(parents=True)
                save_model_and_tokenizer(model, tokenizer, tmp)
                write_json(tmp / "metrics.json", metrics)
            log.info("exported %s %s", checkpoint_dir(run_dir, step), metrics)
            return control

    return ExportCheckpoints()


def periodic_eval_callback(evaluate: Callable[[Any, int], None], every: int, max_steps: int) -> Any:
    """Callback calling ``evaluate(model, step)`` before the first step, every ``every`` steps and at the end."""
    from transformers import TrainerCallback

    class PeriodicEval(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 0:
                self._run(model, 0)
            return control

        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            if (every > 0 and step % every == 0) or step == max_steps:
                self._run(model, step)
            return control

        @staticmethod
        def _run(model, step):
            was_training = model.training
            model.eval()
            evaluate(model, step)
            model.train(was_training)

    return PeriodicEval()
