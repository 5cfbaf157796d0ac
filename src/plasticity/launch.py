"""How a training job is launched and what it asks the scheduler for, from its ``launch`` settings.

The config sets GPUs, nodes and processes once (``sft.defaults.launch``, ``rl.defaults.launch``, per
run overrides); the rules take from here both the SLURM resources of the job (``job_resources``)
and the command prefix that starts the stage (``launcher``):

- one process: ``python -m plasticity <stage> ...``
- one node, several processes: ``python -m plasticity.launch --procs P --strategy S --grace G -- <stage> ...``,
  which runs ``accelerate launch`` with the shipped configuration ``configs/accelerate/<S>.yaml``
- several nodes: the same under ``srun --ntasks-per-node=1 --cpus-per-task=C``: one task per node,
  each running accelerate for its node's processes (srun is given the node's CPUs: SLURM 22.05 to
  23.02 do not pass ``--cpus-per-task`` from the allocation to a step); the rendezvous comes from
  the SLURM environment (the first host of the allocation, a port derived from the job id, the
  node's rank from ``SLURM_NODEID``).

Preemption (``train.preemption``): the launcher stays the parent of accelerate's elastic agent and its
workers, which run in a process group of their own. SIGTERM (or SIGINT, SIGUSR1) to the launcher is
sent once to that whole group; the agent would kill the workers ``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``
seconds after it forwards the signal (30 by default), so the launcher sets it to ``--grace``: the
plan's time for one step plus one checkpoint write (``budget.timing``). The launcher then waits
until every process of the group has exited (a worker still saving outlives an agent that gave up)
and exits 143, the code a retry resumes from; without a signal it exits with accelerate's code.

By hand, to see the command a node would run::

    SLURM_JOB_ID=42 SLURM_NODEID=1 SLURM_JOB_NODELIST=gpu[01-02] \\
        python -m plasticity.launch --nodes 2 --procs 8 --strategy fsdp --dry-run -- sft --config C.json
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from plasticity.train.preemption import SIGTERM_EXIT

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "accelerate"
PORT_BASE, PORT_SPAN = 20000, 20000   # rendezvous port: PORT_BASE + job id mod PORT_SPAN


def job_resources(launch: Any) -> dict[str, Any]:
    """SLURM resources (executor plugin keys) for a job with these launch settings.

    Every value is given for every job so the rule can declare each key once: ``mpi`` marks a
    multi-node job (the plugin then runs the shell command, which calls srun itself, once per
    allocation); ``gres`` asks for GPUs per node there, ``gpu`` for a single-node job's GPUs;
    ``tasks_per_gpu = 0`` keeps the plugin from deriving a task geometry from the GPU count.
    """
    multi = launch.nodes > 1
    gpus = launch.gpus_per_node
    return {
        "nodes": launch.nodes,
        "tasks": launch.nodes,
        "tasks_per_gpu": 0,
        "mpi": "srun" if multi else "",
        "gpu": 0 if multi else gpus,
        "gres": f"gpu:{gpus}" if multi and gpus else "",
        "cpus_per_task": threads_per_node(launch),
        "mem_mb": int(launch.mem_gb_per_process * launch.procs_per_node * 1024),
    }


def threads_per_node(launch: Any) -> int:
    """CPUs a node's task asks for: ``cpus_per_process`` for each of its processes."""
    return launch.cpus_per_process * launch.procs_per_node


def launcher(launch: Any, grace_s: int | None = None) -> str:
    """The shell prefix that runs ``<stage> <args>`` with these launch settings (see module docstring);
    ``grace_s``: how long the workers may take to save after SIGTERM (``--grace``)."""
    if launch.world_size == 1:
        return "python -m plasticity"
    args = [f"--procs {launch.procs_per_node}", f"--strategy {launch.strategy}"]
    if grace_s:
        args.append(f"--grace {int(grace_s)}")
    if launch.nodes == 1:
        return f"python -m plasticity.launch {' '.join(args)} --"
    return (f"srun --ntasks-per-node=1 --cpus-per-task={threads_per_node(launch)} --kill-on-bad-exit=1 "
            f"python -m plasticity.launch --nodes {launch.nodes} {' '.join(args)} --")


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (``scontrol show hostnames``; a plain parse without it)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                             check=True).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.CalledProcessError):
        pass
    match = re.match(r"([^\[,]+)(?:\[(\d+)[^\]]*\])?", nodelist)
    if not match:
        raise ValueError(f"cannot parse SLURM_JOB_NODELIST {nodelist!r}")
    return match[1] + (match[2] or "")


