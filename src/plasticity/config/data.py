"""``data``: sources, the simulated teacher, filters, decontamination, difficulty and the named sets."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from plasticity.config.base import SET_KINDS, SOURCE_FORMATS, Strict, _check_name


class Faults(Strict):
    wrong_answer: float = Field(0.0, ge=0, le=1)
    duplicate: float = Field(0.0, ge=0, le=1)
    non_math: float = Field(0.0, ge=0, le=1)
    other_teacher: float = Field(0.0, ge=0, le=1)
    overlong: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    benchmark_copy: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _total(self) -> "Faults":
        if sum(self.model_dump().values()) > 0.9:
            raise ValueError("fault fractions add up to more than 0.9: too little clean data would remain")
        return self


class Teacher(Strict):
    problems: int = Field(gt=0)
    rl_prompts: int = Field(gt=0)
    levels: list[int] = Field(min_length=1)
    shards: int = Field(1, gt=0)
    faults: Faults = Faults()

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[int]) -> list[int]:
        from plasticity.problems import MAX_LEVEL, MIN_LEVEL
        bad = [x for x in v if not MIN_LEVEL <= x <= MAX_LEVEL]
        if bad:
            raise ValueError(f"levels {bad} outside [{MIN_LEVEL}, {MAX_LEVEL}]")
        return v


class Source(Strict):
    name: str
    format: Literal[SOURCE_FORMATS]  # type: ignore[valid-type]
    path: str | None = None          # `teacher` = the simulated teacher's output; else a file/dir
    hub_id: str | None = None
    revision: str | None = None
    files: list[str] | None = None   # file names inside the hub repo (e.g. math_r1_1pass.jsonl)
    split: str | None = None

    _name = field_validator("name")(lambda v: _check_name(v, "source name"))

    @model_validator(mode="after")
    def _where(self) -> "Source":
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of `path` or `hub_id`")
        if self.hub_id is not None and not self.revision:
            raise ValueError("a hub source needs a pinned `revision`")
        return self


class Filter(Strict):
    max_prompt_tokens: int = Field(gt=0)
    max_response_tokens: int = Field(gt=0)
    tokenizer: str | None = None          # model name whose tokenizer counts tokens (default: first model)
    teachers: list[str] | None = None     # accepted teacher names (default: the R1-671B names)
    grader_mode: Literal["strict", "lenient"] = "strict"
    rl_difficulty: tuple[float, float] | None = None   # keep RL prompts with difficulty in [lo, hi]
    domains: list[str] = ["math"]
    exempt_sources: list[str] = []        # sources kept as released (e.g. s1k: worked-solution references)
    workers: int | None = Field(None, gt=0)   # the job's CPUs, passed to the stage as --threads (default 1)


class BenchmarkSide(Strict):
    model_path: str                       # local embedding model directory (safetensors)
    threshold: float = Field(0.8, gt=0, le=1)
    pooling: Literal["last", "mean"] = "last"   # without sentence-transformers; last: Qwen3-Embedding


class Decontaminate(Strict):
    ngram: int = Field(8, gt=0)
    fields: list[str] = ["prompt"]        # training-side text fields compared with benchmark prompts
    workers: int | None = Field(None, gt=0)   # the job's CPUs, passed to the stage as --threads (default 1)
    benchmark_side: BenchmarkSide | None = None


class Difficulty(Strict):
    source: Literal["metadata", "sample"] = "metadata"
    samples: int = Field(4, gt=0)
    model: str | None = None              # reference model (a `models` name) when source = sample
    column: str = "win_rate_small"        # win-rate column that sampling fills
    backend: Literal["transformers", "vllm"] = "transformers"
    temperature: float = Field(0.7, gt=0)   # sampling, never greedy (the evaluation's rule)
    max_new_tokens: int = Field(1024, gt=0)
    grader_mode: Literal["strict", "lenient"] = "strict"

    @model_validator(mode="after")
    def _model(self) -> "Difficulty":
        if self.source == "sample" and not self.model:
            raise ValueError("difficulty.source 'sample' needs `model` (a reference model name)")
        return self


class DataSet(Strict):
    kind: Literal[SET_KINDS]  # type: ignore[valid-type]
    size: int | None = Field(None, gt=0)
    min_win_rate: float | None = Field(None, ge=0, le=1)
    max_win_rate: float | None = Field(None, ge=0, le=1)
    max_response_tokens: int | None = Field(None, gt=0)
    source: str | None = None             # kind `source`: every row of this source (e.g. S1K)
    from_set: str | None = None           # draw from another named set's pool instead of all rows

    @model_validator(mode="after")
    def _kind_fields(self) -> "DataSet":
        if self.kind in ("val", "uniform", "easy", "hard") and self.size is None:
            raise ValueError(f"kind {self.kind!r} needs `size`")
        if self.kind == "source" and not self.source:
            raise ValueError("kind 'source' needs `source`")
        return self


class Data(Strict):
    teacher: Teacher | None = None
    sources: list[Source] = Field(min_length=1)
    rl_source: Source
    filter: Filter
    decontaminate: Decontaminate = Decontaminate()
    difficulty: Difficulty = Difficulty()
    sets: dict[str, DataSet]

    def uses_teacher(self) -> bool:
        """True when a source reads the simulated teacher's output (`path: teacher`)."""
        return any(s.path == "teacher" for s in [*self.sources, self.rl_source])

    @model_validator(mode="after")
    def _consistent(self) -> "Data":
        for name in self.sets:
            _check_name(name, "set name")
        if self.uses_teacher() and self.teacher is None:
            raise ValueError("a source has `path: teacher` but data.teacher is not configured")
        if sum(s.kind == "val" for s in self.sets.values()) != 1:
            raise ValueError("exactly one set of kind 'val' is required (the SFT validation set)")
        return self


