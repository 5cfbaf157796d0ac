"""The one config schema (config.yaml and every configs/*.yaml), validated on load.

Unknown keys, wrong types and impossible combinations are errors naming the key path, e.g.
``rl.branches.1.switch: switch 'stabel' is neither a step nor one of [...]``. Imports no torch:
Snakemake loads this package to expand the experiment matrix.

One module per section of the file, each the only definition of its keys and defaults:

=================  ===========================================================================
``base``           the strict base model, ``ConfigError``, names that become paths
``models``         ``models``: tiny, hub or local models
``data``           ``data``: sources, teacher, filters, decontamination, difficulty, named sets
``eval``           ``eval``: benchmarks, sampling, grader, judge
``training``       what SFT and RL share: ``launch``, batch arithmetic, optimizer, precision
``sft``            ``sft``: defaults, runs, regimes
``rl``             ``rl``: defaults, synchronized methods, branches
``report``         ``report`` and ``resources``
``cluster``        ``cluster``: the GPU machines plan's estimates assume
``root``           ``Config``: the whole file, cross-references, resolved views
``sections``       what each stage reads (``results/configs/<stage>/...json``)
``load``           YAML -> ``Config``
=================  ===========================================================================

Use: ``load_config(path) -> Config`` (or ``validate(dict)``); ``python -m plasticity.config FILE``
validates a file and prints the size of its matrix.
"""
from plasticity.config.base import (NAME_RE, REGIMES, SET_KINDS, SOURCE_FORMATS, SWITCH_RULES, ConfigError,
                                    Strict)
from plasticity.config.cluster import Cluster
from plasticity.config.data import (BenchmarkSide, Data, DataSet, Decontaminate, Difficulty, Faults, Filter,
                                    Source, Teacher)
from plasticity.config.eval import Eval, GraderCfg, Judge, Sampling
from plasticity.config.load import load_config, validate
from plasticity.config.models import ModelSpec, Pretrain, TinyArch
from plasticity.config.report import JOB_RULES, FitCfg, JobRequest, Report
from plasticity.config.rl import Rl, RlBranch, RlBranchSettings, RlSettings, SyncSettings
from plasticity.config.root import Config
from plasticity.config.sections import (BenchmarksSection, DecontaminateSection, DifficultySection, EvalGeneration,
                                        EvalGrading, FilterSection, GenerateSection, GradeSection, IngestSection,
                                        ModelSection, RlSection, Section, SftSection,
                                        SubsetsSection, TeacherSection, TokenizeSection, load_section)
from plasticity.config.sft import Regimes, Sft, SftRun, SftRunSettings, SftSettings, Tokenize
from plasticity.config.training import Launch, TrainSettings, batch_layout

from types import ModuleType as _Module

__all__ = [name for name, value in dict(globals()).items()
           if not name.startswith("_") and not isinstance(value, _Module)]
