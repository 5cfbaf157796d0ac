"""Stage ``rl``: one RL branch from an SFT checkpoint or the base model.

Reads the SFT run directory (or the base model when ``rl.sft_data`` is ``none``), the RL prompt
table (schema.RL_PROMPT) and the benchmark directory; writes the branch directory::

    BRANCH_DIR/curve.csv         rl_step, x_ef, benchmark (role), accuracy, stderr (percent);
                                 "overall" = micro-average over problems
    BRANCH_DIR/branch.json       {"sft_data", "switch", "resolved_step", "method", "start_dir"}
    BRANCH_DIR/train_log.jsonl   one line per RL step: generation rounds, kept, masked and discarded
                                 groups, prompts trained on, lengths (generated and trained rows), reward,
                                 clip ratios, entropy, loss, lr, grading_errors (completions whose grading
                                 raised, graded 0; train.rewards), cumulative x_ef (EF)
    BRANCH_DIR/eval.json         the full evaluation summary at every evaluated step
    BRANCH_DIR/model/            final weights (safetensors) + tokenizer
    BRANCH_DIR/manifest.json     last

Run by hand (one process; on several, after ``torchrun --nproc_per_node N`` or via
``python -m plasticity.launch``)::

    python -m plasticity rl --config CFG.json --start-from results/tiny/sft/uniform \\
        --prompts RL.parquet --benchmarks results/benchmarks --out BRANCH_DIR [--threads 1] \\
        [--experts MIX.parquet]   # synchronized methods (train.sync_trainer): the MIX set of the prompts

``CFG.json`` is the ``rl`` section (``plasticity.config.RlSection``). The switch (a step,
``min_val_loss`` or a regime name) is resolved over the run's ``val_loss.json``. The method's loss
recipe comes from ``plasticity.methods``, the trainer's arguments from
``train.trainer_config.grpo_config``, each step's groups from ``train.rollouts`` (DAPO's dynamic
sampling with refill), the binary reward from ``plasticity.grading`` in the mode ``rl.reward`` names
(``train.rewards``; recorded under ``reward`` in manifest.json).

Resumable: the branch is built in ``.BRANCH_DIR.partial``; every ``save_every`` RL steps, and when
the job receives SIGTERM (the scheduler's warning before its time limit), the trainer saves its
full state (weights, optimizer, scheduler, every process's RNG) together with the branch's own
(prompt-stream position, generation records, the curve and logs so far), then a SIGTERM'd job exits
with status 143 for the scheduler to requeue or Snakemake to retry. A rerun resumes from the latest
complete checkpoint; on CPU the finished branch is byte-identical to an uninterrupted one.

Several processes: every rank trains; the in-loop evaluation splits its problems over the ranks
(sharded models generate in lockstep), gathers the completions, and the main process grades and
writes. The main process alone writes files.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from plasticity.config import RlSection, load_section
from plasticity.io import MANIFEST, read_json, write_json, write_manifest
from plasticity.train.preemption import SIGTERM_EXIT, Preemption, stop_callback
from plasticity.train.rewards import GRADING_ERROR_METRIC

log = logging.getLogger(__name__)

CURVE_COLUMNS = ("rl_step", "x_ef", "benchmark", "accuracy", "stderr")
TRAINER_DIR = ".trainer"
BRANCH_STATE = "branch_state.json"


# ----------------------------------------------------------------------------- branch start

def resolve_start(start: str | Path, rl: Any, regimes: Any) -> tuple[Path, int]:
    """(model directory, resolved SFT step) the branch starts from."""
    from plasticity.analysis.regimes import read_val_loss, resolve_switch
    from plasticity.train.sft import checkpoint_dir

    start = Path(start)
    if rl.sft_data == "none":
        if str(rl.switch) != "0":
            raise ValueError(f"rl.switch must be 0 for a branch from the base (sft_data none), got {rl.switch!r}")
        return start, 0
    steps, losses = read_val_loss(start / "val_loss.json")
    step = resolve_switch(rl.switch, steps, losses, regimes.delta, regimes.delta2)
    if step == 0:  # switch 0 on an SFT run: the run's base model
        return Path(read_json(start / "train_stats.json")["model_dir"]), 0
    return checkpoint_dir(start, step), step


# ----------------------------------------------------------------------------- compute and logs

def cumulative_ef(model_config: dict[str, Any], method: str, records: list[dict[str, Any]]) -> list[float]:
    """Cumulative RL compute (EF) after each RL step, by the method's formula (PAPER 2.6)."""
    from plasticity.analysis.flops import ModelConstants, rl_compute_ef

    return rl_compute_ef(ModelConstants.from_hf_config(model_config), method, records)