def accelerate_command(nodes: int, procs: int, strategy: str, stage_args: list[str],
                       env: dict[str, str]) -> list[str]:
    """The ``accelerate launch`` command of this node, rendezvous taken from the SLURM environment."""
    config = ACCELERATE_CONFIGS / f"{strategy}.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{config}: no accelerate configuration for strategy {strategy!r}")
    # No `--cpu` for CPU processes: accelerate would start one process; the stage itself joins the
    # job on CPU where there is no GPU (train.trainer_config.process_state).
    # this interpreter's accelerate (the `accelerate` script need not be on PATH)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
           "--num_machines", str(nodes), "--num_processes", str(nodes * procs)]
    if nodes > 1:
        missing = [k for k in ("SLURM_JOB_ID", "SLURM_NODEID", "SLURM_JOB_NODELIST") if k not in env]
        if missing:
            raise RuntimeError(f"a {nodes}-node launch runs under srun: {missing} not set")
        cmd += ["--machine_rank", env["SLURM_NODEID"], "--main_process_ip", first_host(env["SLURM_JOB_NODELIST"]),
                "--main_process_port", str(PORT_BASE + int(env["SLURM_JOB_ID"]) % PORT_SPAN),
                "--rdzv_backend", "static", "--same_network"]
    else:
        # several single-node jobs may share a machine: a port of this job, not accelerate's default
        cmd += ["--main_process_port", str(PORT_BASE + int(env.get("SLURM_JOB_ID", os.getpid())) % PORT_SPAN)]
    return cmd + ["-m", "plasticity", *stage_args]


FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
DEFAULT_GRACE_S = 30          # torch elastic's own default


def supervise(cmd: list[str], grace_s: int, poll_s: float = 0.2) -> int:
    """Run ``cmd`` in a process group of its own, forward the first stop signal to the whole group,
    wait for every process of it, and return 143 if a signal came, else the command's exit code."""
    env = {**os.environ, "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(int(grace_s))}
    child = subprocess.Popen(cmd, env=env, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if not received:
            print(f"plasticity.launch: {signal.Signals(signum).name}: passed to the workers, which save and "
                  f"stop within {grace_s} s", file=sys.stderr, flush=True)
            _signal_group(child.pid, signum)
        received.append(signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    code = child.wait()
    deadline = time.monotonic() + grace_s + 30
    while _group_alive(child.pid) and time.monotonic() < deadline:   # workers still saving
        time.sleep(poll_s)
    if _group_alive(child.pid):
        _signal_group(child.pid, signal.SIGKILL)
    return SIGTERM_EXIT if received else code


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plasticity.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--procs", type=int, required=True, help="processes on this node")
    parser.add_argument("--strategy", choices=("ddp", "fsdp", "zero3"), required=True)
    parser.add_argument("--grace", type=int, default=DEFAULT_GRACE_S,
                        help="seconds the workers may take to save after SIGTERM (default 30)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("stage", nargs=argparse.REMAINDER, help="-- <stage> <stage args>")
    args = parser.parse_args(argv)
    stage = args.stage[1:] if args.stage[:1] == ["--"] else args.stage
    if not stage:
        parser.error("give the stage and its arguments after --")
    cmd = accelerate_command(args.nodes, args.procs, args.strategy, stage, dict(os.environ))
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    sys.stdout.flush()
    return supervise(cmd, args.grace)


if __name__ == "__main__":
    raise SystemExit(main())
