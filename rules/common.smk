# Config load + validation, path helpers, matrix expansion and code dependencies.
# Every other rules/*.smk file uses only what is defined here.

import json
import os
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from plasticity.codedeps import closure  # noqa: E402
from plasticity.config import NAME_RE, SWITCH_RULES, validate  # noqa: E402
from plasticity.config.base import deep_merge, group_entries  # noqa: E402
from plasticity.launch import job_resources, launcher, threads_per_node  # noqa: E402

SRC = Path(workflow.basedir) / "src"


# No `configfile:` directive on purpose: Snakemake would deep-merge a --configfile onto it and mix
# two studies' models and sets. Without --configfile the embedded default is loaded here; --config
# KEY=VALUE overrides apply on top either way.
if workflow.overwrite_configfiles:
    CFG = validate(dict(config), ", ".join(map(str, workflow.overwrite_configfiles)))
else:
    _default = Path(workflow.basedir) / "config.yaml"
    CFG = validate(deep_merge(yaml.safe_load(_default.read_text()), dict(config)), str(_default))

R = CFG.results_dir.rstrip("/")
REPORTS = CFG.reports_dir.rstrip("/")
LOGS = f"{R}/logs"

# Rules run `python -m plasticity <stage>`: put this interpreter's environment (the project's
# virtual environment) first on PATH; with --use-conda each rule's conda env provides `python`.
# ... and import `plasticity` from this checkout, not from wherever the environment's install points:
# set here (before `envvars`, which requires them defined), so it holds for local jobs and for every
# cluster job (which parses this file again).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# Compute jobs read local files only: the hub clients' offline switches are set for every job (the
# download rules, local on the submit host, lift them for themselves: plasticity.download).
OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
os.environ.update({name: "1" for name in OFFLINE})
os.environ["PYTHONPATH"] = os.pathsep.join([str(SRC)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                        if p and p != str(SRC)])

envvars:
    "PATH",
    "PYTHONPATH",
    *OFFLINE,

NAME = NAME_RE
TABLES = ("table1", "table2", "table4", "table5", "table6")
FIGURES = ("figure2", "figure3", "figure8")

wildcard_constraints:
    model=NAME,
    sft_data=NAME,
    tok_set=NAME,
    max_length=r"\d+",
    method=NAME,
    source=NAME,
    step=r"\d+",
    switch=r"\d+|" + "|".join(SWITCH_RULES),
    run=rf"base|sft[/]{NAME}[/]\d+",
    stage=r"[a-z_]+",
    table="|".join(TABLES),
    figure="|".join(FIGURES),
    key=r"(?!.*\.\.)[A-Za-z0-9_.@/-]+",


# ----------------------------------------------------------------------------- code dependencies
def code(*modules):
    """Source files a stage imports (transitively, within the package): editing one reruns the stage.
    The same closure gives dvc.yaml its deps (plasticity.codedeps)."""
    return list(closure(*modules, src=SRC))


# ------------------------------------------------------------------------------ matrix expansion
def sft_runs():
    return list(CFG.sft.runs)


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
def section(stage, key="all"):
    """The resolved config section a stage reads (plasticity.config.Config.section), as JSON data."""
    return CFG.section(stage, key).model_dump(mode="json")


def stage_config(stage, key="all"):
    return f"{R}/configs/{stage}/{key}.json"


def log(name):
    return f"{LOGS}/{name}.log"


def write_section(path, section):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(section, indent=2, sort_keys=True) + "\n")


# ---- downloads: the only jobs that reach the hub, local rules on the submit host (plasticity.download);
# every other job runs with the hub's offline switches set (envvars above)
from plasticity.download import MODEL_PATTERNS  # noqa: E402

HUB_SOURCES = {s.name: s for s in [*CFG.data.sources, CFG.data.rl_source] if s.hub_id}


def download_args(spec, patterns=None):
    """The download stage's arguments for a hub model or data source (quoted: config values)."""
    kind = "model" if patterns is not None else "dataset"
    if patterns is None and (spec.files or spec.split):   # a source's files, or a split's shards
        patterns = spec.files or [f"*{spec.split}-*", f"*{spec.split}.*"]
    args = ["--repo", spec.hub_id, "--revision", spec.revision, "--type", kind]
    args += [a for p in patterns or [] for a in ("--pattern", p)]
    return shlex.join(args)


def model_snapshot(w):
    """A hub model's downloaded snapshot (rule download_model); nothing for tiny and path models."""
    return f"{R}/downloads/models/{w.model}" if CFG.models[w.model].source == "hub" else []


def snapshot_arg(w, input):
    return f"--snapshot {shlex.quote(input.snapshot)}" if CFG.models[w.model].source == "hub" else ""


# ---- used by rules/data.smk
def _raw_input(wildcards):
    return rules.teacher.output[0] if CFG.data.uses_teacher() else []


