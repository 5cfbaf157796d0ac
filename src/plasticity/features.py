"""Optional packages a config turns on: which key needs which module, and which extra declares it.

``requirements.txt`` is the CPU install every machine gets. Features a config may turn on need more:
Liger kernels, FlashAttention for padding-free batches on GPUs, vLLM, DeepSpeed, an experiment tracker.
Each such package is pinned by an extra of ``pyproject.toml`` (``pip install -e '.[gpu,deepspeed]'``),
and ``NEEDS`` below is the one table from a config key to the module it imports and the extra that
installs it (tests/contract/test_features.py checks the table against pyproject.toml both ways).

Checked twice, with the same table: ``python -m plasticity.config FILE`` and ``plan`` warn where a
module is not importable (a login node need not carry the GPU stack), and every stage that uses a
feature calls ``require`` before it loads a model, so a missing package fails the job in seconds
instead of at ``trainer.train()``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

# module -> the pyproject extra that pins it
EXTRAS = {
    "liger_kernel": "gpu", "flash_attn": "gpu", "vllm": "gpu", "deepspeed": "deepspeed",
    "wandb": "wandb", "tensorboard": "tensorboard", "trackio": "trackio",
}


@dataclass(frozen=True)
class Need:
    key: str                            # the config key that turns the feature on
    module: str                         # the module the feature imports
    when: Callable[[Any], bool]         # given the settings holding ``key``

    @property
    def extra(self) -> str:
        return EXTRAS[self.module]


def _gpus(s: Any) -> bool:
    return s.launch.gpus_per_node > 0


# Keys of a training job's settings (SftRunSettings / RlBranchSettings) that need a package.
TRAINING_NEEDS = (
    Need("liger", "liger_kernel", lambda s: bool(getattr(s, "liger", False))),
    # on GPUs a padding-free micro-batch needs FlashAttention's variable-length kernel; sdpa would build
    # an O(L^2) mask over the whole packed micro-batch (on CPU sdpa is what runs, and is enough there)
    Need("padding_free", "flash_attn", lambda s: bool(getattr(s, "padding_free", False)) and _gpus(s)),
    Need("use_vllm", "vllm", lambda s: bool(getattr(s, "use_vllm", False))),
    Need("launch.strategy", "deepspeed", lambda s: s.launch.strategy == "zero3"),
    *(Need("report_to", tracker, lambda s, t=tracker: s.report_to == t)
      for tracker in ("wandb", "tensorboard", "trackio")),
)
# Keys of an evaluation or sampling section with a ``backend``.
BACKEND_NEEDS = (Need("backend", "vllm", lambda s: s.backend == "vllm"),)


def importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def missing(settings: Any, where: str, needs: tuple[Need, ...] = TRAINING_NEEDS) -> list[str]:
    """One line per feature ``settings`` turns on whose module is not importable here."""
    return [f"{where}.{n.key}: needs the package {n.module!r} (pip install -e '.[{n.extra}]')"
            for n in needs if n.when(settings) and not importable(n.module)]


def require(settings: Any, where: str, needs: tuple[Need, ...] = TRAINING_NEEDS) -> None:
    """Fail before anything loads when a feature the settings turn on cannot be imported."""
    problems = missing(settings, where, needs)
    if problems:
        raise RuntimeError("; ".join(problems))


def config_warnings(cfg: Any) -> list[str]:
    """Every missing package of a whole config (``Config``): one line per key, with the entries it holds for."""
    from plasticity.config.base import group_entries

    lines = [line for i, run in enumerate(cfg.sft.runs) for line in missing(cfg.sft_settings(run), f"sft.runs.{i}")]
    lines += [line for i, branch in enumerate(cfg.rl.branches)
              for line in missing(cfg.rl_settings(branch), f"rl.branches.{i}")]
    return group_entries(lines) + missing(cfg.eval, "eval", BACKEND_NEEDS) + \
        missing(cfg.data.difficulty, "data.difficulty", BACKEND_NEEDS)
