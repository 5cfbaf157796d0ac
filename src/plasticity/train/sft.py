"""Stage ``sft``: supervised fine-tuning on expert trajectories, with checkpoints and validation loss.

Reads the base model directory and the TRAIN / VAL trajectory tables (schema.TRAJECTORY; the
``prompt`` and ``response`` columns), writes a run directory::

    RUN_DIR/checkpoint-<step>/   HF safetensors weights + tokenizer (+ metrics.json), one per save step
    RUN_DIR/val_loss.json        {"points": [{"step", "val_loss"}, ...]}  (step 0 = the base)
    RUN_DIR/train_stats.json     {"model_dir", "batch_size", "mean_seq_len", "steps", "train_loss"}
    RUN_DIR/regimes.json         Adaptive / Stable / Mild / Severe label per saved step (PAPER 1.4)
    RUN_DIR/manifest.json        last

Run by hand::

    python -m plasticity sft --config CFG.json --base results/tiny/base --train TRAIN.parquet \\
        --val VAL.parquet --out results/tiny/sft/uniform [--threads 1]

``CFG.json`` = {"seed", "model_name", "model", "sft": {batch_size, lr, scheduler, warmup_steps,
weight_decay, max_length, data, steps, save_steps, [deepspeed], [bf16], [logging_steps]},
"regimes": {delta, delta2}}. Training is trl ``SFTTrainer`` with completion-only loss on the
chat-formatted pair (trl appends EOS). The same module runs under ``accelerate launch`` on a
cluster; ``sft.deepspeed`` may name a DeepSpeed config file.

Restartable: the run is built in ``.RUN_DIR.partial`` beside RUN_DIR (checkpoints, and the trainer's
full state for the latest save step in ``.resume``) and renamed onto RUN_DIR when complete. A killed
run resumes from that sibling, which survives Snakemake clearing the unfinished output.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from plasticity.io import MANIFEST, read_json, write_json, write_manifest

log = logging.getLogger(__name__)

RESUME_DIR = ".resume"


# ----------------------------------------------------------------------------- shared trainer

def build_sft_trainer(model: Any, tokenizer: Any, train_pairs: dict[str, list[str]], output_dir: str | Path, *,
                      steps: int, batch_size: int, lr: float, seed: int, scheduler: str = "cosine",
                      warmup_steps: int = 0, weight_decay: float = 0.0, max_length: int | None = None,
                      logging_steps: int = 10, save_steps: list[int] | None = None,
                      callbacks: list[Any] | None = None, extra: dict[str, Any] | None = None) -> Any:
    """A trl ``SFTTrainer`` on (prompt, completion) pairs with completion-only loss, fp32, no reporting.

    Used by both the base pretraining and SFT. When ``save_steps`` is given the trainer keeps its
    resume state for the latest of those steps only (the exact steps are triggered by a callback).
    """
    from trl import SFTConfig, SFTTrainer

    from plasticity.train import device_kwargs
    from plasticity.train.data import to_dataset

    extra = dict(extra or {})
    config = SFTConfig(
        output_dir=str(output_dir),
        max_steps=int(steps),
        per_device_train_batch_size=int(batch_size),
        gradient_accumulation_steps=1,
        learning_rate=float(lr),
        lr_scheduler_type=scheduler,
        warmup_steps=int(warmup_steps),
        weight_decay=float(weight_decay),
        max_length=max_length,
        completion_only_loss=True,
        packing=False,
        logging_steps=int(logging_steps),
        save_strategy="steps" if save_steps else "no",
        save_steps=max(save_steps) + 1 if save_steps else 500,  # the export callback triggers saves
        save_total_limit=1,
        save_only_model=False,
        report_to="none",
        seed=int(seed),
        data_seed=int(seed),
        dataloader_num_workers=0,
        disable_tqdm=False,
        dataset_num_proc=None,
        deepspeed=extra.pop("deepspeed", None),
        **device_kwargs(extra),
    )
    return SFTTrainer(model=model, args=config, train_dataset=to_dataset(train_pairs),
                      processing_class=tokenizer, callbacks=callbacks or [])


def validation_loss(model: Any, tokenizer: Any, pairs: dict[str, list[str]], *, batch_size: int = 64,
                    max_length: int | None = None) -> float:
    """Token-mean cross-entropy on the completion tokens (+ EOS) of ``pairs`` (PAPER 1.4)."""
    import torch

    device = next(model.parameters()).device
    total, count = 0.0, 0
    rows = list(zip(pairs["prompt"], pairs["completion"]))
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, labels = [], []
            for prompt, completion in rows[start:start + batch_size]:
                p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
                full = tokenizer(prompt + completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
                if max_length:
                    full = full[:max_length]
                ids.append(full)
                labels.append([-100] * min(len(p), len(full)) + full[len(p):])
            width = max(map(len, ids))
            pad = tokenizer.pad_token_id
            input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=device)
            attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=device)
            target = torch.tensor([y + [-100] * (width - len(y)) for y in labels], device=device)
            logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)),
                                                     target[:, 1:].reshape(-1), ignore_index=-100,
                                                     reduction="sum")
            total += float(loss)
            count += int((target[:, 1:] != -100).sum())
    return total / max(count, 1)


# ----------------------------------------------------------------------------- the stage

def run(cfg: dict[str, Any], base: str | Path, train: str | Path, val: str | Path, out: str | Path,
        *, threads: int = 1) -> Path:
    """Fine-tune ``base`` on ``train``; write checkpoints, validation loss and regimes into ``out``."""
    from plasticity.models import load_model_and_tokenizer, set_threads
    from plasticity.train import seed_everything
    from plasticity.train.callbacks import checkpoint_dir, export_checkpoints_callback
    from plasticity.train.data import trajectory_pairs

    sft, seed = cfg["sft"], int(cfg["seed"])
    steps = int(sft["steps"])
    save_steps = sorted({int(s) for s in sft["save_steps"]})
    if not save_steps or save_steps[0] < 1 or save_steps[-1] > steps:
        raise ValueError(f"sft.save_steps must lie in [1, steps={steps}], got {sft['save_steps']}")
    set_threads(threads)
    seed_everything(seed)
    final = Path(out)
    out = final.with_name(f".{final.name}.partial")
    resume_from = _prepare_run_dir(out, cfg)

    model, tokenizer = load_model_and_tokenizer(base, trust_remote_code=bool(cfg["model"].get("trust_remote_code")))
    train_pairs = trajectory_pairs(tokenizer, train)
    val_pairs = trajectory_pairs(tokenizer, val)
    max_length = sft.get("max_length")

    def measure(m: Any) -> dict[str, float]:
        return {"val_loss": validation_loss(m, tokenizer, val_pairs, max_length=max_length)}

    base_point = out / "val_loss_step0.json"
    if not base_point.is_file():
        write_json(base_point, {"step": 0, **measure(model)})

    extra = {k: sft[k] for k in ("deepspeed", "bf16") if k in sft}
    trainer = build_sft_trainer(
        model, tokenizer, train_pairs, out / RESUME_DIR, steps=steps, batch_size=sft["batch_size"],
        lr=sft["lr"], seed=seed, scheduler=sft.get("scheduler", "cosine"),
        warmup_steps=sft.get("warmup_steps", 0), weight_decay=sft.get("weight_decay", 0.0),
        max_length=max_length, logging_steps=sft.get("logging_steps", 10), save_steps=save_steps,
        callbacks=[export_checkpoints_callback(out, save_steps, tokenizer, measure)], extra=extra)
    trainer.train(resume_from_checkpoint=resume_from)

    # Collect the per-checkpoint metrics (some may come from a run that was resumed).
    points = [read_json(base_point)]
    for step in save_steps:
        metrics_file = checkpoint_dir(out, step) / "metrics.json"
        if not metrics_file.is_file():
            raise RuntimeError(f"{checkpoint_dir(out, step)} is missing after training")
        points.append({"step": step, "val_loss": float(read_json(metrics_file)["val_loss"])})
    write_json(out / "val_loss.json", {"points": points})

    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    write_json(out / "train_stats.json", {
        "model_dir": str(base),
        "batch_size": int(sft["batch_size"]),
        # mean prompt + response (+ EOS) tokens as trained, after max_length truncation
        "mean_seq_len": sum(lengths) / len(lengths),
        "steps": save_steps,
        "train_loss": [{"step": int(e["step"]), "loss": float(e["loss"])}
                       for e in trainer.state.log_history if "loss" in e],
    })
    write_regimes(out, points, cfg["regimes"])

    shutil.rmtree(out / RESUME_DIR, ignore_errors=True)
    base_point.unlink()
    write_manifest(out, stage="sft", config=cfg, seed=seed,
                   inputs={"base": base, "train": train, "val": val})
    if final.exists():
        shutil.rmtree(final)
    os.replace(out, final)
    return final


def write_regimes(out: Path, points: list[dict[str, Any]], regimes_cfg: dict[str, Any]) -> None:
    """Label each point of the validation-loss curve with its regime (PAPER 1.4; step 0 is the base)."""
    from plasticity.analysis.regimes import label_regimes

    steps = [int(p["step"]) for p in points]
    losses = [float(p["val_loss"]) for p in points]
    delta, delta2 = float(regimes_cfg["delta"]), float(regimes_cfg["delta2"])
    labels = label_regimes(steps, losses, delta, delta2)
    write_json(out / "regimes.json", {
        "delta": delta, "delta2": delta2,
        "points": [{"step": s, "val_loss": v, "regime": r} for s, v, r in zip(steps, losses, labels)],
    })


def _prepare_run_dir(out: Path, cfg: dict[str, Any]) -> str | None:
    """Return the trainer checkpoint to resume from, or None; wipe a run dir left by another config."""
    if (out / MANIFEST).is_file():
        (out / MANIFEST).unlink()  # rerunning a finished run: it is unfinished until rewritten
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
    stamp = out / RESUME_DIR / "config.sha256"
    if out.exists() and not (stamp.is_file() and stamp.read_text().strip() == digest):
        shutil.rmtree(out)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    states = sorted((p for p in (out / RESUME_DIR).glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                    key=lambda p: int(p.name.split("-")[-1]))
    if states:
        log.info("resuming from %s", states[-1])
        return str(states[-1])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity sft", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON: {seed, model_name, model, sft, regimes}")
    parser.add_argument("--base", required=True, help="base model directory (safetensors + tokenizer)")
    parser.add_argument("--train", required=True, help="training trajectories (parquet, schema.TRAJECTORY)")
    parser.add_argument("--val", required=True, help="validation trajectories (parquet, schema.TRAJECTORY)")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(read_json(args.config), args.base, args.train, args.val, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