def difficulty_model(wildcards):
    """Reference model sampled for win rates (difficulty.source = sample), else nothing."""
    d = CFG.data.difficulty
    return f"{R}/{d.model}/base" if d.source == "sample" else []


# ---- used by rules/sft.smk and rules/rl.smk
VAL_SET = next(name for name, s in CFG.data.sets.items() if s.kind == "val")


def tokens_dir(model, data_set, max_length):
    """The tokenize rule's output for one set (plasticity.train.tokens)."""
    return f"{R}/{model}/tokens/{data_set}/{max_length}"


def sft_settings(w):
    return CFG.sft_settings(CFG.sft_run(w.model, w.sft_data))


def rl_settings(w):
    return CFG.rl_settings(CFG.rl_branch(w.model, w.sft_data, w.switch, w.method))


# ---- each training job's time limit, stop signal, elastic grace and retries: plasticity.budget (the
# model `plan` prints), one JobBudget per SFT run and RL branch, computed once here
from plasticity.budget import rl_budget, rule_retries, sft_budget  # noqa: E402

SFT_BUDGETS = {(r.model, r.data): sft_budget(CFG, r) for r in CFG.sft.runs}
RL_BUDGETS = {(b.model, b.sft_data, str(b.switch), b.method or CFG.rl.defaults.method): rl_budget(CFG, b)
              for b in CFG.rl.branches}
_BUDGET_ERRORS = [e for b in [*SFT_BUDGETS.values(), *RL_BUDGETS.values()] for e in b.errors]
if _BUDGET_ERRORS:   # a job that cannot fit its GPUs, node or time limit fails before anything is submitted
    raise WorkflowError("jobs that would not fit (python -m plasticity plan explains):\n" + "\n".join(group_entries(_BUDGET_ERRORS)))


def sft_budget_of(w):
    return SFT_BUDGETS[(w.model, w.sft_data)]


def rl_budget_of(w):
    return RL_BUDGETS[(w.model, w.sft_data, w.switch, w.method)]


def _training_job(launch, timing):
    # An empty `mpi` or `gres` becomes unset (None): the slurm-jobstep plugin tests whether `mpi` is
    # present, not its value, and would run a one-node job without its `srun` step, where the stop
    # signal (sent to job steps) reaches nothing.
    resources = {key: None if value == "" else value for key, value in job_resources(launch).items()}
    # SIGTERM `lead_s` before the limit: one step and one save (budget.timing), not a fixed cap
    return {**resources, "runtime": launch.time_min, "slurm_extra": f"--signal=TERM@{timing.lead_s}"}


def training_resources(settings_of, budget_of):
    """Each SLURM resource of a training rule: derived from its launch settings (plasticity.launch),
    its time limit, and the stop signal's lead from its budget."""
    keys = [*job_resources(CFG.sft.defaults.launch), "runtime", "slurm_extra"]
    return {key: (lambda w, key=key: _training_job(settings_of(w).launch, budget_of(w).timing)[key]) for key in keys}


def job_request(rule):
    """SLURM memory and time limit of a non-training rule's job (config `resources.<rule>`)."""
    request = CFG.job_request(rule)
    return {"mem_mb": int(request.mem_gb * 1024), "runtime": request.time_min}


def _rl_start(w):
    if w.sft_data == "none":
        return f"{R}/{w.model}/base"
    return f"{R}/{w.model}/sft/{w.sft_data}"


# ---- used by rules/eval.smk and rules/rl.smk
VLLM_CPUS_PER_GPU = 4     # a generate job's CPUs per GPU with the vLLM backend
def eval_suite(wildcards):
    """What every evaluation reads: with data.decontaminate.benchmark_side, the decontaminate
    output (its benchmarks/ folder is the cleaned suite, the study's 2,157 problems), else the
    benchmarks stage's suites."""
    if CFG.data.decontaminate.benchmark_side:
        return rules.decontaminate.output[0]
    return rules.benchmarks.output[0]


def eval_suite_dir(wildcards, input):
    """The benchmark directory to pass on the command line, given `input.benchmarks = eval_suite`."""
    if CFG.data.decontaminate.benchmark_side:
        return f"{input.benchmarks}/benchmarks"
    return input.benchmarks


def _eval_model(w):
    """Input directory holding the weights to evaluate for run `base` or `sft/<data>/<step>`."""
    if w.run == "base":
        return f"{R}/{w.model}/base"
    _, sft_data, _ = w.run.split("/")
    return f"{R}/{w.model}/sft/{sft_data}"


def _eval_weights(w, input):
    if w.run == "base":
        return input.model
    return f"{input.model}/checkpoint-{w.run.split('/')[2]}"

