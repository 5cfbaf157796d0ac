"""Stage ``sft``: supervised fine-tuning on expert trajectories, with checkpoints and validation loss.

Reads the base model directory and the TRAIN / VAL sets as the ``tokenize`` stage wrote them
(``train.tokens``: memory-mapped Arrow shards of token ids and completion masks, made with this
model's tokenizer), writes a run directory::

    RUN_DIR/checkpoint-<step>/   HF safetensors weights (in the training precision) + tokenizer +
                                 metrics.json, one per save step
    RUN_DIR/val_loss.json        {"points": [{"step", "val_loss"}, ...]}  (step 0 = the base)
    RUN_DIR/train_stats.json     {"model_dir", "batch_size", "mean_seq_len", "steps", "train_loss",
                                  "world_size", "per_device_batch", "grad_accum", "precision", ...}
    RUN_DIR/regimes.json         Adaptive / Stable / Mild / Severe label per saved step (PAPER 1.4)
    RUN_DIR/manifest.json        last

Run by hand (one process; on several, the same line after ``torchrun --nproc_per_node N`` or
``python -m plasticity.launch``)::

    python -m plasticity sft --config CFG.json --base results/tiny/base --train results/tiny/tokens/uniform/1024 \\
        --val results/tiny/tokens/val/1024 --out results/tiny/sft/uniform [--threads 1]

``CFG.json`` is the ``sft`` section (``plasticity.config.SftSection``): the run's resolved settings,
whose ``batch_size`` is global. Training is trl's ``SFTTrainer`` (``train.trainer_config.sft_config``)
with completion-only loss on the chat-formatted pair.

Rank-safe: every process trains and takes its share of the validation loss (sums all-reduced, so
FSDP / ZeRO-3 ranks run their forwards in lockstep); the exported weights are gathered by the
trainer's own ``save_model``; the main process alone writes files and the manifest.

Restartable: the run is built in ``.RUN_DIR.partial`` beside RUN_DIR (checkpoints, and the trainer's
full state for the latest save step in ``.resume``) and renamed onto RUN_DIR when complete. A killed
run resumes from that sibling, which survives Snakemake clearing the unfinished output. On SIGTERM
(the scheduler's notice before the time limit, or a preemption; ``train.preemption``) every rank
finishes its optimizer step, the trainer saves its full state there, and the job exits 143 for the
retry to resume: a preempted run ends byte-identical to an uninterrupted one on CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from plasticity.config import SftRunSettings, SftSection, load_section
from plasticity.io import MANIFEST, read_json, write_json, write_manifest
from plasticity.train.preemption import SIGTERM_EXIT, Preemption, stop_callback

log = logging.getLogger(__name__)

RESUME_DIR = ".resume"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where an SFT run keeps its step-``step`` weights (the RL stage branches from it)."""
    return Path(run_dir) / f"checkpoint-{int(step)}"


# ----------------------------------------------------------------------------- shared trainer

def horizon_schedule(warmup: int, horizon: int, steps: int, warmup_total: int) -> Callable[[int], float]:
    """Warmup + cosine laid out over ``horizon`` steps, then rebuilt over all ``steps`` (``SftRun.schedule_horizon``).

    Up to ``horizon`` this is exactly a ``horizon``-step run's schedule; after it, the multiplier is
    the ``steps``-step schedule's (warmup ``warmup_total``) at the same step, as verl computes it when
    a finished run is resumed with more steps.
    """
    def cosine(step: int, warm: int, total: int) -> float:
        if step < warm:
            return step / max(1, warm)
        progress = (step - warm) / max(1, total - warm)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return lambda step: cosine(step, warmup, horizon) if step < horizon else cosine(step, warmup_total, steps)


def build_sft_trainer(model: Any, tokenizer: Any, dataset: Any, settings: SftRunSettings,
                      output_dir: str | Path, *, seed: int, world_size: int, cuda: bool,
                      callbacks: list[Any] | None = None, tracking: dict[str, Any] | None = None) -> Any:
    """trl's ``SFTTrainer`` on tokenized rows (``input_ids``, ``completion_mask``: the ``tokenize``
    stage's memory-mapped shards, or ``train.data.to_dataset`` of a few rows), configured from ``settings``.

    Used by the base pretraining and by SFT. trl's dataset preparation is skipped (it would write the
    set again as cache files); ``train.data.CompletionCollator`` builds the completion-only labels per
    micro-batch. The trainer keeps its resume state only for the steps the callbacks ask it to save.
    """
    from trl import SFTTrainer

    from plasticity.train.data import CompletionCollator
    from plasticity.train.trainer_config import CpuResume, sft_config, warmup_steps

    args = sft_config(settings, output_dir=output_dir, seed=seed, world_size=world_size, cuda=cuda,
                      resume_state_at=max(settings.save_steps), tracking=tracking)
    if tokenizer.pad_token is None:              # as trl does for its own collator: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id

    class Trainer(CpuResume, SFTTrainer):
        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            if settings.schedule_horizon is None:
                return super().create_scheduler(num_training_steps, optimizer)
            from torch.optim.lr_scheduler import LambdaLR

            horizon = settings.schedule_horizon
            self.lr_scheduler = LambdaLR(optimizer or self.optimizer, horizon_schedule(
                warmup_steps(settings, horizon), horizon, settings.steps, warmup_steps(settings, settings.steps)))
            self._created_lr_scheduler = True
            return self.lr_scheduler

    return Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                   data_collator=CompletionCollator(tokenizer.pad_token_id, bool(settings.padding_free)),
                   callbacks=callbacks or [])


