"""Helpers of the DVC tests: clones of the working tree, isolated from this machine's DVC and git set-up."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def environment(home: Path, clone: Path) -> dict[str, str]:
    """A HOME of its own (so ``~/.cache/plasticity/dvc-store``, DVC's global config and git's identity
    are the test's), the clone's sources first, every hub offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GIT_", "SNAKEMAKE_"))}
    env.update(HOME=str(home), PYTHONPATH=str(clone / "src"), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.org", GIT_COMMITTER_NAME="test",
               GIT_COMMITTER_EMAIL="test@example.org", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def sh(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} in {cwd}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout + out.stderr


def clone_working_tree(dest: Path, env: dict[str, str]) -> Path:
    """A git repository holding this working tree's files (tracked and new, as git sees them), committed."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    sh(["git", "init", "-q", "-b", "main"], dest, env)
    sh(["git", "add", "-A"], dest, env)
    sh(["git", "commit", "-q", "-m", "clone"], dest, env)
    return dest


def dvc_outs(clone: Path) -> dict[str, str]:
    """Every DVC out and metric of the clone's dvc.yaml -> its stage."""
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    return {next(iter(o)): name for name, s in stages.items() for o in s.get("outs", []) + s.get("metrics", [])}


def stage_of(path: str, outs: dict[str, str]) -> str:
    for out, stage in outs.items():
        if out == path or out.startswith(path.rstrip("/") + "/") or path.startswith(out + "/"):
            return stage
    raise AssertionError(f"{path}: no DVC stage outputs it")


def dvc_changed_stages(clone: Path, env: dict[str, str]) -> set[str]:
    status = json.loads(sh(["dvc", "status", "--json"], clone, env).strip().splitlines()[-1] or "{}")
    return {name.split(":")[-1] for name in status}


def snakemake_planned(clone: Path, env: dict[str, str], *args: str) -> list[tuple[list[str], list[str]]]:
    """(outputs, inputs) of every job a dry run plans."""
    text = sh(["snakemake", "-n", *args], clone, env)
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        outputs = re.search(r"^\s+output: (.+)$", block, re.M)
        inputs = re.search(r"^\s+input: (.+)$", block, re.M)
        if outputs:
            jobs.append(([p.strip() for p in outputs[1].split(",")],
                         [p.strip() for p in inputs[1].split(",")] if inputs else []))
    return jobs
