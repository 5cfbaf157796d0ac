"""The schema's building blocks: the strict base model, the error type, names that become paths."""
from __future__ import annotations

import re
from typing import TypeVar

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
