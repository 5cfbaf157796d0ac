"""The CPU kernel paths of a stage process: pinned, so the miniature gives the same bytes on any x86-64.

Torch, MKL, oneDNN, numpy and OpenBLAS each pick their kernels per CPU at run time (AVX2 here,
AVX-512 on another machine, MKL's own branch per vendor), and thread counts change the order of
reductions: the same cell rebuilt on another machine then differs in the last bits of its weights, and
a few hundred optimizer steps later in its accuracies. ``pin`` sets, before torch or numpy is imported
(``plasticity.cli`` calls it first), the environment variables that fix every path to one that every
x86-64 machine runs:

=========================  ==========================  ===================================================
variable                   value                       what it pins (read at first use by the library)
=========================  ==========================  ===================================================
ATEN_CPU_CAPABILITY        default                     ATen's vectorized kernels: the baseline build
                                                       instead of the AVX2 / AVX-512 one
MKL_CBWR                   COMPATIBLE                  MKL's conditional numerical reproducibility: the
                                                       one branch MKL keeps alike on Intel and other
                                                       vendors' CPUs (``AVX2`` falls back to MKL's own
                                                       per-CPU choice on AMD: measured, ``CNR:AUTO``)
ONEDNN_MAX_CPU_ISA         SSE41                       oneDNN's JIT kernels (also as DNNL_MAX_CPU_ISA)
NPY_DISABLE_CPU_FEATURES   X86_V3 X86_V4 AVX512_...    numpy's SIMD dispatch: its baseline (SSE4.2) loops
OPENBLAS_CORETYPE          Nehalem                     numpy's / scipy's OpenBLAS: the SSE4.2 kernels, the
                                                       level numpy itself requires
OMP_NUM_THREADS,           1                           intra-op threads where a stage does not set them;
MKL_NUM_THREADS,                                       the training stages set torch's from their
OPENBLAS_NUM_THREADS                                   configured ``--threads``, never from the machine
=========================  ==========================  ===================================================

What is not pinned, and why: the C library's libm (scalar ``exp``/``log`` of the baseline kernels)
selects an FMA variant on CPUs that have FMA, so a machine without FMA (older than 2013) may differ in
the last bit; glibc and every Python package are part of the environment (``requirements.txt``, the
image), not of the machine. pyarrow's SIMD level is left alone: the data phase does integer and string
work whose results do not depend on it.

Modes, from ``PLASTICITY_CPU_KERNELS``:

- ``auto`` (default): ``portable`` unless the process can see a GPU (an NVIDIA or AMD device node),
  where CPU kernels carry no training numerics and must not slow the data loading and grading;
- ``portable``: always pin (the values above override the caller's);
- ``native``: leave every library to choose (the fastest kernels of this CPU, machine-dependent bytes).

``describe()`` is what a stage's manifest records; ``effective()`` asks the loaded libraries what they
actually run (``python -m plasticity cpu-kernels`` prints it), which ``tests/unit/test_cpu_kernels.py``
checks against the pin.

Measured cost (``benchmarks/bench_cpu_kernels.py``; reports/benchmarks.md, "Pinned CPU kernels").
"""
from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path
from typing import Mapping, MutableMapping

MODE_VARIABLE = "PLASTICITY_CPU_KERNELS"
MODES = ("auto", "portable", "native")
PORTABLE: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "DNNL_MAX_CPU_ISA": "SSE41",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Nehalem",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
# MKL's CNR branch codes (mkl_cbwr.h) as mkl_cbwr_get(MKL_CBWR_BRANCH) reports them
MKL_BRANCHES = {0: "OFF", 1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1",
                8: "SSE4_2", 9: "AVX", 10: "AVX2", 12: "AVX512", 14: "AVX512_E1"}
GPU_DEVICE_GLOBS = ("/dev/nvidia[0-9]*", "/dev/kfd")


class CpuKernelError(ValueError):
    """An unknown PLASTICITY_CPU_KERNELS value."""


