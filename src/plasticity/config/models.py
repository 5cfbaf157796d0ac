"""``models``: where each model comes from (built here, a pinned hub revision, or a hashed local path)."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, model_validator

from plasticity.config.base import Strict


class TinyArch(Strict):
    hidden_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    max_position_embeddings: int = Field(gt=0)

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyArch":
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be divisible by num_key_value_heads")
        return self


class Pretrain(Strict):
    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    warmup_steps: int = Field(default=0, ge=0)
    examples: int = Field(gt=0)


class ModelSpec(Strict):
    """`tiny`: built here; `hub`: hub_id + pinned revision; `path`: local dir + sha256."""

    source: Literal["tiny", "hub", "path"]
    trust_remote_code: bool = False
    arch: TinyArch | None = None
    pretrain: Pretrain | None = None
    hub_id: str | None = None
    revision: str | None = None
    path: str | None = None
    sha256: str | None = None
    flops_constants: str | None = None   # key of analysis.flops.MODEL_REGISTRY
    # keys of a hub / path model's config.json replaced when the base is written (e.g. LUFFY's recipe on
    # Qwen2.5-Math-7B: rope_theta 40000, max_position_embeddings 16384 for 1K + 8K-token rollouts)
    config_overrides: dict[str, Union[int, float]] = {}

    @model_validator(mode="after")
    def _source_fields(self) -> "ModelSpec":
        need = {"tiny": ("arch", "pretrain"), "hub": ("hub_id", "revision"), "path": ("path", "sha256")}
        missing = [k for k in need[self.source] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"source {self.source!r} requires {missing}")
        if self.config_overrides and self.source == "tiny":
            raise ValueError("config_overrides: a tiny model's shape is its arch")
        return self