def export_callback(run_dir: Path, settings: SftRunSettings, tokenizer: Any, measure: Callable[[Any], float],
                    state: Any) -> Any:
    """Callback exporting weights + tokenizer + the validation loss at exactly ``settings.save_steps``.

    Every rank runs the forwards and ``trainer.save_model`` (which gathers sharded weights); the main
    process writes into a temporary sibling and renames it, so a killed run never leaves a
    ``checkpoint-<step>`` that looks finished. The trainer is asked to save its resume state at the
    same steps. ``callback.trainer`` must be set once the trainer exists.
    """
    from transformers import TrainerCallback

    from plasticity.models import save_tokenizer

    steps = set(settings.save_steps)
    base_point = run_dir / "val_loss_step0.json"

    class ExportCheckpoints(TrainerCallback):
        trainer: Any = None

        def on_train_begin(self, args, state_, control, model=None, **kwargs):
            if not base_point.is_file():   # every rank sees the same file system
                loss = measure(model)
                if state.is_main_process:
                    write_json(base_point, {"step": 0, "val_loss": loss})
            state.wait_for_everyone()
            return control

        def on_step_end(self, args, state_, control, model=None, **kwargs):
            step = state_.global_step
            if step not in steps:
                return control
            control.should_save = True
            metrics = {"step": step, "val_loss": measure(model)}
            final = checkpoint_dir(run_dir, step)
            tmp = final.with_name(f".{final.name}.tmp")
            if state.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            state.wait_for_everyone()
            self.trainer.save_model(str(tmp))
            if state.is_main_process:
                (tmp / "training_args.bin").unlink(missing_ok=True)   # a pickle: nothing here loads one
                save_tokenizer(tokenizer, tmp)
                write_json(tmp / "metrics.json", metrics)
                shutil.rmtree(final, ignore_errors=True)
                os.replace(tmp, final)
                log.info("exported %s %s", final, metrics)
            state.wait_for_everyone()
            return control

    return ExportCheckpoints()


# ----------------------------------------------------------------------------- the stage