def gpu_visible(environ: Mapping[str, str] = os.environ, device_globs=GPU_DEVICE_GLOBS) -> bool:
    """Whether this process can see a GPU, without importing torch (which must not load first).

    A device node of an NVIDIA (``/dev/nvidia0``...) or AMD (``/dev/kfd``) driver, unless
    ``CUDA_VISIBLE_DEVICES`` hides every device (empty or ``-1``)."""
    if environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return any(glob.glob(pattern) for pattern in device_globs)


def resolve_mode(environ: Mapping[str, str] = os.environ, device_globs=GPU_DEVICE_GLOBS) -> str:
    """``portable`` or ``native`` for this process (``auto`` decided by ``gpu_visible``)."""
    mode = environ.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise CpuKernelError(f"{MODE_VARIABLE}={environ[MODE_VARIABLE]!r}: expected one of {MODES}")
    if mode == "auto":
        return "native" if gpu_visible(environ, device_globs) else "portable"
    return mode


def pin(environ: MutableMapping[str, str] = os.environ, device_globs=GPU_DEVICE_GLOBS) -> str:
    """Set the portable kernel paths in ``environ`` (see the module docstring); returns the mode.

    Must run before torch, numpy or scipy is imported: they read these variables once. A warning goes
    to stderr when one of them is loaded already, since the pin then may not hold for it."""
    mode = resolve_mode(environ, device_globs)
    if mode == "portable":
        environ.update(PORTABLE)
        loaded = [name for name in ("torch", "numpy", "scipy") if name in sys.modules]
        if loaded and environ is os.environ:
            print(f"warning: {', '.join(loaded)} imported before the CPU kernels were pinned; "
                  "their kernel paths may not be the portable ones", file=sys.stderr)
    environ[MODE_VARIABLE] = mode        # child processes (grader pools, torchrun workers) inherit it
    return mode


def describe(environ: Mapping[str, str] = os.environ) -> dict[str, str | None]:
    """The mode and the kernel variables as this process runs with them (for a manifest)."""
    return {"mode": environ.get(MODE_VARIABLE), **{k: environ.get(k) for k in PORTABLE}}


def effective() -> dict[str, object]:
    """What the loaded libraries report they run: ATen's capability, MKL's CNR branch, torch's thread
    count, OpenBLAS's core and numpy's disabled dispatch targets. Imports torch and numpy."""
    import ctypes

    import numpy as np
    import torch

    torch.ones(2) @ torch.ones(2)           # MKL reads MKL_CBWR on its first call
    out: dict[str, object] = {"mode": os.environ.get(MODE_VARIABLE),
                              "aten_capability": torch.backends.cpu.get_cpu_capability(),
                              "torch_threads": torch.get_num_threads()}
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        get = lib.mkl_serv_cbwr_get
        get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
        code = get(1)                        # MKL_CBWR_BRANCH
        out["mkl_cbwr"] = MKL_BRANCHES.get(code, str(code))
    except (OSError, AttributeError):
        out["mkl_cbwr"] = None               # a torch build without MKL
    libs = glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "libscipy_openblas*.so"))
    try:
        openblas = ctypes.CDLL(libs[0])
        corename = openblas.scipy_openblas_get_corename64_
        corename.restype = ctypes.c_char_p
        out["openblas_core"] = corename().decode()
    except (IndexError, OSError, AttributeError):
        out["openblas_core"] = None
    out["numpy_disabled"] = os.environ.get("NPY_DISABLE_CPU_FEATURES")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m plasticity cpu-kernels``: print ``effective()`` as JSON."""
    import argparse

    argparse.ArgumentParser(prog="python -m plasticity cpu-kernels",
                            description="Print the CPU kernel paths this process runs "
                                        f"({MODE_VARIABLE}=auto|portable|native).").parse_args(argv)
    print(json.dumps(effective(), sort_keys=True))
    return 0
