"""What each stage reads: ``Config.section`` builds these models, ``load_section`` reads them back in the stage.

Each stage gets only the keys it reads, so a change elsewhere does not rerun it.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError, create_model

from plasticity.config.base import ConfigError, SectionT, Strict, _format_errors
from plasticity.config.data import DataSet, Decontaminate, Difficulty, Filter, Source, Teacher
from plasticity.config.eval import Eval
from plasticity.config.models import ModelSpec
from plasticity.config.rl import RlBranchSettings
from plasticity.config.sft import Regimes, SftRunSettings
from plasticity.io import read_json_checked


def _subset(model: type[BaseModel], name: str, fields: tuple[str, ...]) -> type[BaseModel]:
    """A model of some of ``model``'s fields, each with its one definition (type, default, bounds)."""
    return create_model(name, __base__=Strict,
                        **{f: (model.model_fields[f].annotation, model.model_fields[f]) for f in fields})


def _pick(value: BaseModel, model: type[BaseModel]) -> BaseModel:
    return model(**{f: getattr(value, f) for f in model.model_fields})


EvalGeneration = _subset(Eval, "EvalGeneration", ("benchmarks", "ood_benchmarks", "backend", "sampling",
                                                   "samples", "batch_size", "tensor_parallel_size"))
EvalGrading = _subset(Eval, "EvalGrading", ("benchmarks", "ood_benchmarks", "grader", "judge"))


class Section(Strict):
    seed: int


class ModelSection(Section):
    model_name: str
    model: ModelSpec


class GenerateSection(ModelSection):
    eval: EvalGeneration  # type: ignore[valid-type]


class GradeSection(Section):
    eval: EvalGrading  # type: ignore[valid-type]


class SftSection(ModelSection):
    sft: SftRunSettings
    regimes: Regimes


class RlSection(ModelSection):
    rl: RlBranchSettings
    regimes: Regimes
    eval: Eval


class TokenizeSection(Strict):
    max_length: int


class TeacherSection(Section):
    teacher: Teacher | None


class IngestSection(Section):
    sources: list[Source]
    rl_source: Source


class FilterSection(Section):
    filter: Filter


class DecontaminateSection(Section):
    decontaminate: Decontaminate


class DifficultySection(Section):
    difficulty: Difficulty


class SubsetsSection(Section):
    sets: dict[str, DataSet]


class BenchmarksSection(Section):
    benchmarks: list[str]


def load_section(path: str | Path, model: type[SectionT]) -> SectionT:
    """Read a stage's resolved config section back through its model; errors name the file and key."""
    raw = read_json_checked(path, ConfigError, missing="config section not found")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(path))) from None
