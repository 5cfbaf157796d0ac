"""The workflow on SLURM through the executor plugin (snakemake-executor-plugin-slurm 2.8.0).

Without a cluster: the sbatch, srun and launcher lines the plugin produces for one paper SFT job
(configs/paper-qwen2.5-7b.yaml, S1K), captured with a fake ``sbatch`` on PATH that records its
arguments, and the README's cluster section, which must show exactly these lines.

With a cluster (``bash .ci/slurm-up`` starts a one-node one; skipped when no controller answers): the
smoke DAG through ``profiles/slurm-cpu`` with no further options, during which the SFT job is
``scancel``ed mid-run and an RL job gets the scheduler's SIGTERM (``scancel --signal=TERM``, what
``--signal=TERM@...`` sends before the time limit); both are retried to completion and every output
equals the local build's byte for byte.

To rewrite the README's block after a change of the lines: ``python tests/workflow/test_slurm.py``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SMOKE = ROOT / "tests" / "smoke" / "config.yaml"
PAPER, PAPER_SFT = "configs/paper-qwen2.5-7b.yaml", ("qwen2.5-7b", "S1K")
FAKE_JOB_ID, FAKE_NODES = "4242", "gpu[01-02]"
BEGIN, END = "<!-- slurm-lines: begin (tests/workflow/test_slurm.py) -->", "<!-- slurm-lines: end -->"

FAKE_SBATCH = """#!{python}
import json, os, sys
record = os.environ["FAKE_SBATCH_RECORD"]
with open(record + ".tmp", "w") as f:
    json.dump(sys.argv[1:], f)
