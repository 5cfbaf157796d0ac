# Config load + validation, path helpers, matrix expansion and code dependencies.
# Every other rules/*.smk file uses only what is defined here.

import ast
import json
import shlex
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from plasticity.config import SWITCH_RULES, load_config, validate  # noqa: E402

SRC = Path(workflow.basedir) / "src"


def _deep_update(base, extra):
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


# No `configfile:` directive on purpose: Snakemake would deep-merge a --configfile onto it and mix
# two studies' models and sets. Without --configfile the embedded default is loaded here; --config
# KEY=VALUE overrides apply on top either way.
if workflow.overwrite_configfiles:
    CFG = validate(dict(config), ", ".join(map(str, workflow.overwrite_configfiles)))
else:
    _default = Path(workflow.basedir) / "config.yaml"
    CFG = validate(_deep_update(yaml.safe_load(_default.read_text()), dict(config)), str(_default))

R = CFG.results_dir.rstrip("/")
REPORTS = CFG.reports_dir.rstrip("/")
LOGS = f"{R}/logs"

# Run stages with this interpreter (the project's virtual environment); on a cluster with
# --use-conda the rule's conda env provides `python` instead.
PY = "python" if workflow.deployment_settings.deployment_method else shlex.quote(sys.executable)
STAGE = f"{PY} -m plasticity"

NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
wildcard_constraints:
    model=NAME,
    sft_data=NAME,
    method=NAME,
    step=r"\d+",
    switch=r"\d+|" + "|".join(SWITCH_RULES),
    run=r"base|sft/" + NAME + r"/\d+",
    stage=r"[a-z_]+",
    key=r"(?!.*\.\.)[A-Za-z0-9_.@/-]+",


# ----------------------------------------------------------------------------- code dependencies
def _module_file(module):
    base = SRC.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "plasticity" or m.startswith("plasticity.")}


_CODE_CACHE = {}


def code(*modules):
    """Source files a stage imports (transitively, within the package): editing one reruns the stage."""
    key = tuple(modules)
    if key not in _CODE_CACHE:
        seen, todo = {}, list(modules)
        while todo:
            path = _module_file(todo.pop())
            if path is None or str(path) in seen:
                continue
            seen[str(path)] = True
            todo.extend(_imports(path))
        _CODE_CACHE[key] = sorted(str(Path(p).relative_to(workflow.basedir)) for p in seen)
    return _CODE_CACHE[key]


# ------------------------------------------------------------------------------ matrix expansion
def sft_runs():
    return list(CFG.sft.runs)


def sft_run(model, sft_data):
    for run in CFG.sft.runs:
        if (run.model, run.data) == (model, sft_data):
            return run
    raise ValueError(f"no sft run for model {model!r} and data {sft_data!r}")


def rl_branches():
    return [(b, b.method or CFG.rl.defaults.method) for b in CFG.rl.branches]


def models_in_use():
    names = {r.model for r in CFG.sft.runs} | {b.model for b in CFG.rl.branches}
    return sorted(names) or list(CFG.models)


def sft_eval_dirs():
    return [f"{R}/{run.model}/eval/sft/{run.data}/{step}/scores"
            for run in CFG.sft.runs for step in run.save_steps]


def base_eval_dirs():
    return [f"{R}/{m}/eval/base/scores" for m in models_in_use()]


def rl_dirs():
    return [f"{R}/{b.model}/rl/{b.sft_data}@{b.switch}/{method}" for b, method in rl_branches()]


# -------------------------------------------------------------------------- stage config sections
def _section(stage, key):
    seed = CFG.seed
    data = CFG.data
    if stage in ("teacher", "filter", "decontaminate", "difficulty"):
        return {"seed": seed, stage: getattr(data, stage).model_dump() if getattr(data, stage) else None}
    if stage == "ingest":
        return {"seed": seed, "sources": [s.model_dump() for s in data.sources],
                "rl_source": data.rl_source.model_dump()}
    if stage == "subsets":
        return {"seed": seed, "sets": {k: v.model_dump() for k, v in data.sets.items()}}
    if stage == "benchmarks":
        return {"seed": seed, "benchmarks": CFG.eval.benchmarks + CFG.eval.ood_benchmarks}
    if stage == "eval":
        return {"seed": seed, "eval": CFG.eval.model_dump()}
    if stage in ("tokenizer", "base"):
        return {"seed": seed, "model_name": key, "model": CFG.models[key].model_dump()}
    if stage == "sft":
        model, sft_data = key.split("/")
        return {"seed": seed, "model_name": model, "model": CFG.models[model].model_dump(),
                "sft": CFG.sft_settings(sft_run(model, sft_data)),
                "regimes": CFG.sft.regimes.model_dump()}
    if stage == "rl":
        model, branch, method = key.split("/")
        sft_data, switch = branch.split("@")
        for b, m in rl_branches():
            if (b.model, b.sft_data, str(b.switch), m) == (model, sft_data, switch, method):
                return {"seed": seed, "model_name": model, "model": CFG.models[model].model_dump(),
                        "rl": CFG.rl_settings(b), "regimes": CFG.sft.regimes.model_dump(),
                        "eval": CFG.eval.model_dump()}
        raise ValueError(f"no rl branch {key!r} in the config")
    if stage == "report":
        return {"seed": seed, "report": CFG.report.model_dump(), "regimes": CFG.sft.regimes.model_dump()}
    raise ValueError(f"unknown stage {stage!r}")


def stage_config(stage, key="all"):
    return f"{R}/configs/{stage}/{key}.json"


def log(name):
    return f"{LOGS}/{name}.log"
