"""The launcher's command lines and the shipped accelerate configurations (no processes started)."""
from __future__ import annotations

import sys

import pytest
import yaml

from plasticity import launch
from plasticity.config import Launch


def test_single_process_runs_the_stage_directly():
    assert launch.launcher(Launch()) == "python -m plasticity"


def test_one_node_several_processes_goes_through_accelerate():
    assert launch.launcher(Launch(gpus_per_node=8, strategy="zero3")) == \
        "python -m plasticity.launch --procs 8 --strategy zero3 --"


def test_multi_node_runs_one_task_per_node_with_rendezvous_from_slurm():
    prefix = launch.launcher(Launch(nodes=2, gpus_per_node=8, strategy="fsdp", cpus_per_process=8), grace_s=900)
    # srun gets the node's CPUs itself (SLURM 22.05-23.02 steps do not inherit --cpus-per-task)
    assert prefix == ("srun --ntasks-per-node=1 --cpus-per-task=64 --kill-on-bad-exit=1 python -m plasticity.launch "
                      "--nodes 2 --procs 8 --strategy fsdp --grace 900 --")
    env = {"SLURM_JOB_ID": "4242", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    cmd = launch.accelerate_command(2, 8, "fsdp", ["sft", "--config", "C.json"], env)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    opts = dict(zip(cmd[3::2], cmd[4::2]))
    assert opts["--config_file"].endswith("configs/accelerate/fsdp.yaml")
    assert (opts["--num_machines"], opts["--num_processes"], opts["--machine_rank"]) == ("2", "16", "1")
    assert opts["--main_process_ip"] == "gpu07"          # the first host of the allocation
    assert opts["--main_process_port"] == str(launch.PORT_BASE + 4242 % launch.PORT_SPAN)
    assert cmd[-4:] == ["plasticity", "sft", "--config", "C.json"]


def test_multi_node_outside_slurm_is_an_error():
    with pytest.raises(RuntimeError, match="SLURM_NODEID"):
        launch.accelerate_command(2, 8, "fsdp", ["sft"], {"SLURM_JOB_ID": "1"})


def test_resources_follow_the_launch_settings():
    one_node = launch.job_resources(Launch(gpus_per_node=8, cpus_per_process=8, mem_gb_per_process=64))
    assert (one_node["gpu"], one_node["nodes"], one_node["cpus_per_task"], one_node["mem_mb"]) == (8, 1, 64, 8 * 64 * 1024)
    two_nodes = launch.job_resources(Launch(nodes=2, gpus_per_node=8))
    assert (two_nodes["gpu"], two_nodes["gres"], two_nodes["tasks"]) == (0, "gpu:8", 2)


@pytest.mark.parametrize("strategy,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("zero3", "DEEPSPEED")])
def test_shipped_accelerate_configs_load_as_their_strategy(strategy, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    path = launch.ACCELERATE_CONFIGS / f"{strategy}.yaml"
    cfg = load_config_from_file(str(path))
    assert str(cfg.distributed_type).rsplit(".", 1)[-1] == kind
    raw = yaml.safe_load(path.read_text())
    if strategy == "fsdp":   # full weights gathered on save: checkpoints are plain safetensors
        assert raw["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if strategy == "zero3":
        assert raw["deepspeed_config"]["zero_stage"] == 3 and raw["deepspeed_config"]["zero3_save_16bit_model"]
