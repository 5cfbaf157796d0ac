"""The phase table: the one list of the study's phases, shared by the Snakemake targets and dvc.yaml.

Each phase names its Snakemake target rule, the config sections it depends on (DVC params), the code
it runs (DVC deps) and the output directories it owns (DVC outs, relative to ``results_dir`` or
``reports_dir``). ``python -m plasticity dvc-yaml`` renders dvc.yaml from it; a test keeps the
committed file in sync.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str
    target: str                       # Snakemake target rule
    params: tuple[str, ...]           # config.yaml keys (DVC params)
    code: tuple[str, ...]             # source paths (DVC deps)
    outs: tuple[str, ...]             # `{results}` / `{reports}` / `{model}` placeholders
    after: tuple[str, ...] = ()       # phases whose outputs this one reads
    metrics: tuple[str, ...] = ()


PHASES: tuple[Phase, ...] = (
    Phase("data", "data", ("seed", "data", "eval.benchmarks", "models"),
          ("src/plasticity/data", "src/plasticity/eval/registry.py", "src/plasticity/eval/loaders.py",
           "src/plasticity/grading.py", "src/plasticity/problems.py", "src/plasticity/models.py",
           "rules/data.smk"),
          ("{results}/benchmarks", "{results}/data", "{results}/{model}/tokenizer")),
    Phase("models", "models", ("seed", "models"),
          ("src/plasticity/models.py", "src/plasticity/train/pretrain.py", "rules/sft.smk"),
          ("{results}/{model}/base",), after=("data",)),
    Phase("sft", "sft_all", ("seed", "sft"),
          ("src/plasticity/train", "rules/sft.smk"),
          ("{results}/{model}/sft",), after=("data", "models")),
    Phase("eval", "eval_all", ("seed", "eval"),
          ("src/plasticity/eval", "src/plasticity/grading.py", "rules/eval.smk"),
          ("{results}/{model}/eval",), after=("data", "models", "sft")),   # data: the benchmark suite
    Phase("rl", "rl_all", ("seed", "rl", "eval"),
          ("src/plasticity/train", "src/plasticity/eval", "src/plasticity/grading.py", "rules/rl.smk"),
          ("{results}/{model}/rl",), after=("data", "sft")),               # data: RL prompts, benchmarks
    Phase("report", "report", ("report", "sft.regimes"),
          ("src/plasticity/analysis", "rules/report.smk"),
          ("{results}/report", "{reports}/tables", "{reports}/figures"),
          after=("eval", "rl"), metrics=("{reports}/metrics.json",)),
)
