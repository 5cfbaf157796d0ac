"""``eval``: benchmarks, sampling, the grader and the optional judge."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from plasticity.config.base import Strict, _check_name


class Sampling(Strict):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(8192, gt=0)


class GraderCfg(Strict):
    mode: Literal["strict", "lenient"] = "strict"
    timeout_s: float = Field(5.0, gt=0)
    workers: int = Field(1, gt=0)


class Judge(Strict):
    """OpenAI-compatible endpoint adjudicating strict/lenient disagreements (eval/judge.py)."""

    base_url: str
    model: str
    api_key_env: str | None = None
    temperature: float = Field(0.6, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(1024, gt=0)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(2, ge=0)
    concurrency: int = Field(4, gt=0)
    max_requests: int = Field(10_000, gt=0)


class Eval(Strict):
    benchmarks: list[str] = Field(min_length=1)
    backend: Literal["transformers", "vllm"] = "transformers"
    sampling: Sampling = Sampling()
    samples: dict[str, int] = {"default": 1}
    batch_size: int = Field(64, gt=0)
    tensor_parallel_size: int = Field(1, gt=0)
    grader: GraderCfg = GraderCfg()
    judge: Judge | None = None
    ood_benchmarks: list[str] = []

    @model_validator(mode="after")
    def _samples(self) -> "Eval":
        for name in self.benchmarks + self.ood_benchmarks:
            _check_name(name, "benchmark name")
        unknown = set(self.samples) - {"default"} - set(self.benchmarks) - set(self.ood_benchmarks)
        if unknown:
            raise ValueError(f"eval.samples names benchmarks not in eval.benchmarks: {sorted(unknown)}")
        if any(k < 1 for k in self.samples.values()):
            raise ValueError("eval.samples values must be >= 1")
        return self


