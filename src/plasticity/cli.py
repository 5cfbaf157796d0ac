"""``python -m plasticity <stage> ...``: the one entry point per stage.

Each stage lives in its own module exposing ``main(argv) -> int``; this table only routes to it,
importing the stage lazily so ``--help`` of one stage never pays for another's imports.
Run ``python -m plasticity <stage> --help`` for a stage's arguments.

``python -m plasticity --lock-wait SECONDS <stage> ...`` makes the stage wait up to SECONDS (``inf``:
no limit) for another run holding the lock on its output, instead of failing at once (locks.py).

Before any stage module is imported, ``cpu_kernels.pin`` fixes the CPU kernel paths of torch, MKL,
oneDNN, numpy and OpenBLAS (they read them once, at import or first use), so every stage of the
miniature gives the same bytes on any x86-64 machine; ``PLASTICITY_CPU_KERNELS=native`` opts out.
"""
from __future__ import annotations

import importlib
import os
import sys

from plasticity.locks import WAIT_ENV

# stage name -> (module, one-line description)
STAGES: dict[str, tuple[str, str]] = {
    # data phase
    "teacher": ("plasticity.data.teacher", "simulated R1 teacher: write AM-40M / Skywork-OR1 schema shards"),
    "ingest": ("plasticity.data.ingest", "map native-schema sources to canonical trajectory / RL tables"),
    "filter": ("plasticity.data.filters", "domain, teacher, dedup, correctness, format, length, RL set difference"),
    "decontaminate": ("plasticity.data.decontaminate", "remove training rows overlapping the benchmarks"),
    "difficulty": ("plasticity.data.difficulty", "per-prompt win rates from metadata or sampling"),
    "subsets": ("plasticity.data.subsets", "build the named SFT / validation / RL / MIX sets"),
    # models and training
    "download": ("plasticity.download", "fetch a pinned hub snapshot (run on the submit host)"),
    "tokenizer": ("plasticity.models", "build or fetch a model's tokenizer"),
    "base": ("plasticity.train.pretrain", "build the base model (tiny: short pretraining; hub: pinned fetch)"),
    "tokenize": ("plasticity.train.tokens", "tokenize an SFT set once into memory-mapped Arrow shards"),
    "sft": ("plasticity.train.sft", "SFT with checkpoints, validation loss, regimes"),
    "rl": ("plasticity.train.rl", "RL branch (GRPO / DAPO) from an SFT checkpoint or the base"),
    # evaluation
    "benchmarks": ("plasticity.eval.registry", "materialise registry benchmarks as pinned parquet files"),
    "generate": ("plasticity.eval.generate", "sample completions for every benchmark"),
    "grade": ("plasticity.eval.score", "grade completions, write samples.parquet and scores.json"),
    # analysis and report
    "flops": ("plasticity.analysis.flops", "FLOPs of an SFT or RL run (prints JSON)"),
    "fit": ("plasticity.analysis.fit", "robust sigmoid fit per RL branch"),
    "regimes": ("plasticity.analysis.regimes", "regimes and switch point from a validation-loss curve"),
    "curves": ("plasticity.analysis.curves", "collect result files into a curves CSV"),
    "table": ("plasticity.analysis.tables", "render one of the study's tables"),
    "figure": ("plasticity.analysis.figures", "render one of the study's figures"),
    "metrics": ("plasticity.analysis.metrics", "headline numbers of a study as reports/metrics.json"),
    "publish": ("plasticity.analysis.publish", "a finished study's report as committed files (tables, figures, data)"),
    "findings": ("plasticity.analysis.findings", "the findings' paired differences across seeds, graded"),
    "seeds": ("plasticity.seeds", "repeat a study with other training seeds, publish each, grade the findings"),
    "dvc-yaml": ("plasticity.dvc_yaml", "write dvc.yaml from the phase table"),
    "plan": ("plasticity.plan", "every training job's effective settings, compute, GPU-hours and storage"),
    "cpu-kernels": ("plasticity.cpu_kernels", "the CPU kernel paths a stage runs with (pinned unless native)"),
}


def _usage() -> str:
    width = max(map(len, STAGES))
    lines = ["usage: python -m plasticity [--lock-wait SECONDS] <stage> [args...]", "",
             "  --lock-wait SECONDS  wait for another run writing the same output (default: fail at once)",
             "", "stages:"]
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in STAGES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] == "--lock-wait":
        if len(argv) < 3:
            print(_usage(), file=sys.stderr)
            return 2
        try:
            float(argv[1])
        except ValueError:
            print(f"--lock-wait {argv[1]!r}: expected seconds (a number, or inf)", file=sys.stderr)
            return 2
        os.environ[WAIT_ENV] = argv[1]            # seen by every output lock of this stage
        argv = argv[2:]
    name, rest = argv[0], argv[1:]
    if name not in STAGES:
        print(f"unknown stage {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from plasticity.cpu_kernels import CpuKernelError, pin

    try:
        pin()
    except CpuKernelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
