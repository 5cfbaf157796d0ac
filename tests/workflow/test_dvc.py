"""dvc.yaml from the Snakemake DAG: deps are the rules' code inputs, what DVC versions of an SFT run, and a
module edit reruns the same phases under DVC and Snakemake (on a tree of placeholder outputs, seconds).

The round trip through the default remote between two clones of the built smoke study is
tests/workflow/test_dvc_roundtrip.py (slow).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from plasticity.codedeps import closure
from plasticity.config import load_config
from plasticity.dvc_yaml import ROOT, dag_jobs, job_outs, main as dvc_yaml_main, stages
from plasticity.phases import branch_steps, sft_run_outs

from dvc_clone import (clone_working_tree, dvc_changed_stages, dvc_outs, environment, sh, snakemake_planned,
                        stage_of)


@pytest.fixture(scope="module")
def default_stages():
    return stages()


@pytest.fixture(scope="module")
def default_jobs():
    return dag_jobs(None)


def _src(stage: dict) -> set[str]:
    return {d for d in stage["deps"] if d.startswith("src/")}


def test_stage_deps_are_the_code_inputs_of_their_jobs(default_stages, default_jobs):
    """Each stage's source deps are exactly the union of its jobs' code inputs (common.smk's ``code()``)."""
    jobs = default_jobs
    rl = next(j for j in jobs if j.rule == "rl")
    assert rl.code == [str(Path(p).relative_to(ROOT)) for p in closure("plasticity.train.rl")]
    covered = set()
    for name, stage in default_stages.items():
        assert _src(stage), name
        covered |= _src(stage)
    assert covered == {c for j in jobs for c in j.code}
    # the modules a hand list used to miss
    for module, phases in {"grading_fastpath.py": {"data", "eval", "rl"}, "models.py": {"sft", "eval", "rl"},
                           "train/sft.py": {"sft", "rl"}, "analysis/flops.py": {"rl"}}.items():
        having = {n for n, s in default_stages.items() if f"src/plasticity/{module}" in s["deps"]}
        assert phases <= having, (module, having)


def test_every_output_is_tracked_once(default_stages, default_jobs):
    """No job output is left out (stage configs included), none is out of two stages, metrics are cached."""
    outs = [next(iter(o)) for s in default_stages.values() for o in s["outs"] + s.get("metrics", [])]
    assert len(outs) == len(set(outs))
    tracked = set(outs)
    cfg = load_config(ROOT / "config.yaml")
    for job in default_jobs:
        assert set(job_outs(cfg, job)) <= tracked, job.rule
    assert "results/configs/sft/tiny/uniform.json" in tracked
    assert default_stages["report"]["metrics"] == [{"reports/metrics.json": {"persist": True}}]
    assert all(o[next(iter(o))] == {"persist": True} for s in default_stages.values() for o in s["outs"])


def test_sft_tracks_the_branch_points_weights_only():
    """Paper config (steps as switches): whole directories only for the checkpoints RL starts from."""
    cfg = load_config(ROOT / "configs" / "paper-qwen2.5-7b.yaml")
    run = cfg.sft_run("qwen2.5-7b", "Uniform220K")
    assert branch_steps(cfg, "qwen2.5-7b", "Uniform220K") == {215, 1505, 3432}
    outs = sft_run_outs(cfg, "r/sft/U", "qwen2.5-7b", "Uniform220K")
    dirs = {o for o in outs if o.rsplit("/", 1)[-1].startswith("checkpoint-")}
    assert dirs == {f"r/sft/U/checkpoint-{s}" for s in (215, 1505, 3432)}
    others = set(run.save_steps) - {215, 1505, 3432}
    assert others and all(f"r/sft/U/checkpoint-{s}/metrics.json" in outs for s in others)
    assert "r/sft/U/val_loss.json" in outs
    # a rule switch (config.yaml: min_val_loss) may resolve to any save step: all are tracked
    default = load_config(ROOT / "config.yaml")
    assert branch_steps(default, "tiny", "uniform") == set(default.sft_run("tiny", "uniform").save_steps)


def test_check_fails_on_a_stale_file(tmp_path):
    out = tmp_path / "dvc.yaml"
    assert dvc_yaml_main(["--out", str(out)]) == 0 and dvc_yaml_main(["--out", str(out), "--check"]) == 0
    out.write_text(out.read_text().replace("snakemake report", "snakemake all"))
    assert dvc_yaml_main(["--out", str(out), "--check"]) == 1


def _placeholder_outputs(clone: Path, jobs) -> None:
    """Every output of the default study as a small placeholder file or directory."""
    cfg = load_config(ROOT / "config.yaml")
    for job in jobs:
        for out in job.outputs:
            if out in job.directories:
                (clone / out).mkdir(parents=True, exist_ok=True)
                (clone / out / "manifest.json").write_text(out + "\n")
            else:
                (clone / out).parent.mkdir(parents=True, exist_ok=True)
                (clone / out).write_text(out + "\n")
        for out in set(job_outs(cfg, job)) - set(job.outputs):   # an SFT run's tracked files
            path = clone / out
            if path.name.startswith("checkpoint-"):
                path.mkdir(parents=True, exist_ok=True)
                path = path / "model.safetensors"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(out + "\n")


@pytest.fixture(scope="module")
def placeholder_clone(tmp_path_factory, default_jobs):
    """A committed clone with every output present, Snakemake's and DVC's records of them current."""
    base = tmp_path_factory.mktemp("dvc-edit")
    env = environment(base / "home", clone := base / "clone")
    clone.mkdir()
    clone_working_tree(clone, env)
    _placeholder_outputs(clone, default_jobs)
    sh(["snakemake", "--touch", "--cores", "1"], clone, env)
    sh(["dvc", "commit", "-f", "-q"], clone, env)
    assert dvc_changed_stages(clone, env) == set() and snakemake_planned(clone, env) == []
    return clone, env


@pytest.mark.parametrize("module,phases", [("grading_fastpath.py", {"data", "eval", "rl"}),
                                           ("analysis/tables.py", {"report"})])
def test_a_module_edit_reruns_the_same_phases(placeholder_clone, module, phases):
    """The stages ``dvc status`` finds changed are the phases of the jobs Snakemake reruns because the
    edited module is among their inputs (downstream jobs rerun under both once those outputs change)."""
    clone, env = placeholder_clone
    edited = clone / "src" / "plasticity" / module
    text, stat = edited.read_text(), edited.stat()
    try:
        edited.write_text(text + "\n# edited\n")
        later = time.time() + 5
        os.utime(edited, (later, later))
        outs = dvc_outs(clone)
        planned = snakemake_planned(clone, env)
        direct = {stage_of(outputs[0], outs) for outputs, inputs in planned if str(edited) in inputs}
        assert direct == phases
        assert dvc_changed_stages(clone, env) == direct
    finally:
        edited.write_text(text)
        os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns))