def run(cfg: SftSection, base: str | Path, train: str | Path, val: str | Path, out: str | Path,
        *, threads: int = 1) -> Path:
    """Fine-tune ``base`` on ``train``; write checkpoints, validation loss and regimes into ``out``."""
    from plasticity.features import require
    from plasticity.models import attn_implementation, load_model_and_tokenizer, set_threads
    from plasticity.train import seed_everything, tracking
    from plasticity.train.tokens import open_tokenized
    from plasticity.train.trainer_config import (check_strategy, cuda_available, model_dtype, process_state,
                                                  resolved_precision)
    from plasticity.train.val_loss import validation_loss

    sft, seed = cfg.sft, cfg.seed
    require(sft, "sft")   # a package the settings turn on (liger, flash-attn, ...) fails here, not mid-run
    preemption = Preemption()
    cuda = cuda_available()
    state = process_state(cuda)
    world = state.num_processes
    micro, accum = sft.batch_layout(world)   # an indivisible batch fails before anything loads
    set_threads(max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    seed_everything(seed)
    final = Path(out)
    out = final.with_name(f".{final.name}.partial")
    if state.is_main_process:
        _prepare_run_dir(out, cfg)
    state.wait_for_everyone()
    resume_from = _resume_state(out)

    model, tokenizer = load_model_and_tokenizer(base, trust_remote_code=cfg.model.trust_remote_code,
                                                dtype=model_dtype(sft.precision, cuda),
                                                attn_implementation=attn_implementation(cuda))
    train_set, val_set = open_tokenized(train, tokenizer), open_tokenized(val, tokenizer)   # memory-mapped

    def measure(m: Any) -> float:
        return validation_loss(m, val_set, micro_batch_size=micro, pad_id=tokenizer.pad_token_id,
                               chunk_tokens=sft.val_chunk_tokens)

    rid = tracking.run_id(cfg.model_dump(mode="json"), final)
    callback = export_callback(out, sft, tokenizer, measure, state)
    trainer = build_sft_trainer(model, tokenizer, train_set, sft, out / RESUME_DIR, seed=seed, world_size=world,
                                cuda=cuda, callbacks=[callback, stop_callback(preemption, state)],
                                tracking=tracking.trainer_kwargs(sft.report_to, rid, out))
    callback.trainer = trainer
    check_strategy(sft.launch.strategy, trainer.accelerator)
    trainer.train(resume_from_checkpoint=resume_from)
    if preemption.received:
        log.warning("stopped on SIGTERM at step %d; rerun to resume", trainer.state.global_step)
        raise SystemExit(SIGTERM_EXIT)
    # every rank leaves the trainer (its epilogue still lists the resume directory) before the main
    # process removes that directory below
    state.wait_for_everyone()

    if state.is_main_process:
        points = [read_json(out / "val_loss_step0.json")]
        for step in sft.save_steps:
            metrics_file = checkpoint_dir(out, step) / "metrics.json"
            if not metrics_file.is_file():
                raise RuntimeError(f"{checkpoint_dir(out, step)} is missing after training")
            points.append({"step": step, "val_loss": float(read_json(metrics_file)["val_loss"])})
        write_json(out / "val_loss.json", {"points": points})
        train_stats, val_stats = read_json(Path(train) / "stats.json"), read_json(Path(val) / "stats.json")
        write_json(out / "train_stats.json", {
            "model_dir": str(base),
            "batch_size": sft.batch_size,
            # mean prompt + response (+ EOS) tokens as trained, after max_length truncation
            "mean_seq_len": train_stats["mean_length"],
            "steps": sft.save_steps,
            "world_size": world, "per_device_batch": micro, "grad_accum": accum,
            "precision": resolved_precision(sft.precision, cuda),
            # pairs whose prompt alone fills max_length: nothing to train on (PAPER 2.4 right-truncation)
            # (the tokenize stage's ledger lists them)
            "dropped_prompt_fills_max_length": {"train": train_stats["rows_dropped"], "val": val_stats["rows_dropped"]},
            "train_loss": [{"step": int(e["step"]), "loss": float(e["loss"])}
                           for e in trainer.state.log_history if "loss" in e],
        })
        write_regimes(out, points, cfg.regimes)
        shutil.rmtree(out / RESUME_DIR, ignore_errors=True)
        (out / "val_loss_step0.json").unlink()
        write_manifest(out, stage="sft", config=cfg.model_dump(mode="json"), seed=seed,
                       inputs={"base": base, "train": train, "val": val},
                       extra=tracking.manifest_entry(sft.report_to, rid))
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    state.wait_for_everyone()
    return final


def write_regimes(out: Path, points: list[dict[str, Any]], regimes_cfg: Any) -> None:
    """Label each point of the validation-loss curve with its regime (PAPER 1.4; step 0 is the base)."""
    from plasticity.analysis.regimes import label_regimes

    steps = [int(p["step"]) for p in points]
    losses = [float(p["val_loss"]) for p in points]
    labels = label_regimes(steps, losses, regimes_cfg.delta, regimes_cfg.delta2)
    write_json(out / "regimes.json", {
        "delta": regimes_cfg.delta, "delta2": regimes_cfg.delta2,
        "points": [{"step": s, "val_loss": v, "regime": r} for s, v, r in zip(steps, losses, labels)],
    })


def _prepare_run_dir(out: Path, cfg: SftSection) -> None:
    """Keep a partial run of the same config (to resume it); wipe one left by another config."""
    if (out / MANIFEST).is_file():
        (out / MANIFEST).unlink()  # rerunning a finished run: it is unfinished until rewritten
    digest = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    stamp = out / RESUME_DIR / "config.sha256"
    if out.exists() and not (stamp.is_file() and stamp.read_text().strip() == digest):
        shutil.rmtree(out)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")


def _resume_state(out: Path) -> str | None:
    """The trainer state to resume from: the latest complete one in ``.resume``, or None."""
    states = sorted((p for p in (out / RESUME_DIR).glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                    key=lambda p: int(p.name.split("-")[-1]))
    if states:
        log.info("resuming from %s", states[-1])
        return str(states[-1])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity sft", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON: the sft section (plasticity.config.SftSection)")
    parser.add_argument("--base", required=True, help="base model directory (safetensors + tokenizer)")
    parser.add_argument("--train", required=True, help="the training set's tokenize output (train.tokens)")
    parser.add_argument("--val", required=True, help="the validation set's tokenize output (train.tokens)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of this node's processes (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(load_section(args.config, SftSection), args.base, args.train, args.val, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
