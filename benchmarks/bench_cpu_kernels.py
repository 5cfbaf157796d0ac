"""What pinning the CPU kernels costs (plasticity.cpu_kernels): portable against native, same work.

Two workloads, each run in fresh processes alternating the modes (PLASTICITY_CPU_KERNELS=portable /
native; with ``--parts`` also native plus one pinned variable, MKL_CBWR=COMPATIBLE or
ATEN_CPU_CAPABILITY=default, to see which pin costs what), so that the machine's load drifts over all
alike:

- ``train``: SFT steps of the embedded default's model (Qwen2, hidden 128, 4 layers, batch 32 x 100
  tokens, AdamW) through ``python -m plasticity cpu-kernels``'s pin, one thread: the kernels a training
  stage spends its time in; reports seconds per step (wall) and the CPU seconds of the process;
- ``smoke`` (``--smoke``): the whole smoke DAG (tests/smoke/config.yaml, 2 cores) in a fresh working
  directory per run: wall time and the CPU time of all its processes.

    python benchmarks/bench_cpu_kernels.py [--repeats 3] [--steps 20] [--parts] [--smoke]

Prints one JSON line per run and a summary (medians). Results: reports/benchmarks.md, "Pinned CPU kernels".
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN = """
import sys, time
sys.path.insert(0, {src!r})
from plasticity.cpu_kernels import pin
pin()
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = Qwen2Config(vocab_size=64, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=512, max_position_embeddings=160)
model = Qwen2ForCausalLM(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 64, (32, 100))
for i in range({steps} + 2):
    if i == 2:
        t = time.perf_counter()
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    opt.zero_grad()
print((time.perf_counter() - t) / {steps})
"""


# mode -> (PLASTICITY_CPU_KERNELS, extra variables)
MODES = {"native": ("native", {}), "portable": ("portable", {}),
         "mkl-only": ("native", {"MKL_CBWR": "COMPATIBLE"}), "aten-only": ("native", {"ATEN_CPU_CAPABILITY": "default"})}


def _env(mode: str) -> dict[str, str]:
    kernels, extra = MODES[mode]
    env = {k: v for k, v in os.environ.items() if k != "PLASTICITY_CPU_KERNELS"}
    env.update(PLASTICITY_CPU_KERNELS=kernels, PYTHONPATH=str(ROOT / "src"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", **extra)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_train(mode: str, steps: int) -> dict:
    before = _children_cpu()
    out = subprocess.run([sys.executable, "-c", TRAIN.format(src=str(ROOT / "src"), steps=steps)],
                         env=_env(mode), capture_output=True, text=True, check=True)
    return {"workload": "train", "mode": mode, "s_per_step": float(out.stdout.strip()),
            "cpu_s": _children_cpu() - before}


def run_smoke(mode: str) -> dict:
    before = _children_cpu()
    with tempfile.TemporaryDirectory() as work:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", work,
                        "--configfile", str(ROOT / "tests" / "smoke" / "config.yaml"), "--cores", "2", "-q"],
                       env=_env(mode), capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t
    return {"workload": "smoke", "mode": mode, "wall_s": wall, "cpu_s": _children_cpu() - before}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--smoke", action="store_true", help="also time the smoke DAG per mode")
    p.add_argument("--parts", action="store_true", help="also native with only MKL's or only ATen's pin")
    args = p.parse_args()
    runs = []
    modes = list(MODES) if args.parts else ["native", "portable"]
    for _ in range(args.repeats):
        for mode in modes:
            runs.append(run_train(mode, args.steps))
            print(json.dumps(runs[-1]), flush=True)
            if args.smoke and mode in ("native", "portable"):
                runs.append(run_smoke(mode))
                print(json.dumps(runs[-1]), flush=True)
    print(f"load average at the end: {os.getloadavg()}")
    for workload, key in (("train", "s_per_step"), ("smoke", "wall_s")):
        med = {m: {k: statistics.median(r[k] for r in runs if r["workload"] == workload and r["mode"] == m)
                   for k in (key, "cpu_s")}
               for m in modes if any(r["workload"] == workload and r["mode"] == m for r in runs)}
        for m, values in med.items():
            ratio = {k: round(values[k] / med["native"][k], 2) for k in (key, "cpu_s")}
            print(f"{workload} {m}: median {values}, / native {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
