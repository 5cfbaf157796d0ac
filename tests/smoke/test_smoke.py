"""The whole DAG end to end on tests/smoke/config.yaml (about two minutes on 2 cores).

Asserts: the report's files exist, trained weights changed (base -> SFT -> RL), a second run has
nothing to do, deleting one RL branch reruns that branch and the report only, and a run killed with
SIGKILL in the middle of an RL branch resumes from its last checkpoint to the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "tests" / "smoke" / "config.yaml"
REPORT_JOBS = {"curves", "fits", "table", "figure", "metrics", "all"}

pytestmark = pytest.mark.slow


def _cmd(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
            "--configfile", str(CONFIG), "--cores", "2", *args]


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> str:
    out = subprocess.run(_cmd(workdir, *args), capture_output=True, text=True, timeout=timeout)
    logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in (workdir / "results-smoke" / "logs").rglob("*.log")) \
        if out.returncode else ""
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:] + logs
    return out.stdout + out.stderr


def planned_jobs(workdir: Path) -> set[str]:
    text = snakemake(workdir, "-n", "--quiet", "rules")
    return {m[1] for m in re.finditer(r"^(\w+)\s+\d+$", text, re.M)} - {"total"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def study(smoke_study) -> Path:
    return smoke_study


def test_report_files_exist(study):
    reports = study / "reports-smoke"
    for name in ("tables/table4.md", "tables/table4.csv", "tables/table4.tex", "figures/figure3.png",
                 "metrics.json"):
        assert (reports / name).stat().st_size > 0, name


def test_weights_changed(study):
    r = study / "results-smoke" / "tiny"
    base = digest(r / "base" / "model.safetensors")
    sft = digest(r / "sft" / "train" / "checkpoint-40" / "model.safetensors")
    rl = digest(r / "rl" / "none@0" / "dapo_dc" / "model" / "model.safetensors")
    log = [json.loads(line) for line in (r / "rl" / "none@0" / "dapo_dc" / "train_log.jsonl").open()]
    # RL updates only on groups with mixed rewards (dynamic sampling): the smoke base has some
    assert sum(step["kept_groups"] for step in log) > 0
    assert len({base, sft, rl}) == 3


def test_second_run_has_nothing_to_do(study):
    assert "Nothing to be done" in snakemake(study, "-n")
    assert planned_jobs(study) == set()


def test_deleting_a_branch_reruns_it_and_the_report_only(study):
    branch = study / "results-smoke" / "tiny" / "rl" / "none@0" / "dapo_dc"
    shutil.rmtree(branch)
    assert planned_jobs(study) == {"rl"} | REPORT_JOBS


def test_branch_killed_at_a_random_step_resumes_to_the_same_bytes(study):
    """kill -9 the whole run once the branch has checkpointed a random step; the rerun resumes from that
    checkpoint and ends with the uninterrupted branch's weights and curve, byte for byte."""
    branch = study / "results-smoke" / "tiny" / "rl" / "none@0" / "dapo_dc"
    if not (branch / "manifest.json").is_file():   # an earlier test deleted it: the uninterrupted run
        snakemake(study)
    reference = {name: (branch / name).read_bytes() for name in ("model/model.safetensors", "curve.csv")}
    shutil.rmtree(branch)
    partial = branch.with_name(f".{branch.name}.partial")
    step = random.SystemRandom().choice([1, 2])    # of the smoke branch's 3 steps, checkpointed every step
    proc = subprocess.Popen(_cmd(study), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    done = partial / ".trainer" / f"checkpoint-{step}" / "branch_state.json"
    deadline = time.time() + 600
    while time.time() < deadline and not done.exists() and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done.exists() and not (branch / "manifest.json").exists(), f"not killed after step {step}"
    snakemake(study, "--unlock")
    snakemake(study)
    assert (branch / "manifest.json").is_file() and not partial.exists()
    for name, data in reference.items():
        assert (branch / name).read_bytes() == data, f"{name} differs after a kill at step {step}"
    assert planned_jobs(study) == set()


def test_html_report(study):
    html = study / "report.html"
    snakemake(study, "--report", str(html))
    text = html.read_text(errors="replace")
    assert "table4" in text and "figure3" in text
