"""The pinned CPU kernel paths (plasticity.cpu_kernels): what decides the mode, that the libraries
report the pinned paths whatever the machine's environment asks for, and that the pin is what makes
a computation's bytes independent of the machine's own choice of kernels."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plasticity import cpu_kernels as ck

ROOT = Path(__file__).resolve().parents[2]
# what another machine's environment might ask for: its own ATen build, MKL branch and thread count
MACHINE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": "2", "OPENBLAS_CORETYPE": "Haswell"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ck.PORTABLE and k != ck.MODE_VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return {**env, **extra}


def _run(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_auto_is_portable_without_a_gpu_and_native_with_one(tmp_path):
    device = tmp_path / "nvidia0"
    device.touch()
    with_gpu = (str(tmp_path / "nvidia[0-9]*"),)
    without = (str(tmp_path / "kfd"),)
    assert ck.resolve_mode({}, without) == "portable"
    assert ck.resolve_mode({}, with_gpu) == "native"
    assert ck.resolve_mode({"CUDA_VISIBLE_DEVICES": "-1"}, with_gpu) == "portable"
    assert ck.resolve_mode({ck.MODE_VARIABLE: "portable"}, with_gpu) == "portable"
    assert ck.resolve_mode({ck.MODE_VARIABLE: "native"}, without) == "native"
    with pytest.raises(ck.CpuKernelError, match="PLASTICITY_CPU_KERNELS='fast'"):
        ck.resolve_mode({ck.MODE_VARIABLE: "fast"}, without)


def test_pin_overrides_the_environment_and_native_leaves_it():
    env = dict(MACHINE)
    assert ck.pin(env, device_globs=()) == "portable"
    assert {k: env[k] for k in ck.PORTABLE} == ck.PORTABLE and env[ck.MODE_VARIABLE] == "portable"
    env = {**MACHINE, ck.MODE_VARIABLE: "native"}
    assert ck.pin(env, device_globs=()) == "native"
    assert {k: env.get(k) for k in MACHINE} == MACHINE and "MKL_CBWR" in env and "NPY_DISABLE_CPU_FEATURES" not in env


def test_every_stage_process_reports_the_pinned_paths():
    """`python -m plasticity <stage>` pins before torch loads: ATen runs its baseline kernels, MKL its
    COMPATIBLE branch, OpenBLAS its Nehalem kernels, one thread, even where the environment asks for
    AVX2 kernels and two threads; with PLASTICITY_CPU_KERNELS=native the machine's own choice stands."""
    pinned = json.loads(_run(["-m", "plasticity", "cpu-kernels"], _env(**MACHINE)))
    assert pinned == {"mode": "portable", "aten_capability": "DEFAULT", "mkl_cbwr": "COMPATIBLE",
                      "openblas_core": "Nehalem", "torch_threads": 1,
                      "numpy_disabled": ck.PORTABLE["NPY_DISABLE_CPU_FEATURES"]}
    native = json.loads(_run(["-m", "plasticity", "cpu-kernels"], _env(**{ck.MODE_VARIABLE: "native"})))
    assert native["mode"] == "native" and native["mkl_cbwr"] == "OFF" and native["numpy_disabled"] is None


# one SGD step of a small MLP with softmax and layer norm: matmuls (MKL), elementwise and reduction
# kernels (ATen); prints the SHA-256 of the resulting weights
PROBE = """
import hashlib, sys
sys.path.insert(0, {src!r})
from plasticity.cpu_kernels import pin
pin()
import torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(96, 160), torch.nn.GELU(), torch.nn.LayerNorm(160),
                          torch.nn.Linear(160, 50))
x, y = torch.randn(300, 96), torch.randint(0, 50, (300,))
torch.nn.functional.cross_entropy(net(x).log_softmax(-1), y).backward()
with torch.no_grad():
    for p in net.parameters():
        p -= 0.1 * p.grad
print(torch.backends.cpu.get_cpu_capability(), hashlib.sha256(b"".join(
    p.detach().numpy().tobytes() for p in net.parameters())).hexdigest())
"""


def test_pinned_bytes_do_not_depend_on_the_kernels_the_machine_would_pick():
    """Emulated machines (this CPU's own kernels, or AVX2 ones forced by the environment) give one
    result under the pin. Without the pin the kernel path shows in the bytes: the baseline kernels
    and this CPU's vector kernels disagree, so the equality above is not vacuous."""
    probe = ["-c", PROBE.format(src=str(ROOT / "src"))]
    pinned = {_run(probe, _env(**machine)) for machine in ({}, MACHINE)}
    assert len(pinned) == 1 and next(iter(pinned)).startswith("DEFAULT ")
    native_cap, native_hash = _run(probe, _env(**{ck.MODE_VARIABLE: "native"})).split()
    if native_cap == "DEFAULT":
        pytest.skip("this CPU has no vector kernels beyond the baseline: nothing to tell apart")
    assert native_hash != next(iter(pinned)).split()[1]


def test_a_manifest_records_the_kernel_paths(tmp_path):
    from plasticity.io import read_json, write_manifest

    write_manifest(tmp_path, stage="probe")
    assert read_json(tmp_path / "manifest.json")["cpu_kernels"] == ck.describe()
