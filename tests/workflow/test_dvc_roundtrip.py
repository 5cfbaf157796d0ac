"""The README's DVC round trip on the built smoke study, between two clones sharing one HOME:

clone A holds the study (copied from the session's smoke build), `dvc repro` records it (Snakemake has
nothing to do), `dvc push` sends it to the default remote; clone B, a fresh `git clone` of A, runs
`dvc pull` and the documented re-sync (`snakemake --touch`), after which Snakemake plans nothing, `dvc
status` is clean and every tracked file equals A's byte for byte. Nothing is left out: B has every file of
A's study but the logs.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from dvc_clone import clone_working_tree, dvc_changed_stages, environment, sh, snakemake_planned

pytestmark = pytest.mark.slow

CONFIG = "tests/smoke/config.yaml"
STUDY_DIRS = ("results-smoke", "reports-smoke")


def _files(clone: Path) -> dict[str, bytes]:
    """The study's files, less Snakemake's bookkeeping (.dvcignore) and the logs (each machine's own:
    not versioned, and `snakemake --touch` writes empty ones)."""
    return {p.relative_to(clone).as_posix(): p.read_bytes()
            for d in STUDY_DIRS for p in sorted((clone / d).rglob("*"))
            if p.is_file() and p.name != ".snakemake_timestamp" and not p.is_relative_to(clone / "results-smoke" / "logs")}


def test_push_pull_between_clones(smoke_study, tmp_path):
    home = tmp_path / "home"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    env = environment(home, a)
    clone_working_tree(a, env)
    sh(["python", "-m", "plasticity", "dvc-yaml", "--config", CONFIG], a, env)
    sh(["git", "add", "dvc.yaml"], a, env)
    sh(["git", "commit", "-q", "--allow-empty", "-m", "dvc.yaml of the smoke study"], a, env)
    for name in STUDY_DIRS:
        shutil.copytree(smoke_study / name, a / name, symlinks=True)
    sh(["snakemake", "--touch", "--configfile", CONFIG], a, env)
    assert snakemake_planned(a, env, "--configfile", CONFIG) == []

    repro = sh(["dvc", "repro"], a, env)
    assert "Nothing to be done" in repro and "Finished job" not in repro, repro[-3000:]
    assert dvc_changed_stages(a, env) == set()
    sh(["dvc", "push"], a, env)
    assert (home / ".cache" / "plasticity" / "dvc-store" / "files" / "md5").is_dir()
    sh(["git", "add", "dvc.lock"], a, env)
    sh(["git", "commit", "-q", "-m", "results of the smoke study"], a, env)
    assert sh(["git", "status", "--porcelain"], a, env).strip() == ""   # DVC left nothing for git

    env_b = environment(home, b)
    sh(["git", "clone", "-q", str(a), str(b)], tmp_path, env_b)
    sh(["dvc", "pull"], b, env_b)
    touch = sh(["snakemake", "--touch", "--configfile", CONFIG], b, env_b)
    assert "missing" not in touch.lower() and "warning" not in touch.lower(), touch[-3000:]
    assert snakemake_planned(b, env_b, "--configfile", CONFIG) == []
    assert dvc_changed_stages(b, env_b) == set()
    assert sh(["git", "status", "--porcelain"], b, env_b).strip() == ""

    ours, theirs = _files(a), _files(b)
    assert set(theirs) == set(ours)
    assert all(theirs[n] == ours[n] for n in theirs), [n for n in theirs if theirs[n] != ours[n]]
    metrics = yaml.safe_load((b / "dvc.yaml").read_text())["stages"]["report"]["metrics"]
    assert (b / next(iter(metrics[0]))).read_bytes() == (a / "reports-smoke" / "metrics.json").read_bytes()