os.replace(record + ".tmp", record)
print({job_id})
"""


def _snakemake(workdir: Path, profile: str, configfile: str | Path, *targets: str) -> list[str]:
    # targets first: --configfile takes every argument after it
    return [sys.executable, "-m", "snakemake", *targets, "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
            "--profile", str(ROOT / "profiles" / profile), "--configfile", str(configfile)]


# ------------------------------------------------------------------------ the lines, no cluster
def capture_paper_sft_lines(tmp: Path) -> str:
    """The README block: sbatch, the job's command (srun) and node 0's launcher line, for the paper SFT
    job, with the machine-specific parts named (working directory, run id, interpreter) and the
    ``--wrap`` payload (the plugin's own snakemake call for the one job) cut after its target."""
    model, data = PAPER_SFT
    workdir, fake = tmp / "work", tmp / "bin"
    results = workdir / "results-qwen2.5-7b"
    inputs = (results / model / "base", results / model / "tokens" / data / "16384",
              results / model / "tokens" / "Val-199" / "16384")
    for done in inputs:   # the job's inputs, as if built
        done.mkdir(parents=True)
        (done / "manifest.json").write_text("{}\n")
    fake.mkdir()
    (fake / "sbatch").write_text(FAKE_SBATCH.format(python=sys.executable, job_id=FAKE_JOB_ID))
    for tool in ("squeue", "sacct", "sacctmgr", "sinfo", "scontrol"):   # a site that answers nothing
        (fake / tool).write_text("#!/bin/sh\nexit 0\n")
    for tool in fake.iterdir():
        tool.chmod(0o755)
    record = tmp / "sbatch.json"
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "FAKE_SBATCH_RECORD": str(record)}
    proc = subprocess.Popen(_snakemake(workdir, "slurm", ROOT / PAPER, f"results-qwen2.5-7b/{model}/sft/{data}"),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 240
    while not record.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # the fake job never ends: stop waiting for it
    except ProcessLookupError:               # snakemake ended by itself (the assertion below says why)
        pass
    output = proc.communicate()[0]
    assert record.exists(), f"sbatch was not called:\n{output[-3000:]}"
    argv = json.loads(record.read_text())
    command = next(c for c in re.findall(r"^Shell command: (.+)$", output, re.M) if " sft --config " in c)
    srun = command.split(" > ")[0]

    # what node 0 runs: the launcher of the srun line, under the SLURM environment of the job
    launch_args = shlex.split(srun)[shlex.split(srun).index("plasticity.launch") + 1:]
    node_env = {**env, "SLURM_JOB_ID": FAKE_JOB_ID, "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": FAKE_NODES}
    launched = subprocess.run([sys.executable, "-m", "plasticity.launch", "--dry-run", *launch_args],
                              env=node_env, capture_output=True, text=True, cwd=workdir)
    strategy = launch_args[launch_args.index("--strategy") + 1]
    if launched.returncode and not (ROOT / "configs" / "accelerate" / f"{strategy}.yaml").is_file():
        node_line = f"# (no launcher line: configs/accelerate/{strategy}.yaml is not in this checkout)"
    else:
        assert launched.returncode == 0, launched.stderr
        node_line = launched.stdout.strip()

    wrap = next(a for a in argv if a.startswith("--wrap="))
    target = re.search(r"--target-jobs '([^']+)'", wrap)[1]
    argv = [f"--wrap=python -m snakemake --target-jobs {shlex.quote(target)} ..." if a == wrap else a
            for a in argv]
    # the interpreter first: it may live under the checkout ($REPO/.venv/bin/python)
    names = {sys.executable: "python", str(workdir): "$WORKDIR", str(ROOT): "$REPO"}
    run_id = argv[argv.index("--job-name") + 1]
    lines = "\n".join([
        "# submitted by the executor plugin (1 job, 2 nodes)",
        shlex.join(["sbatch", *argv]),
        "# the job's command (printed by snakemake; one task per node)",
        command,
        f"# what node 0 of {FAKE_NODES} runs (job {FAKE_JOB_ID})",
        node_line,
    ])
    for path, name in names.items():
        lines = lines.replace(path, name)
    return lines.replace(run_id, "$RUN_ID")


def readme_block(text: str) -> str:
    assert BEGIN in text and END in text, f"README.md has no {BEGIN} ... {END} block"
    body = text.split(BEGIN)[1].split(END)[0]
    return body.strip().removeprefix("```bash").removesuffix("```").strip()


@pytest.fixture(scope="module")
def paper_sft_lines(tmp_path_factory) -> str:
    return capture_paper_sft_lines(tmp_path_factory.mktemp("paper-sft"))


def test_paper_sft_job_asks_for_what_the_config_says(paper_sft_lines):
    """2 nodes x 8 GPUs, FSDP, 8 CPUs and 64 GB per process, 3 days, SIGTERM one step and one save
    before the limit (the plan's estimate, budget.timing), the same grace for the elastic agent."""
    from plasticity.budget import sft_budget
    from plasticity.config import load_config

    cfg = load_config(ROOT / PAPER)
    timing = sft_budget(cfg, cfg.sft_run(*PAPER_SFT)).timing
    sbatch = paper_sft_lines.splitlines()[1]
    for option in ("-p gpu", "-t 4320", "--mem 524288", "--nodes=2", "--ntasks=2", "--cpus-per-task=64",
                   "--gres=gpu:8", f"--signal=TERM@{timing.lead_s}", "--requeue"):
        assert f" {option} " in f" {sbatch} ", option
    assert " --gpus" not in sbatch   # GPUs per node via --gres, not a job-wide count
    assert (f"srun --ntasks-per-node=1 --cpus-per-task=64 --kill-on-bad-exit=1 python -m plasticity.launch --nodes 2 "
            f"--procs 8 --strategy fsdp --grace {timing.grace_s} --") in paper_sft_lines
    assert "--threads 64" in paper_sft_lines
    if (ROOT / "configs" / "accelerate" / "fsdp.yaml").is_file():
        assert "--num_machines 2 --num_processes 16" in paper_sft_lines and "--machine_rank 0" in paper_sft_lines


def test_readme_shows_the_captured_lines(paper_sft_lines):
    text = README.read_text()
    assert readme_block(text) == paper_sft_lines, \
        "README.md's cluster lines differ from what the plugin produces: python tests/workflow/test_slurm.py"
    assert text.count(paper_sft_lines) == 1 and text.count(BEGIN) == 1


def test_default_requests_fit_a_small_node(tmp_path):
    """Without `resources:` or launch settings in the config, no job asks for more than 2 CPUs, 4 GB or a
    GPU, and none names a partition: the smoke DAG fits a 2-core CI machine."""
    out = subprocess.run(_snakemake(tmp_path, "slurm-cpu", SMOKE) + ["-n"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    requests = [dict(kv.split("=", 1) for kv in line.split(", "))
                for line in re.findall(r"^\s+resources: (.+)$", out.stdout, re.M)]
    assert len(requests) > 20
    for request in requests:
        assert int(request.get("mem_mb", 0)) <= 4096 and int(request.get("cpus_per_task", 1)) <= 2, request
        assert int(request.get("gpu", 0)) == 0 and "slurm_partition" not in request, request


def test_every_job_rule_has_a_request():
    """Each rule that runs as its own job is a training rule or has a `resources:` entry (JOB_RULES)."""
    from plasticity.config import JOB_RULES

    text = "\n".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    blocks = re.split(r"^\s*rule (\w+):", text, flags=re.M)[1:]
    jobs = {name for name, body in zip(blocks[::2], blocks[1::2])
            if "localrule: True" not in body and "\n    run:" not in body}
    assert jobs - {"sft", "rl"} == set(JOB_RULES)


# ------------------------------------------------------------------------ a real cluster
def _slurm(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None:
        pytest.skip("no SLURM client on PATH (bash .ci/slurm-up installs and starts a one-node cluster)")
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0 or \
            not _slurm("sinfo", "-h", "-o", "%t").split():
        pytest.skip("no SLURM controller answers (bash .ci/slurm-up starts a one-node cluster)")


def _running(comment_prefix: str) -> str | None:
    """The id of a running job of this workflow whose comment (rule and wildcards) starts so."""
    for line in _slurm("squeue", "-h", "-t", "RUNNING", "-o", "%i %k").splitlines():
        job_id, _, comment = line.partition(" ")
        if comment.startswith(comment_prefix):
            return job_id
    return None


@pytest.fixture(scope="module")
def slurm_study(cluster, smoke_study, tmp_path_factory):
    """The smoke DAG through profiles/slurm-cpu; the SFT job is cancelled once its stage runs, the RL
    branch from the base gets SIGTERM once it has saved a checkpoint."""
    workdir = tmp_path_factory.mktemp("slurm")
    log = workdir.parent / f"{workdir.name}.log"
    sft_log = workdir / "results-smoke" / "logs" / "tiny" / "sft" / "train.log"
    checkpoint = workdir / "results-smoke" / "tiny" / "rl" / "none@0" / ".dapo_dc.partial" / ".trainer" / \
        "checkpoint-1" / "branch_state.json"
    events: dict[str, str] = {}
    with log.open("w") as out:
        proc = subprocess.Popen(_snakemake(workdir, "slurm-cpu", SMOKE), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.time() + 1500
        while proc.poll() is None and time.time() < deadline:
            if "cancel" not in events and sft_log.is_file() and sft_log.stat().st_size:
                if job := _running("rule_sft_"):
                    _slurm("scancel", job)
                    events["cancel"] = job
            if "term" not in events and checkpoint.is_file():
                if job := _running("rule_rl_wildcards_tiny_none_0_"):
                    _slurm("scancel", "--signal=TERM", job)
                    events["term"] = job
            time.sleep(0.1)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, text[-6000:]
    return workdir, events, text


def submissions(text: str, job: str) -> int:
    """How often the workflow submitted the job whose slurm log folder is ``job`` (rule/wildcards)."""
    return len(re.findall(rf"has been submitted with SLURM jobid \d+ \(log: \S+/slurm_logs/{re.escape(job)}/", text))


def _outputs(workdir: Path) -> dict[str, bytes]:
    found = {}
    for top in ("results-smoke", "reports-smoke"):
        for path in sorted((workdir / top).rglob("*")):
            rel = path.relative_to(workdir).as_posix()
            if path.is_file() and not rel.startswith("results-smoke/logs/"):
                found[rel] = path.read_bytes()
    return found


@pytest.mark.slurm
@pytest.mark.slow
def test_cancelled_job_is_retried(slurm_study):
    workdir, events, text = slurm_study
    assert "cancel" in events, "the SFT job ended before it could be cancelled"
    state = _slurm("sacct", "-n", "-X", "-j", events["cancel"], "-o", "State%40").strip()
    assert state.startswith("CANCELLED"), state
    assert submissions(text, "rule_sft/tiny_train") == 2, "the cancelled SFT job was not retried"


@pytest.mark.slurm
@pytest.mark.slow
def test_sigterm_reaches_the_stage_which_saves_and_resumes(slurm_study):
    workdir, events, text = slurm_study
    assert "term" in events, "the RL job ended before it got SIGTERM"
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs").rglob(f"{events['term']}.log"))
    first = slurm_logs[0].read_text()
    # the stage itself (exec'd by the rule's shell) handled the signal: saved, then exit status 143
    assert "returned non-zero exit status 143" in first, first[-3000:]
    assert submissions(text, "rule_rl/tiny_none_0_dapo_dc") == 2, "the SIGTERMed RL job was not retried"


@pytest.mark.slurm
@pytest.mark.slow
def test_outputs_equal_the_local_build(slurm_study, smoke_study):
    workdir, _, _ = slurm_study
    local, remote = _outputs(smoke_study), _outputs(workdir)
    assert sorted(remote) == sorted(local)
    differ = [name for name in local if local[name] != remote[name]]
    assert not differ, f"{len(differ)} of {len(local)} outputs differ from the local build: {differ[:10]}"


if __name__ == "__main__":   # rewrite the README's block from a fresh capture
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lines = capture_paper_sft_lines(Path(tmp))
    text = README.read_text()
    head, rest = text.split(BEGIN, 1)
    README.write_text(f"{head}{BEGIN}\n```bash\n{lines}\n```\n{END}{rest.split(END, 1)[1]}")
    print(lines)