_LOG_KEYS = {
    "reward": "reward", "reward_std": "reward_std", "frac_reward_zero_std": "frac_reward_zero_std",
    "completions/mean_length": "completion_length", "completions/clipped_ratio": "completion_clipped_ratio",
    "clip_ratio/low_mean": "clip_low", "clip_ratio/high_mean": "clip_high", "clip_ratio/region_mean": "clip_region",
    "entropy": "entropy", "loss": "loss", "learning_rate": "lr", "grad_norm": "grad_norm",
    "sft_loss": "sft_loss",   # synchronized methods with an SFT term (SRFT, UPT, CHORD)
    GRADING_ERROR_METRIC: GRADING_ERROR_METRIC,
}


def curve_rows(step: int, x_ef: float, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of curve.csv for one evaluation: one per benchmark role plus ``overall`` (micro), in percent."""
    rows = [{"rl_step": step, "x_ef": x_ef, "benchmark": bench.get("role") or name,
             "accuracy": float(bench["accuracy"]), "stderr": float(bench["stderr"])}
            for name, bench in sorted(summary["benchmarks"].items())]
    rows.append({"rl_step": step, "x_ef": x_ef, "benchmark": "overall", "accuracy": float(summary["micro"]),
                 "stderr": float(summary["micro_stderr"])})
    return rows


def write_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CURVE_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "x_ef": repr(float(row["x_ef"])), "accuracy": f"{row['accuracy']:.4f}",
                             "stderr": f"{row['stderr']:.4f}"})


# ----------------------------------------------------------------------------- in-loop evaluation

def evaluate_model(model: Any, tokenizer: Any, suites: dict[str, Any], eval_cfg: dict[str, Any], seed: int,
                   grader: Any, state: Any, engine: Any = None) -> dict[str, Any] | None:
    """avg@k per benchmark with standard errors, micro-average over problems; the main process's result.

    The accuracies come from :func:`problem_accuracies` (same arguments); returns None on the processes
    other than the main one.
    """
    from plasticity.eval.metrics import standard_error, summarize

    per_bench = problem_accuracies(model, tokenizer, suites, eval_cfg, seed, grader, state, engine)
    if per_bench is None:
        return None
    summary = summarize(per_bench)
    for name, bench in per_bench.items():
        summary["benchmarks"][name]["stderr"] = standard_error(bench["per_problem"])
    summary["micro_stderr"] = standard_error([a for b in per_bench.values() for a in b["per_problem"]])
    return summary


def problem_accuracies(model: Any, tokenizer: Any, suites: dict[str, Any], eval_cfg: dict[str, Any], seed: int,
                       grader: Any, state: Any, engine: Any = None) -> dict[str, dict] | None:
    """Per benchmark: role, avg@k accuracy (percent), problem count and each problem's accuracy in order.

    The problems of each suite are split over the processes in equal-sized shards; every process
    generates its shard, with ``engine`` (the trainer's colocated vLLM engine, weights synced) when
    given, else with transformers (in lockstep with the others where the model is sharded); the
    completions are gathered, the main process grades them. The same seed gives the same samples on
    one process. Returns None on the other processes.
    """
    import torch
    from accelerate.utils import gather_object

    from plasticity.eval.generate import SamplingConfig, generate_transformers, generate_vllm, sampling_for
    from plasticity.eval.metrics import per_problem_accuracy
    from plasticity.eval.registry import references

    world, rank = state.num_processes, state.process_index
    synced = world > 1
    rng_state = torch.get_rng_state()   # evaluation seeds its own sampling; the trainer's stream continues
    training = model is not None and model.training   # generation switches to eval mode; trl reads the mode
    per_bench: dict[str, dict] = {}
    for name, table in suites.items():
        sampling = sampling_for(eval_cfg, name, seed)
        prompts = table.column("prompt").to_pylist()
        answers = references(table)   # sets, units and tolerances, as the grade stage grades them
        shard = list(range(rank, len(prompts), world))
        width = -(-len(prompts) // world)
        padded = shard + shard[:1] * (width - len(shard))   # equal shards: lockstep forwards
        one = SamplingConfig(**{**sampling.__dict__, "seed": sampling.seed + rank})
        if engine is not None:
            completions = generate_vllm(None, [prompts[i] for i in shard], one, llm=engine)
        else:
            completions = generate_transformers(model, tokenizer, [prompts[i] for i in padded], one,
                                                int(eval_cfg["batch_size"]), synced_gpus=synced)
        gathered = gather_object([(i, [c.text for c in samples]) for i, samples in zip(shard, completions)])
        if not state.is_main_process:
            continue
        texts = dict(gathered)
        flat = [t for i in range(len(prompts)) for t in texts[i]]
        refs = [answers[i] for i in range(len(prompts)) for _ in texts[i]]
        verdicts, pos, correct = grader.grade_many(flat, refs), 0, []
        for i in range(len(prompts)):
            correct.append([v.correct for v in verdicts[pos:pos + len(texts[i])]])
            pos += len(texts[i])
        acc = per_problem_accuracy(correct)
        per_bench[name] = {"role": table.column("role")[0].as_py() if table.num_rows else None,
                           "accuracy": 100.0 * sum(acc) / len(acc), "n_problems": table.num_rows,
                           "per_problem": acc}
    torch.set_rng_state(rng_state)
    if training:
        model.train()
    return per_bench if state.is_main_process else None


# ----------------------------------------------------------------------------- resume

def _prepare_branch_dir(out: Path, cfg: RlSection) -> None:
    """Keep a partial branch of the same config (to resume it); wipe one left by another config."""
    if (out / MANIFEST).is_file():
        (out / MANIFEST).unlink()
    digest = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    stamp = out / TRAINER_DIR / "config.sha256"
    if out.exists() and not (stamp.is_file() and stamp.read_text().strip() == digest):
        shutil.rmtree(out)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")


def latest_checkpoint(trainer_dir: Path) -> Path | None:
    """The newest trainer checkpoint that also holds the branch's own state (written after the trainer's)."""
    done = [p for p in trainer_dir.glob("checkpoint-*") if (p / BRANCH_STATE).is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1])) if done else None


def branch_callback(evaluate: Any, every_updates: int, total_updates: int, updates_per_step: int,
                    log_rows: dict[str, dict[str, float]]) -> Any:
    """Evaluate before the first step, every ``every_updates`` optimizer steps and at the end; collect
    the trainer's logs into ``log_rows`` (per optimizer step)."""
    from transformers import TrainerCallback

    class BranchCallback(TrainerCallback):
        def on_log(self, args, state_, control, logs=None, **kwargs):
            row = log_rows.setdefault(str(state_.global_step), {})
            row.update({name: float(logs[k]) for k, name in _LOG_KEYS.items() if k in (logs or {})})
            return control

        def on_train_begin(self, args, state_, control, model=None, **kwargs):
            if state_.global_step == 0:
                evaluate(model, 0)
            return control

        def on_step_end(self, args, state_, control, model=None, **kwargs):
            step = state_.global_step
            if step % every_updates == 0 or step == total_updates:
                evaluate(model, step // updates_per_step)
            return control

    return BranchCallback()


# ----------------------------------------------------------------------------- the stage

def run(cfg: RlSection, start: str | Path, prompts: str | Path, benchmarks: str | Path, out: str | Path,
        *, threads: int = 1, experts: str | Path | None = None) -> Path:
    """Train one RL branch and write its curve, logs and final model into ``out``."""
    from plasticity.eval.registry import load_suites
    from plasticity.features import require
    from plasticity.grading import Grader
    from plasticity.methods import get_method
    from plasticity.models import attn_implementation, load_model_and_tokenizer, save_tokenizer, set_threads
    from plasticity.train import seed_everything
    from plasticity.train import tracking
    from plasticity.train.data import rl_rows, to_dataset
    from plasticity.train.rewards import make_reward_fn, step_grading_errors
    from plasticity.train.rollouts import PromptStream, branch_trainer_class
    from plasticity.train.trainer_config import (CpuResume, check_strategy, cuda_available, grpo_config, model_dtype,
                                                  process_state, resolved_precision)

    rl, seed = cfg.rl, cfg.seed
    require(rl, "rl")   # a package the settings turn on (vllm, deepspeed, a tracker) fails here, not mid-run
    method = get_method(rl.method)
    cuda = cuda_available()
    state = process_state(cuda)
    rl.batch_layout(state.num_processes)   # an indivisible batch fails before anything loads
    set_threads(max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    start_dir, resolved = resolve_start(start, rl, cfg.regimes)
    log.info("branch %s@%s (%s) starts from %s", rl.sft_data, rl.switch, method.name, start_dir)
    final = Path(out)
    out = final.with_name(f".{final.name}.partial")
    if state.is_main_process:
        _prepare_branch_dir(out, cfg)
    state.wait_for_everyone()
    resume = latest_checkpoint(out / TRAINER_DIR)
    if resume:
        log.info("resuming from %s", resume)
    saved = read_json(resume / BRANCH_STATE) if resume else {}
    seed_everything(seed)

    model, tokenizer = load_model_and_tokenizer(start_dir, trust_remote_code=cfg.model.trust_remote_code,
                                                dtype=model_dtype(rl.precision, cuda),
                                                attn_implementation=attn_implementation(cuda))
    rows = rl_rows(prompts)
    stream = PromptStream(len(rows), seed, position=saved.get("stream_position", 0))
    eval_cfg = cfg.eval.model_dump()
    if rl.eval_samples is not None:
        eval_cfg["samples"] = dict(rl.eval_samples)
    suites = load_suites(benchmarks, cfg.eval.benchmarks)
    curve: list[dict[str, Any]] = saved.get("curve", [])
    summaries: list[dict[str, Any]] = saved.get("evaluations", [])
    log_rows: dict[str, dict[str, float]] = saved.get("logs", {})
    updates = rl.updates_per_step
    preemption = Preemption()

    # PAPER 2.5: the reward and the evaluator read a completion's answer in different orders, and the
    # reward has its own fallbacks (rl.reward); the evaluation grades as the grade stage does
    grading = dict(workers=1, timeout_s=cfg.eval.grader.timeout_s)
    with Grader(cfg.eval.grader.mode, **grading, order="eval") as grader, \
            Grader(rl.reward, **grading, order="reward") as reward_grader:
        running: dict[str, Any] = {}

        def engine() -> Any:
            """The trainer's colocated vLLM engine with the current weights, when evaluation uses vLLM."""
            trainer = running["trainer"]
            if cfg.eval.backend != "vllm":
                return None
            if trainer.state.global_step != trainer._last_loaded_step:
                trainer.vllm_generation.sync_weights()
                trainer._last_loaded_step = trainer.state.global_step
            return trainer.vllm_generation.llm

        def evaluate(m: Any, step: int) -> None:
            summary = evaluate_model(m, tokenizer, suites, eval_cfg, seed, grader, state, engine=engine())
            if summary is None:
                return
            records = running["trainer"].generation_records if "trainer" in running else []
            x_ef = cumulative_ef(m.config.to_dict(), method.name, records[:step])[-1] if step else 0.0
            curve.extend(curve_rows(step, x_ef, summary))
            summaries.append({"rl_step": step, "x_ef": x_ef, **summary})
            log.info("rl step %d: x_ef %.3g, micro %.2f%% (se %.2f)", step, x_ef, summary["micro"],
                     summary["micro_stderr"])

        rid = tracking.run_id(cfg.model_dump(mode="json"), final)
        args = grpo_config(rl, output_dir=out / TRAINER_DIR, seed=seed, world_size=state.num_processes, cuda=cuda,
                           tracking=tracking.trainer_kwargs(rl.report_to, rid, out))
        args.save_strategy, args.save_steps, args.save_total_limit = "steps", rl.save_every * updates, 2
        trainer_cls, sync_kwargs, sync_info = branch_trainer_class(), {}, {}
        if method.sync is not None:   # expert trajectories of the MIX set mixed into the groups
            from plasticity.train.sync_trainer import sync_setup
            trainer_cls, sync_kwargs, sync_info = sync_setup(rows, experts, prompts, tokenizer, rl, method)

        class Trainer(CpuResume, trainer_cls):  # the branch's own state goes into every trainer checkpoint
            def _save_checkpoint(self, model, trial):
                super()._save_checkpoint(model, trial)
                if self.args.should_save:
                    ckpt = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
                    write_json(ckpt / BRANCH_STATE, {
                        "stream_position": self.stream.position, "records": self.generation_records,
                        "curve": curve, "evaluations": summaries, "logs": log_rows})

        trainer = Trainer(
            model=model, reward_funcs=[make_reward_fn(reward_grader)], args=args,
            train_dataset=to_dataset({"prompt": [r["prompt"] for r in rows],
                                      "reference_answer": [r["reference_answer"] for r in rows]}),
            processing_class=tokenizer, rows=rows, stream=stream, prompts_per_step=rl.prompts_per_step,
            gen_prompts_per_round=rl.gen_prompts_per_round or rl.prompts_per_step,
            max_gen_rounds=rl.max_gen_rounds, dynamic_sampling=method.dynamic_sampling,
            vllm_max_num_seqs=rl.vllm_max_num_seqs if rl.use_vllm else None,
            callbacks=[branch_callback(evaluate, rl.eval_every * updates, rl.steps * updates, updates, log_rows),
                       stop_callback(preemption, state, boundary=updates)],   # SIGTERM: save at the RL-step boundary
            **sync_kwargs)
        trainer.generation_records = list(saved.get("records", []))
        running["trainer"] = trainer
        check_strategy(rl.launch.strategy, trainer.accelerator)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        if preemption.received:
            log.warning("stopped on SIGTERM at RL step %d; rerun to resume", len(trainer.generation_records))
            raise SystemExit(SIGTERM_EXIT)

        model_tmp = out / "model.tmp"
        if state.is_main_process:
            shutil.rmtree(model_tmp, ignore_errors=True)
        state.wait_for_everyone()
        trainer.save_model(str(model_tmp))
        if not state.is_main_process:
            state.wait_for_everyone()
            return final
        (model_tmp / "training_args.bin").unlink(missing_ok=True)   # a pickle: nothing here loads one
        save_tokenizer(tokenizer, model_tmp)
        shutil.rmtree(out / "model", ignore_errors=True)
        os.replace(model_tmp, out / "model")
        records = trainer.generation_records
        x_ef = cumulative_ef(model.config.to_dict(), method.name, records)
        with open(out / "train_log.jsonl", "w", encoding="utf-8") as fh:
            for step, rec in enumerate(records, 1):
                row = {"step": step, **log_rows.get(str(step * updates), {}), **rec,
                       "kept_groups": rec["train_prompts"], "x_ef": x_ef[step - 1],
                       "grading_errors": step_grading_errors(log_rows, step, updates, rec)}
                fh.write(json.dumps(row, sort_keys=True) + "\n")
        write_curve(out / "curve.csv", curve)
        write_json(out / "eval.json", {"evaluations": summaries})
        write_json(out / "branch.json", {"sft_data": rl.sft_data, "switch": rl.switch, "resolved_step": resolved,
                                         "method": method.name, "start_dir": str(start_dir)})
        shutil.rmtree(out / TRAINER_DIR, ignore_errors=True)
        write_manifest(out, stage="rl", config=cfg.model_dump(mode="json"), seed=seed,
                       inputs={"start": start_dir, "prompts": prompts, "benchmarks": benchmarks,
                               **({"experts": experts} if experts else {})},
                       extra={**sync_info, **tracking.manifest_entry(rl.report_to, rid),
                              "precision": resolved_precision(rl.precision, cuda),
                              "reward": reward_grader.fingerprint(),
                              "world_size": state.num_processes,
                              "vllm_importance_sampling_correction": bool(
                                  rl.use_vllm and rl.vllm_importance_sampling_correction)})
        if final.exists():
            shutil.rmtree(final)
        os.replace(out, final)
    state.wait_for_everyone()
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity rl", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON: the rl section (plasticity.config.RlSection)")
    # not `--start`: torchrun's parser reads it as an abbreviation of its own `--start-method`
    parser.add_argument("--start-from", dest="start", required=True,
                        help="SFT run directory, or the base model when sft_data is none")
    parser.add_argument("--prompts", required=True, help="RL prompts (parquet, schema.RL_PROMPT)")
    parser.add_argument("--benchmarks", required=True, help="benchmark directory (eval.registry)")
    parser.add_argument("--experts", help="synchronized methods: the MIX set (parquet, schema.MIX) of the prompts")
    parser.add_argument("--out", required=True, help="branch directory")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of this node's processes (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    run(load_section(args.config, RlSection), args.start, args.prompts, args.benchmarks, args.out,
        threads=args.threads, experts=args.experts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
