"""The schema's building blocks: the strict base model, the error type, names that become paths."""
from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

NAME_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_NAME = re.compile(rf"^{NAME_RE}$")
REGIMES = ("adaptive", "stable", "mild", "severe")
SWITCH_RULES = ("min_val_loss",) + REGIMES
SOURCE_FORMATS = ("am_40m", "am_1.4m", "s1k", "skywork_or1", "retu_sft", "retu_rl")
SET_KINDS = ("val", "all", "uniform", "easy", "hard", "rl", "mix", "source")


SectionT = TypeVar("SectionT", bound=BaseModel)


class ConfigError(ValueError):
    """A config file is invalid; the message names the file and every offending key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, nested mappings key by key: a run's override ``launch: {strategy: ddp}``
    keeps the defaults' nodes, GPUs and time limit rather than falling back to the schema's."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


_ENTRY = re.compile(r"^(sft\.runs|rl\.branches)\.(\d+)\.")


def group_entries(lines: list[str]) -> list[str]:
    """Messages that differ only in the run or branch they name, once each with the entries listed:
    ``rl.branches.*.use_vllm: ... (entries 0, 1, 2)``."""
    grouped: dict[str, list[str]] = {}
    for line in lines:
        match = _ENTRY.match(line)
        key = _ENTRY.sub(r"\1.*.", line) if match else line
        grouped.setdefault(key, []).extend([match[2]] if match else [])
    return [f"{key} (entries {', '.join(idx)})" if idx else key for key, idx in grouped.items()]


def _check_name(value: str, what: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} must match {NAME_RE} (it becomes part of paths)")
    return value


def _format_errors(exc: ValidationError, where: str) -> str:
    lines = [f"{where}: invalid config"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)
