"""Stage ``rl``: one RL branch (DAPO or GRPO) from an SFT checkpoint or the base model.

Reads the SFT run directory (or the base model when ``rl.sft_data`` is ``none``), the RL prompt
table (schema.RL_PROMPT) and the benchmark directory; writes the branch directory::

    BRANCH_DIR/curve.csv         rl_step, x_ef, benchmark (role), accuracy (percent); "overall" = micro
    BRANCH_DIR/branch.json       {"sft_data", "switch", "resolved_step", "method", "start_dir"}
    BRANCH_DIR/train_log.jsonl   one line per step: reward, frac_reward_zero_std, lengths, clip ratios,
                                 entropy, kept groups, cumulative x_ef (EF)
    BRANCH_DIR/eval.json         the full evaluation summary at every evaluated step
    BRANCH_DIR/model/            final weights (safetensors) + tokenizer
    BRANCH_DIR/manifest.json     last

Run by hand::

    python -m plasticity rl --config CFG.json --start results/tiny/sft/uniform \\
        --prompts RL.parquet --benchmarks results/benchmarks --out BRANCH_DIR [--threads 1]

``CFG.json`` = {"seed", "model_name", "model", "rl": {method, steps, lr, warmup_steps,
prompts_per_step, num_generations, temperature, max_completion_length, epsilon, epsilon_high,
beta, num_iterations, eval_every, sft_data, switch, [use_vllm, vllm_mode, scale_rewards, bf16]},
"regimes": {delta, delta2}, "eval": <eval section>}.

The switch (a step, ``min_val_loss`` or a regime name) is resolved over the run's
``val_loss.json`` by ``plasticity.analysis.regimes.resolve_switch``.

Algorithms (PAPER 2.5), on trl's GRPOTrainer with the binary reward of ``plasticity.grading``:
  dapo  token-mean loss, clip-higher (epsilon / epsilon_high), no KL, std-normalised group
        advantages, dynamic sampling: groups with 0 or G correct are masked out of the loss.
        trl 1.16 has no group filter; this one drops the degenerate groups of each generation
        batch without drawing replacement prompts (the study refills up to 10 rounds), so the
        effective train batch varies per step and ``train_prompts`` in the log records it.
  grpo  trl's "grpo" loss (per-sequence mean), symmetric clip (epsilon), no group filter.
The synchronized methods (LUFFY, SRFT, UPT, Prefix-RFT) are rejected as not implemented yet.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from plasticity.io import atomic_path, read_json, write_json, write_manifest

log = logging.getLogger(__name__)

METHODS = ("dapo", "grpo")
SYNCHRONIZED_METHODS = ("luffy", "srft", "upt", "prefix_rft")
CURVE_COLUMNS = ("rl_step", "x_ef", "benchmark", "accuracy")


# ----------------------------------------------------------------------------- branch start

def check_method(method: str) -> str:
    name = str(method).lower().replace("-", "_")
    if name in SYNCHRONIZED_METHODS:
        raise NotImplementedError(f"RL method {method!r} (a synchronized SFT+RL method) is not implemented yet; "
                                  f"available: {', '.join(METHODS)}")
    if name not in METHODS:
        raise ValueError(f"rl.method: unknown method {method!r}; expected one of {METHODS}")
    return name


def resolve_start(start: str | Path, rl_cfg: dict[str, Any], regimes_cfg: dict[str, Any]) -> tuple[Path, int]:
    """(model directory, resolved SFT step) the branch starts from."""
    from plasticity.analysis.regimes import read_val_loss, resolve_switch

    start = Path(start)
    if str(rl_cfg.get("sft_data", "none")).lower() == "none":
        if str(rl_cfg.get("switch", 0)).strip() not in ("0", ""):
            raise ValueError("rl.switch must be 0 for a branch from the base (sft_data none), "
                             f"got {rl_cfg['switch']!r}")
        return start, 0
    steps, losses = read_val_loss(start / "val_loss.json")
    step = resolve_switch(rl_cfg["switch"], steps, losses, float(regimes_cfg["delta"]), float(regimes_cfg["delta2"]))
    if step == 0:  # switch 0 on an SFT run: the run's base model
        return Path(read_json(start / "train_stats.json")["model_dir"]), 0
    return start / f"checkpoint-{step}", step


# ----------------------------------------------------------------------------- the trainer

def branch_trainer_class() -> type:
    """GRPOTrainer plus per-generation length records and DAPO's dynamic-sampling group filter."""
    import torch
    from trl import GRPOTrainer

    from plasticity.train.rewards import group_keep_mask

    class BranchTrainer(GRPOTrainer):
        def __init__(self, *args: Any, dynamic_sampling: bool = False, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.dynamic_sampling = dynamic_sampling
            self.generation_records: list[dict[str, Any]] = []
            self._last_rewards = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._last_rewards = rewards_per_func  # gathered over processes, group-contiguous
            return rewards_per_func

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            if not self.model.training:
                return out
            group = self.num_generations
            completion_mask = out["completion_mask"]
            rewards = (self._last_rewards * self.reward_weights.to(self._last_rewards.device)).nansum(dim=1)
            n_prompts = rewards.numel() // group
            record = {
                "prompts": n_prompts, "group": group, "gen_rounds": 1, "train_prompts": n_prompts,
                "mean_prompt_tokens": float(out["prompt_mask"].sum(dim=1).float().mean()),
                "mean_completion_tokens": float(completion_mask.sum(dim=1).float().mean()),
            }
            if self.dynamic_sampling:
                keep = group_keep_mask(rewards, group)
                local = completion_mask.size(0)
                start = self.accelerator.process_index * local
                keep_local = keep[start:start + local].to(completion_mask.device, completion_mask.dtype)
                # tool_mask enters only the loss mask (not attention), so the dropped groups still run
                # through the forward pass but contribute neither gradient nor DAPO's token count.
                tool_mask = out.get("tool_mask", torch.ones_like(completion_mask))
                out["tool_mask"] = tool_mask * keep_local.unsqueeze(1)
                out["num_items_in_batch"] = self.accelerator.gather((completion_mask * out["tool_mask"]).sum()).sum()
                record["train_prompts"] = int(keep.sum()) // group
            self.generation_records.append(record)
            return out

    return BranchTrainer


def grpo_config(rl: dict[str, Any], method: str, output_dir: Path, seed: int) -> Any:
    from trl import GRPOConfig

    from plasticity.train import device_kwargs

    group, prompts = int(rl["num_generations"]), int(rl["prompts_per_step"])
    epsilon = float(rl.get("epsilon", 0.2))
    kwargs: dict[str, Any] = {}
    if rl.get("use_vllm"):
        kwargs.update(use_vllm=True, vllm_mode=rl.get("vllm_mode", "colocate"))
    return GRPOConfig(
        output_dir=str(output_dir),
        max_steps=int(rl["steps"]),
        # trl counts completions here: prompts x generations per optimizer step
        per_device_train_batch_size=prompts * group,
        gradient_accumulation_steps=1,
        num_generations=group,
        num_iterations=int(rl.get("num_iterations", 1)),
        learning_rate=float(rl["lr"]),
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=int(rl.get("warmup_steps", 0)),
        weight_decay=0.0,
        max_grad_norm=1.0,
        temperature=float(rl["temperature"]),
        top_p=1.0,
        top_k=0,
        max_completion_length=int(rl["max_completion_length"]),
        loss_type="dapo" if method == "dapo" else "grpo",
        epsilon=epsilon,
        epsilon_high=float(rl.get("epsilon_high", epsilon)) if method == "dapo" else epsilon,
        beta=float(rl.get("beta", 0.0)),
        scale_rewards=rl.get("scale_rewards", "group"),
        use_vllm=bool(rl.get("use_vllm", False)),
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
        log_completions=False,
        **{k: v for k, v in kwargs.items() if k != "use_vllm"},
        **device_kwargs(rl),
    )


# ----------------------------------------------------------------------------- compute and logs

def cumulative_ef(model_config: dict[str, Any], method: str, records: list[dict[str, Any]], steps: int,
                  steps_per_generation: int) -> list[float]:
    """Cumulative RL compute (EF) after each of ``steps`` steps (PAPER 2.6).

    A step that generated pays the rollout pass; every step pays the training pass (3x forward)
    over the prompts it trains on. With one generation per step this is exactly
    ``dapo_step_flops`` / ``grpo_step_flops`` of ``plasticity.analysis.flops``.
    """
    from plasticity.analysis.flops import EF, ModelConstants, dapo_step_flops, grpo_step_flops

    m = ModelConstants.from_hf_config(model_config)
    total, out = 0.0, []
    for step in range(1, steps + 1):
        index = (step - 1) // steps_per_generation
        if index >= len(records):
            break
        rec = records[index]
        seq = rec["mean_prompt_tokens"] + rec["mean_completion_tokens"]
        generated = (step - 1) % steps_per_generation == 0
        if method == "grpo" and generated:
            flops = grpo_step_flops(m, rec["prompts"], rec["group"], seq)
        else:
            flops = dapo_step_flops(m, rec["gen_rounds"] if generated else 0, rec["prompts"],
                                    rec["train_prompts"] if method == "dapo" else rec["prompts"], rec["group"], seq)
        total += flops
        out.append(total / EF)
    return out


_LOG_KEYS = {
    "reward": "reward", "reward_std": "reward_std", "frac_reward_zero_std": "frac_reward_zero_std",
    "completions/mean_length": "completion_length", "completions/clipped_ratio": "completion_clipped_ratio",
    "clip_ratio/low_mean": "clip_low", "clip_ratio/high_mean": "clip_high", "clip_ratio/region_mean": "clip_region",
    "entropy": "entropy", "loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm",
}


def log_collector_callback() -> Any:
    from transformers import TrainerCallback

    class LogCollector(TrainerCallback):
        def __init__(self) -> None:
            self.rows: dict[int, dict[str, float]] = {}

        def on_log(self, args, state, control, logs=None, **kwargs):
            row = self.rows.setdefault(int(state.global_step), {})
            for key, name in _LOG_KEYS.items():
                if logs and key in logs:
                    row[name] = float(logs[key])
            return control

    return LogCollector()


def curve_rows(step: int, x_ef: float, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of curve.csv for one evaluation: one per benchmark role plus ``overall`` (micro).

    ``evaluate_in_memory`` reports accuracies in percent already, as the curves are.
    """
    rows = []
    for name, bench in sorted(summary["benchmarks"].items()):
        rows.append({"rl_step": step, "x_ef": x_ef, "benchmark": bench.get("role", name),
                     "accuracy": float(bench["accuracy"])})
    rows.append({"rl_step": step, "x_ef": x_ef, "benchmark": "overall", "accuracy": float(summary["micro"])})
    return rows


def write_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "x_ef": repr(float(row["x_ef"])), "accuracy": f"{row['accuracy']:.4f}"})


# ----------------------------------------------------------------------------- the stage

def run(cfg: dict[str, Any], start: str | Path, prompts: str | Path, benchmarks: str | Path, out: str | Path,
        *, threads: int = 1) -> Path:
    """Train one RL branch and write its curve, logs and final model into ``out``."""
    method = check_method(cfg["rl"]["method"])  # before any heavy import: fail fast on unsupported methods
    import torch

    from plasticity.eval.evaluate import evaluate_in_memory
    from plasticity.eval.registry import load_suites
    from plasticity.grading import Grader
    from plasticity.models import load_model_and_tokenizer, save_model_and_tokenizer, set_threads
    from plasticity.train import seed_everything
    from plasticity.train.callbacks import periodic_eval_callback
    from plasticity.train.data import rl_prompts, to_dataset
    from plasticity.train.rewards import make_reward_fn

    rl, eval_cfg, seed = cfg["rl"], cfg["eval"], int(cfg["seed"])
    steps = int(rl["steps"])
    set_threads(threads)
    start_dir, resolved = resolve_start(start, rl, cfg["regimes"])
    log.info("branch %s@%s (%s) starts from %s", rl.get("sft_data"), rl.get("switch"), method, start_dir)
    seed_everything(seed)

    model, tokenizer = load_model_and_tokenizer(start_dir,
                                                trust_remote_code=bool(cfg["model"].get("trust_remote_code")))
    dataset = to_dataset(rl_prompts(tokenizer, prompts))
    suites = load_suites(benchmarks, eval_cfg["benchmarks"])
    grader_cfg = eval_cfg.get("grader", {})
    out = Path(out)

    with atomic_path(out) as tmp, Grader(mode=grader_cfg.get("mode", "strict"), workers=1,
                                         timeout_s=float(grader_cfg.get("timeout_s", 5.0))) as grader:
        tmp.mkdir(parents=True)
        args = grpo_config(rl, method, tmp / ".trainer", seed)
        collector = log_collector_callback()
        curve: list[dict[str, Any]] = []
        summaries: list[dict[str, Any]] = []
        running: dict[str, Any] = {}  # the trainer, once built: its generation records give x_ef

        def evaluate(m: Any, step: int) -> None:
            # Evaluation reseeds its own sampling; keep the trainer's RNG stream independent of it.
            rng_state = torch.get_rng_state()
            summary = evaluate_in_memory(m, tokenizer, suites, eval_cfg, seed, grader)
            torch.set_rng_state(rng_state)
            trainer = running.get("trainer")
            x_ef = 0.0
            if step > 0 and trainer is not None:
                x_ef = cumulative_ef(m.config.to_dict(), method, trainer.generation_records, step,
                                     args.steps_per_generation * args.num_iterations)[step - 1]
            curve.extend(curve_rows(step, x_ef, summary))
            summaries.append({"rl_step": step, "x_ef": x_ef, **summary})
            log.info("rl step %d: x_ef %.3g, micro %.2f%%", step, x_ef, summary["micro"])

        trainer = branch_trainer_class()(
            model=model, reward_funcs=[make_reward_fn(grader)], args=args, train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[collector, periodic_eval_callback(evaluate, int(rl["eval_every"]), steps)],
            dynamic_sampling=(method == "dapo"))
        running["trainer"] = trainer
        trainer.train()

        x_ef = cumulative_ef(model.config.to_dict(), method, trainer.generation_records, steps,
                             args.steps_per_generation * args.num_iterations)
        gen_every = args.steps_per_generation * args.num_iterations
        with open(tmp / "train_log.jsonl", "w", encoding="utf-8") as fh:
            for step in range(1, len(x_ef) + 1):
                rec = trainer.generation_records[(step - 1) // gen_every]
                row = {"step": step, **collector.rows.get(step, {}), **rec,
                       "kept_groups": rec["train_prompts"], "x_ef": x_ef[step - 1]}
                fh.write(json.dumps(row, sort_keys=True) + "\n")
        write_curve(tmp / "curve.csv", curve)
        write_json(tmp / "eval.json", {"evaluations": summaries})
        write_json(tmp / "branch.json", {"sft_data": rl.get("sft_data", "none"), "switch": rl.get("switch", 0),
                                         "resolved_step": resolved, "method": method, "start_dir": str(start_dir)})
        with atomic_path(tmp / "model") as model_tmp:
            model_tmp.mkdir(parents=True)
            save_model_and_tokenizer(trainer.model, tokenizer, model_tmp)
        shutil.rmtree(tmp / ".trainer", ignore_errors=True)
        write_manifest(tmp, stage="rl", config=cfg, seed=seed,
                       inputs={"start": start_dir, "prompts": prompts, "benchmarks": benchmarks})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity rl", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON: {seed, model_name, model, rl, regimes, eval}")
    parser.add_argument("--start", required=True, help="SFT run directory, or the base model when sft_data is none")
    parser.add_argument("--prompts", required=True, help="RL prompts (parquet, schema.RL_PROMPT)")
    parser.add_argument("--benchmarks", required=True, help="benchmark directory (eval.registry)")
    parser.add_argument("--out", required=True, help="branch directory")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(read_json(args.config), args.start, args.prompts, args.benchmarks, args.out, threads=args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
