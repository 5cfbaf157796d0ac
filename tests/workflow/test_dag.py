"""The DAG: dry runs of every config, lint, dvc.yaml in sync, targets build only what they need."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, cwd: Path = ROOT) -> str:
    out = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


def job_counts(text: str) -> dict[str, int]:
    block = text.split("Job stats:")[1].split("Reasons:")[0] if "Job stats:" in text else ""
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_default_dry_run(tmp_path):
    jobs = job_counts(snakemake("-n", "--config", f"results_dir={tmp_path}/r", f"reports_dir={tmp_path}/p"))
    assert jobs["rl"] == 3 and jobs["sft"] == 1 and jobs["generate"] == 5 and jobs["table"] == 4 and jobs["figure"] == 2


@pytest.mark.parametrize("name,sft,rl,evals", [("paper-qwen2.5-7b.yaml", 7, 58, 105), ("mini-study.yaml", 4, 23, 17),
                                               ("paper-llama3.2-3b.yaml", 5, 11, 61)])
def test_paper_dry_runs(tmp_path, name, sft, rl, evals):
    jobs = job_counts(snakemake("-n", "--configfile", f"configs/{name}",
                                "--config", f"results_dir={tmp_path}/r", f"reports_dir={tmp_path}/p"))
    assert (jobs["sft"], jobs["rl"], jobs["generate"], jobs["grade"]) == (sft, rl, evals, evals)


@pytest.mark.parametrize("configfile,suite", [("configs/paper-qwen2.5-7b.yaml", "data/decontaminated/benchmarks"),
                                              ("config.yaml", "benchmarks")])
def test_every_evaluation_reads_the_configured_suite(tmp_path, configfile, suite):
    """With benchmark_side (the paper configs) generate, grade and rl read the cleaned suite."""
    out = snakemake("-n", "-p", "--configfile", configfile, "--config", f"results_dir={tmp_path}/r",
                    f"reports_dir={tmp_path}/p")
    commands = re.findall(r"(?:plasticity|--) (generate|grade|rl) .*?--benchmarks (\S+)", out)
    assert {rule for rule, _ in commands} == {"generate", "grade", "rl"}
    assert {path for _, path in commands} == {f"{tmp_path}/r/{suite}"}


def test_only_synchronized_methods_read_expert_trajectories(tmp_path):
    """The paradigm comparison: 7 methods x 2 starts on the mix set; --experts only for LUFFY, SRFT, UPT,
    Prefix-RFT and CHORD, and it is the branch's own (mix) prompt file."""
    out = snakemake("-n", "-p", "--configfile", "configs/mini-study.yaml", "--config", f"results_dir={tmp_path}/r",
                    f"reports_dir={tmp_path}/p")
    by_method: dict[str, list[tuple[str, str]]] = {}
    for line in re.findall(r"plasticity rl [^\n]*", out):
        method = re.search(r"--out \S+/rl/[^/\s]+/(\w+)", line)[1]
        experts = re.search(r"--experts (\S+)", line)
        by_method.setdefault(method, []).append((re.search(r"--prompts (\S+)", line)[1],
                                                 experts[1] if experts else None))
    for method in ("luffy", "srft", "upt", "prefix_rft", "chord"):
        assert len(by_method[method]) == 2
        assert all(p.endswith("/mix.parquet") and e == p for p, e in by_method[method])
    for method in ("grpo", "dapo_d", "dapo_dc"):
        assert all(e is None for _, e in by_method[method])


def test_a_grader_change_reruns_grading_only(tmp_path):
    """generate and grade read separate config sections: changing the grader leaves the samples alone."""
    configs = [f"{tmp_path}/r/configs/generate/tiny.json", f"{tmp_path}/r/configs/grade/all.json"]
    snakemake(*configs, "--cores", "1", "--config", f"results_dir={tmp_path}/r")
    out = snakemake("-n", *configs, "--config", f"results_dir={tmp_path}/r", "eval={grader: {timeout_s: 9}}")
    planned = set(re.findall(r"^\s+output: (\S+)", out, re.M))
    assert planned == {configs[1]}, out


def test_smoke_config_dry_run(tmp_path):
    jobs = job_counts(snakemake("-n", "--configfile", "tests/smoke/config.yaml",
                                "--config", f"results_dir={tmp_path}/r", f"reports_dir={tmp_path}/p"))
    assert jobs["rl"] == 2


def test_table_target_builds_only_its_inputs(tmp_path):
    jobs = job_counts(snakemake("-n", f"{tmp_path}/p/tables/table4.md", "--config",
                                f"results_dir={tmp_path}/r", f"reports_dir={tmp_path}/p"))
    assert jobs.get("table") == 1
    assert "figure" not in jobs and "metrics" not in jobs and "rl" in jobs


def test_lint_clean():
    out = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition" in out


def test_every_wildcard_is_constrained():
    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    used = set(re.findall(r"\{\{(\w+)\}\}", text))
    constrained = set(re.findall(r"^\s+(\w+)=", text.split("wildcard_constraints:")[1].split("\n\n")[0], re.M))
    assert used and used <= constrained, used - constrained


def test_dvc_yaml_in_sync():
    out = subprocess.run([sys.executable, "-m", "plasticity", "dvc-yaml", "--check"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_dvc_targets_exist():
    from plasticity.phases import PHASES
    rules = set(snakemake("--list").split())
    assert {p.target for p in PHASES} <= rules


REFERENCE = ROOT / "reference"


def test_import_path_renders_the_studys_curves(tmp_path):
    """The study's published curves (shipped in reference/), imported as the README says, rebuild the
    committed reference Tables 4 and 5 (byte for byte) and Figure 3: the data it draws, read from the
    PNGs' drawn-data records (analysis.drawn; a fitted curve's last bits may differ between CPUs, its
    anti-aliased pixels with them), and the image size."""
    from PIL import Image

    from plasticity.analysis.drawn import compare, read_png

    report = f"report={{import_curves: {REFERENCE / 'retu_curves.csv'}, " \
             f"import_hparams: {REFERENCE / 'retu_branches.csv'}, import_min_loss: {REFERENCE / 'min_val_loss.csv'}}}"
    out = snakemake("-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "1",
                    "p/tables/table4.md", "p/tables/table5.md", "p/figures/figure3.png",
                    "--configfile", str(ROOT / "configs" / "paper-qwen2.5-7b.yaml"),
                    "--config", report, "reports_dir=p")
    assert "Error" not in out
    committed = ROOT / "reports" / "reference"
    for name in ("tables/table4.md", "tables/table5.md"):
        assert (tmp_path / "p" / name).read_bytes() == (committed / name.split("/")[1]).read_bytes()
    built, ref = tmp_path / "p" / "figures" / "figure3.png", committed / "figure3.png"
    assert compare(read_png(built), read_png(ref)) == []
    assert Image.open(built).size == Image.open(ref).size


def test_slurm_profile_parses(tmp_path):
    """The SLURM profile's keys are valid for the installed executor plugin (dry run, no cluster)."""
    jobs = job_counts(snakemake("--profile", "profiles/slurm", "-n", "-d", str(tmp_path),
                                "--configfile", str(ROOT / "configs" / "paper-qwen2.5-7b.yaml")))
    assert jobs["rl"] == 58
