"""The root of the schema: the whole config, its cross-references, and the resolved views stages read."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from plasticity.analysis.flops import MODEL_REGISTRY
from plasticity.config.base import Strict, _check_name, _format_errors, deep_merge
from plasticity.config.cluster import Cluster
from plasticity.config.data import Data
from plasticity.config.eval import Eval
from plasticity.config.models import ModelSpec
from plasticity.config.report import JOB_RULES, JobRequest, Report
from plasticity.config.rl import Rl, RlBranch, RlBranchSettings, RlSettings
from plasticity.config.sections import (BenchmarksSection, DecontaminateSection, DifficultySection, EvalGeneration,
                                        EvalGrading, FilterSection, GenerateSection, GradeSection, IngestSection,
                                        ModelSection, RlSection, SftSection, SubsetsSection,
                                        TeacherSection, TokenizeSection, _pick)
from plasticity.config.sft import Sft, SftRun, SftRunSettings, SftSettings
from plasticity.methods import METHODS


class Config(Strict):
    seed: int = 1234
    # Seed of training and evaluation sampling (SFT, RL, generation); None: ``seed``. The data world
    # (teacher, sets, benchmarks), the tokenizer and the base model keep ``seed``, so runs that differ
    # only here are repeats of one study (bash run.sh seeds).
    train_seed: int | None = None
    results_dir: str = "results"
    reports_dir: str = "reports"
    models: dict[str, ModelSpec] = Field(min_length=1)
    data: Data
    eval: Eval
    sft: Sft
    rl: Rl
    report: Report = Report()
    resources: dict[str, JobRequest] = {}   # by rule name (JOB_RULES)
    cluster: Cluster = Cluster()            # what plan's estimates assume of the GPU machines

    @model_validator(mode="after")
    def _cross_refs(self) -> "Config":
        errors = []
        for name in self.models:
            try:
                _check_name(name, "model name")
            except ValueError as exc:
                errors.append(f"models.{name}: {exc}")
        sets = self.data.sets
        run_keys = set()
        for i, run in enumerate(self.sft.runs):
            if run.model not in self.models:
                errors.append(f"sft.runs.{i}.model: unknown model {run.model!r}")
            if run.data not in sets:
                errors.append(f"sft.runs.{i}.data: unknown data set {run.data!r}")
            elif sets[run.data].kind in ("val", "rl"):
                errors.append(f"sft.runs.{i}.data: set {run.data!r} of kind {sets[run.data].kind!r} is not SFT data")
            bad = set(run.overrides) - set(SftSettings.model_fields)
            if bad:
                errors.append(f"sft.runs.{i}.overrides: unknown keys {sorted(bad)}")
            else:
                errors += _resolved_errors(lambda: self.sft_settings(run), f"sft.runs.{i}")
            if (run.model, run.data) in run_keys:
                errors.append(f"sft.runs.{i}: duplicate run for ({run.model}, {run.data})")
            run_keys.add((run.model, run.data))
        for i, br in enumerate(self.rl.branches):
            where = f"rl.branches.{i}"
            if br.model not in self.models:
                errors.append(f"{where}.model: unknown model {br.model!r}")
            if br.prompts not in sets or sets[br.prompts].kind not in ("rl", "mix"):
                errors.append(f"{where}.prompts: {br.prompts!r} is not a data set of kind rl or mix")
            elif (getattr(METHODS.get(br.method or self.rl.defaults.method), "sync", None) is not None
                  and sets[br.prompts].kind != "mix"):
                errors.append(f"{where}.prompts: method {br.method or self.rl.defaults.method!r} trains on the "
                              f"expert trajectories of a data set of kind mix, not {br.prompts!r}")
            if br.sft_data == "none":
                if br.switch != 0:
                    errors.append(f"{where}.switch: RL from the base (sft_data none) needs switch 0")
            elif (br.model, br.sft_data) not in run_keys:
                errors.append(f"{where}.sft_data: no sft run for ({br.model}, {br.sft_data})")
            elif isinstance(br.switch, int):
                run = next(r for r in self.sft.runs if (r.model, r.data) == (br.model, br.sft_data))
                if br.switch not in run.save_steps:
                    errors.append(f"{where}.switch: step {br.switch} is not a save step of that run "
                                  f"{run.save_steps}")
            bad = set(br.overrides) - set(RlSettings.model_fields)
            if bad:
                errors.append(f"{where}.overrides: unknown keys {sorted(bad)}")
            else:
                errors += _resolved_errors(lambda: self.rl_settings(br), where) or self._in_loop_backend(br, where)
        for name, spec in self.models.items():
            if spec.flops_constants is not None and spec.flops_constants not in MODEL_REGISTRY:
                errors.append(f"models.{name}.flops_constants: {spec.flops_constants!r} is not one of "
                              f"{sorted(MODEL_REGISTRY)}")
        if self.report.import_hparams and not self.report.import_curves:
            errors.append("report.import_hparams: only used with report.import_curves")
        if self.report.import_min_loss and not self.report.import_curves:
            errors.append("report.import_min_loss: only used with report.import_curves")
        if self.report.model and self.report.model not in self.models:
            errors.append(f"report.model: unknown model {self.report.model!r}")
        if self.data.difficulty.model and self.data.difficulty.model not in self.models:
            errors.append(f"data.difficulty.model: unknown model {self.data.difficulty.model!r}")
        if self.data.filter.tokenizer and self.data.filter.tokenizer not in self.models:
            errors.append(f"data.filter.tokenizer: unknown model {self.data.filter.tokenizer!r}")
        errors += [f"resources.{name}: not a rule of its own job {JOB_RULES}"
                   for name in self.resources if name not in JOB_RULES]
        if errors:
            raise ValueError("; ".join(errors))
        return self

    # -- resolved views used by the workflow and the stages ------------------------------------
    def sft_settings(self, run: SftRun) -> SftRunSettings:
        """One run's settings: defaults, then the run's overrides, then its own keys; batch layout checked."""
        merged = deep_merge(self.sft.defaults.model_dump(exclude_unset=True), run.overrides)
        settings = SftRunSettings(**merged, data=run.data, steps=run.steps, save_steps=run.save_steps,
                                  schedule_horizon=run.schedule_horizon)
        settings.batch_layout(settings.launch.world_size)
        return settings

    def rl_settings(self, branch: RlBranch) -> RlBranchSettings:
        """One branch's settings: defaults, the branch's overrides and method; batch layout checked."""
        merged = deep_merge(self.rl.defaults.model_dump(exclude_unset=True), branch.overrides)
        if branch.method:
            merged["method"] = branch.method
        settings = RlBranchSettings(**merged, sft_data=branch.sft_data, switch=branch.switch,
                                    prompts=branch.prompts)
        settings.batch_layout(settings.launch.world_size)
        return settings

    def job_request(self, rule: str) -> JobRequest:
        """The scheduler request of a non-training rule: its ``resources`` entry or the defaults."""
        return self.resources.get(rule, JobRequest())

    def sft_run(self, model: str, data: str) -> SftRun:
        for run in self.sft.runs:
            if (run.model, run.data) == (model, data):
                return run
        raise KeyError(f"no sft run for model {model!r} and data {data!r}")

    def rl_branch(self, model: str, sft_data: str, switch: str, method: str) -> RlBranch:
        for b in self.rl.branches:
            if (b.model, b.sft_data, str(b.switch), b.method or self.rl.defaults.method) == \
                    (model, sft_data, str(switch), method):
                return b
        raise KeyError(f"no rl branch {model}/{sft_data}@{switch}/{method} in the config")

    def _in_loop_backend(self, branch: RlBranch, where: str) -> list[str]:
        return _in_loop_backend_errors(self.eval.backend, self.rl_settings(branch), where)

    def tokenizer_model(self) -> str:
        return self.data.filter.tokenizer or next(iter(self.models))

    def section(self, stage: str, key: str = "all") -> BaseModel:
        """The resolved config section a stage reads (``results/configs/<stage>/<key>.json``).

        Each stage gets only the keys it reads, so a change elsewhere does not rerun it; the stage
        loads the file back through the same model (``load_section``).
        """
        seed, data = self.seed, self.data
        run_seed = self.seed if self.train_seed is None else self.train_seed
        if stage in ("tokenizer", "base", "generate"):
            model = {"seed": seed, "model_name": key, "model": self.models[key]}
            if stage == "generate":
                return GenerateSection(**{**model, "seed": run_seed}, eval=_pick(self.eval, EvalGeneration))
            return ModelSection(**model)
        if stage == "sft":
            model, sft_data = key.split("/")
            return SftSection(seed=run_seed, model_name=model, model=self.models[model],
                              sft=self.sft_settings(self.sft_run(model, sft_data)), regimes=self.sft.regimes)
        if stage == "rl":
            model, branch, method = key.split("/")
            sft_data, switch = branch.split("@")
            return RlSection(seed=run_seed, model_name=model, model=self.models[model],
                             rl=self.rl_settings(self.rl_branch(model, sft_data, switch, method)),
                             regimes=self.sft.regimes, eval=self.eval)
        if stage == "tokenize":   # key: <model>/<set>/<max_length>
            return TokenizeSection(max_length=int(key.rsplit("/", 1)[1]))
        if stage == "grade":
            return GradeSection(seed=seed, eval=_pick(self.eval, EvalGrading))
        if stage == "teacher":
            return TeacherSection(seed=seed, teacher=data.teacher)
        if stage == "ingest":
            return IngestSection(seed=seed, sources=data.sources, rl_source=data.rl_source)
        if stage == "filter":
            return FilterSection(seed=seed, filter=data.filter)
        if stage == "decontaminate":
            return DecontaminateSection(seed=seed, decontaminate=data.decontaminate)
        if stage == "difficulty":
            return DifficultySection(seed=seed, difficulty=data.difficulty)
        if stage == "subsets":
            return SubsetsSection(seed=seed, sets=data.sets)
        if stage == "benchmarks":
            return BenchmarksSection(seed=seed, benchmarks=self.eval.benchmarks + self.eval.ood_benchmarks)
        raise ValueError(f"unknown stage {stage!r}")


def _in_loop_backend_errors(eval_backend: str, settings: "RlBranchSettings", where: str) -> list[str]:
    """In-loop evaluation through vLLM reuses the trainer's own colocated engine (no second copy of the
    model on the GPUs; a server-mode engine lives elsewhere and serves the trainer only)."""
    if eval_backend == "vllm" and not (settings.use_vllm and settings.vllm_mode == "colocate"):
        return [f"{where}: eval.backend vllm evaluates RL branches on the trainer's colocated vLLM engine: "
                "set use_vllm: true and vllm_mode: colocate, or eval.backend: transformers"]
    return []


def _resolved_errors(resolve: Any, where: str) -> list[str]:
    """Errors of a run's or branch's merged settings, each prefixed with the entry's key path."""
    try:
        resolve()
    except ValidationError as exc:
        return [f"{where}: " + line.strip() for line in _format_errors(exc, "").splitlines()[1:]]
    except ValueError as exc:
        return [f"{where}: {exc}"]
    return []