# ---- used by rules/report.smk
REPORT_MODEL = CFG.report.model or models_in_use()[0]
REPORT = f"{R}/report/{REPORT_MODEL}"


def _curve_args(w, input):
    m = REPORT_MODEL
    # the grid's method: other methods' branches are the paradigm comparison (paradigms.csv)
    args = [f"--method {CFG.rl.defaults.method}", f"--base-eval {shlex.quote(f'{R}/{m}/eval/base/scores')}"]
    for run in sft_runs():
        if run.model != m:
            continue
        args.append(f"--sft-run {shlex.quote(f'{run.data}={R}/{m}/sft/{run.data}')}")
        args += [f"--sft-eval {shlex.quote(f'{run.data}:{s}={R}/{m}/eval/sft/{run.data}/{s}/scores')}"
                 for s in run.save_steps]
    args += [f"--rl {shlex.quote(d)}" for d in rl_dirs() if d.startswith(f"{R}/{m}/")]
    return " ".join(args)


def _curve_inputs(w):
    m = REPORT_MODEL
    runs = [r for r in sft_runs() if r.model == m]
    return ([f"{R}/{m}/eval/base/scores"]
            + [f"{R}/{m}/sft/{r.data}" for r in runs]
            + [f"{R}/{m}/eval/sft/{r.data}/{s}/scores" for r in runs for s in r.save_steps]
            + [d for d in rl_dirs() if d.startswith(f"{R}/{m}/")])


# what each table / figure reads (see plasticity.analysis.tables / figures)
REPORT_INPUTS = {
    "table1": ("curves", "val_loss"), "table2": ("branches",), "table4": ("fits", "val_loss"),
    "table5": ("fits", "val_loss"), "table6": ("fits", "val_loss"),
    "figure2": ("curves", "fits"), "figure3": ("curves", "fits", "val_loss"), "figure8": ("fits", "val_loss"),
}
# flag under which each table / figure takes the validation-loss files
VAL_LOSS_FLAG = {"table1": "min-loss", "table5": "min-loss", "figure8": "min-loss"}


def fit_side_args(curves):
    """Suite weights and branch points for the fitter: beside our own curves, or imported ones."""
    if CFG.report.import_curves:
        hparams = CFG.report.import_hparams
        return f"--hparams {shlex.quote(hparams)}" if hparams else ""
    return " ".join(f"--{flag} {shlex.quote(str(Path(curves).parent / name))}"
                    for flag, name in (("weights", "weights.json"), ("hparams", "branches.csv")))


# the loss-vs-ceiling correlation (Table 5, Figure 8) needs at least two SFT sets
CORRELATION = {"table5", "figure8"}


def report_targets():
    skip = CORRELATION if len(_report_sft_runs()) < 2 and not CFG.report.import_min_loss else set()
    if CFG.report.import_curves:
        skip = skip | {"table2"}      # the RL settings as run: imported curves have no runs here
    return ([f"{REPORTS}/tables/{t}.md" for t in TABLES if t not in skip]
            + [f"{REPORTS}/figures/{f}.png" for f in FIGURES if f not in skip])


def _report_sft_runs():
    return [r for r in sft_runs() if r.model == REPORT_MODEL]


def _report_files(name):
    needs = REPORT_INPUTS[name]
    files = {}
    if "curves" in needs:
        files["curves"] = f"{REPORT}/curves.csv"
    if "fits" in needs:
        files["fits"] = f"{REPORT}/fits.csv"
    if "branches" in needs:     # Table 2: the RL settings each finished branch ran with
        files["branches"] = [d for d in rl_dirs() if d.startswith(f"{R}/{REPORT_MODEL}/")]
    if "val_loss" in needs and not CFG.report.import_curves:
        files["sft"] = [f"{R}/{REPORT_MODEL}/sft/{r.data}" for r in _report_sft_runs()]
    if VAL_LOSS_FLAG.get(name) == "min-loss" and CFG.report.import_curves and CFG.report.import_min_loss:
        files["min_loss"] = CFG.report.import_min_loss      # imported per-set minimum losses (CSV)
    return files


def table_inputs(w):
    return _report_files(w.table)


def figure_inputs(w):
    return _report_files(w.figure)


def report_args(name):
    files = _report_files(name)
    args = [f"--{key} {shlex.quote(files[key])}" for key in ("curves", "fits") if key in files]
    args += [f"--branch {shlex.quote(d)}" for d in files.get("branches", [])]
    flag = VAL_LOSS_FLAG.get(name, "val-loss")
    if "sft" in files:
        args += [f"--{flag} {shlex.quote(f'{r.data}={R}/{REPORT_MODEL}/sft/{r.data}/val_loss.json')}"
                 for r in _report_sft_runs()]
    if "min_loss" in files:
        args.append(f"--min-loss {shlex.quote(files['min_loss'])}")
    return " ".join(args)
