"""The phase table: the study's phases as DVC stages, each one a Snakemake target.

Each phase names its Snakemake target rule and the config sections it depends on (DVC params).
Everything else a DVC stage lists comes from the Snakemake DAG (``plasticity.dvc_yaml``): a job
belongs to the first phase whose target needs it, the stage's outs are its jobs' outputs, its deps
its jobs' code inputs (``plasticity.codedeps``), rule files and the outs of other phases they read.

What DVC versions of an SFT run (``sft_run_outs``): at the study's scale each run writes tens of
multi-GB checkpoints, and hashing all of them makes every ``dvc repro`` / ``dvc status`` slow and
every ``dvc push`` huge. DVC tracks the run's small files, the whole directory (weights, tokenizer,
config) of each checkpoint an RL branch starts from, and of every other checkpoint only the files a
later stage reads (``config.json`` for the FLOPs, ``metrics.json``). Optimizer state never reaches
the run directory (it lives in the run's ``.resume`` while training). A branch whose switch is a
rule (``min_val_loss``, a regime) may start from any save step, so its run's checkpoints are all
tracked. A clone restored by ``dvc pull`` can rerun RL and the report; re-evaluating an untracked
checkpoint needs its SFT run again.
"""
from __future__ import annotations

from dataclasses import dataclass

from plasticity.config import Config
from plasticity.train.sft import checkpoint_dir


@dataclass(frozen=True)
class Phase:
    name: str
    target: str                       # Snakemake target rule
    params: tuple[str, ...]           # config keys (DVC params; those absent from the file are left out)
    metrics: tuple[str, ...] = ()     # outputs, relative to ``reports_dir``, that are DVC metrics


# In DAG order: a job belongs to the first phase that needs it.
PHASES: tuple[Phase, ...] = (
    Phase("data", "data", ("seed", "data", "eval.benchmarks", "models")),
    Phase("models", "models", ("seed", "models")),
    Phase("sft", "sft_all", ("seed", "sft")),
    Phase("eval", "eval_all", ("seed", "eval")),
    Phase("rl", "rl_all", ("seed", "rl", "eval")),
    Phase("report", "report", ("report", "sft.regimes"), metrics=("metrics.json",)),
)

# The files of an SFT run directory (plasticity.train.sft) and of its checkpoints that DVC tracks
# beside the branch points' whole checkpoint directories.
SFT_RUN_FILES = ("val_loss.json", "train_stats.json", "regimes.json", "manifest.json")
SFT_CHECKPOINT_FILES = ("config.json", "metrics.json")


def branch_steps(cfg: Config, model: str, sft_data: str) -> set[int]:
    """Save steps of SFT run ``model``/``sft_data`` that some RL branch may start from."""
    run = cfg.sft_run(model, sft_data)
    steps: set[int] = set()
    for branch in cfg.rl.branches:
        if (branch.model, branch.sft_data) != (model, sft_data):
            continue
        if isinstance(branch.switch, int):
            steps.add(branch.switch)          # 0: the run's base model, no checkpoint
        else:
            steps.update(run.save_steps)      # a rule resolves to a step only after the run
    return steps & set(run.save_steps)


def sft_run_outs(cfg: Config, run_dir: str, model: str, sft_data: str) -> list[str]:
    """The paths under one SFT run directory that DVC tracks (see the module docstring)."""
    run = cfg.sft_run(model, sft_data)
    branched = branch_steps(cfg, model, sft_data)
    outs = [f"{run_dir}/{name}" for name in SFT_RUN_FILES]
    for step in sorted(run.save_steps):
        ckpt = checkpoint_dir(run_dir, step).as_posix()
        outs += [ckpt] if step in branched else [f"{ckpt}/{name}" for name in SFT_CHECKPOINT_FILES]
    return outs
