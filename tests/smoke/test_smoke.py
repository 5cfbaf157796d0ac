"""The whole DAG end to end on tests/smoke/config.yaml (about two minutes on 2 cores).

Asserts: the report's files exist, the outputs that matter equal the committed hashes of
tests/smoke/hashes.json (so every CI run, on whatever x86-64 machine it lands, checks that the pinned
CPU kernels give the same bytes there), trained weights changed (base -> SFT -> RL), a second run has
nothing to do, deleting one RL branch reruns that branch and the report only, and a run killed with
SIGKILL in the middle of an RL branch resumes from its last checkpoint to the same bytes.

After a change of numerics on purpose, rewrite the hashes with one command (it builds the smoke study):

    bash run.sh test tests/smoke/test_smoke.py -k hashes --update-hashes
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
HASHES = ROOT / "tests" / "smoke" / "hashes.json"
# the outputs that matter, relative to the smoke study's working directory: the data sets, every
# trained weight file, the validation losses, every evaluation, the RL curves, the report's inputs and
# its tables (figures are compared by the data they draw, tests/unit/test_analysis_figures.py)
HASHED = ("results-smoke/data/sets/*.parquet", "results-smoke/tiny/base/model.safetensors",
          "results-smoke/tiny/sft/*/checkpoint-*/model.safetensors", "results-smoke/tiny/sft/*/val_loss.json",
          "results-smoke/tiny/eval/**/summary.json", "results-smoke/tiny/rl/*/*/model/model.safetensors",
          "results-smoke/tiny/rl/*/*/curve.csv", "results-smoke/report/tiny/*.csv",
          "reports-smoke/tables/*", "reports-smoke/metrics.json")
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
    return smoke_study   # built once per session (tests/conftest.py), shared with the DVC round trip


def test_report_files_exist(study):
    reports = study / "reports-smoke"
    for name in ("tables/table4.md", "tables/table4.csv", "tables/table4.tex", "figures/figure3.png",
                 "metrics.json"):
        assert (reports / name).stat().st_size > 0, name


def output_hashes(workdir: Path) -> dict[str, str]:
    files = sorted({p for pattern in HASHED for p in workdir.glob(pattern) if p.is_file()})
    return {str(p.relative_to(workdir)): digest(p) for p in files}


def test_outputs_match_the_committed_hashes(study, request):
    """The same bytes as the committed build, on this machine whatever its CPU (plasticity.cpu_kernels
    pins the kernel paths). A mismatch names each file; if the numerics changed on purpose, rewrite
    the hashes (module docstring)."""
    from plasticity.cpu_kernels import MODE_VARIABLE

    if os.environ.get(MODE_VARIABLE) == "native":
        pytest.skip(f"{MODE_VARIABLE}=native: this machine's own kernels, not the committed bytes")
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and " fma" not in cpuinfo.read_text():
        pytest.skip("a CPU without FMA: glibc's scalar exp / log (the one kernel not pinned) may differ "
                    "in the last bit from the FMA machines the hashes were made on")
    hashes = output_hashes(study)
    assert len(hashes) >= 30 and any(k.endswith(".safetensors") for k in hashes)
    if request.config.getoption("--update-hashes"):
        HASHES.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
        return
    expected = json.loads(HASHES.read_text())
    differ = sorted(k for k in expected.keys() & hashes.keys() if expected[k] != hashes[k])
    assert not differ and hashes.keys() == expected.keys(), (
        f"differ: {differ}; only committed: {sorted(expected.keys() - hashes.keys())}; only built: "
        f"{sorted(hashes.keys() - expected.keys())}. Numerics changed on purpose? "
        "bash run.sh test tests/smoke/test_smoke.py -k hashes --update-hashes")


def test_publish_writes_the_report_bundle(study, tmp_path):
    """`plasticity publish` on the smoke study: tables and figures copied, the data behind them with
    standard errors, validation-loss regimes, the reading aids with their drawn data, provenance and
    the single-seed findings."""
    import csv

    from plasticity.analysis.drawn import read_png

    out = tmp_path / "bundle"
    proc = subprocess.run([sys.executable, "-m", "plasticity", "publish", "--configfile", str(CONFIG),
                           "--workdir", str(study), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for name in ("tables/table4.csv", "figures/figure3.png", "metrics.json", "data/fits.csv", "data/curves.csv",
                 "provenance.json", "findings.md"):
        assert (out / name).is_file(), name
    branches = list(csv.DictReader(open(out / "data" / "branch_curves.csv")))
    assert {(r["dataset"], r["switch"]) for r in branches} == {("pure_rl", "0"), ("train", "min_val_loss")}
    assert all(float(r["stderr"]) >= 0 for r in branches) and any(float(r["stderr"]) > 0 for r in branches)
    evals = [r for r in csv.DictReader(open(out / "data" / "sft_evals.csv")) if r["benchmark"] == "overall"]
    assert [(r["dataset"], r["step"]) for r in evals] == [("base", "0"), ("train", "20"), ("train", "40")]
    assert {r["n_problems"] for r in evals} == {"130"}        # 60 + 50 + 20 problems of the three suites
    summary = json.loads((study / "results-smoke" / "tiny" / "eval" / "base" / "scores" / "summary.json").read_text())
    assert float(evals[0]["accuracy"]) == pytest.approx(summary["micro"], abs=1e-4)
    regimes = {r["step"]: r["regime"] for r in csv.DictReader(open(out / "data" / "val_loss.csv"))}
    assert regimes["0"] == "adaptive" and regimes["40"] == "stable"
    assert len(read_png(out / "figures" / "branch_curves.png")["axes"]) == 2
    assert json.loads((out / "provenance.json").read_text())["cpu_kernels"] == "portable"
    assert "single seed" in (out / "findings.md").read_text()


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
