"""`python -m plasticity plan`: effective settings and cost of every training job, before anything runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plan_of_the_qwen_matrix():
    out = subprocess.run([sys.executable, "-m", "plasticity", "plan", "--configfile",
                          str(ROOT / "configs" / "paper-qwen2.5-7b.yaml"), "--json"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    jobs = {j["name"]: j for j in result["jobs"]}
    keys = {"rule", "name", "world_size", "per_device_batch", "grad_accum", "global_batch", "lr", "warmup_steps",
            "adam_betas", "weight_decay", "precision", "ef", "gpu_hours", "checkpoint_gb"}
    assert all(keys <= set(j) for j in result["jobs"])
    sft = jobs["qwen2.5-7b/sft/SFT889K"]
    assert (sft["world_size"], sft["per_device_batch"], sft["grad_accum"], sft["global_batch"]) == (16, 4, 8, 512)
    assert sft["warmup_steps"] == 1408 and sft["adam_betas"] == [0.9, 0.95] and sft["precision"] == "bf16"
    assert abs(sft["ef"] - 1365.6) / 1365.6 < 0.01      # PAPER.md 5.3: 1365.6 EF at step 14080
    rl = jobs["qwen2.5-7b/rl/SFT889K@7200/dapo_dc"]
    assert (rl["global_batch"], rl["completions_per_step"], rl["world_size"]) == (64, 512, 8)
    assert rl["study"]["global_batch"] == 64 and rl["ef"] > 0 and rl["gpu_hours"] > 0
    totals = result["totals"]
    assert totals["jobs"]["sft"] == 7 and totals["jobs"]["rl"] == 58 and totals["jobs"]["generate"] == 105
    assert totals["sft_ef"] == sum(j["ef"] for j in result["jobs"] if j["rule"] == "sft")
    assert totals["gpu_hours"] > 0 and totals["checkpoint_gb"] > 0 and result["errors"] == []
    # the memory and time model (plasticity.budget) per job
    for job in result["jobs"]:
        assert {"host_mem_gb_per_rank", "gpu_mem_gb", "checkpoint_gb", "resume_state_gb", "segments"} <= set(job)
        assert job["gpu_mem_gb"] <= 80 and job["segments"] >= 1
    assert sft["segments"] == 2                       # 14,080 steps take more than one 72 h job
    assert rl["rl_gen_hours"] > rl["rl_train_hours"] > 0 and rl["hours"] == rl["rl_gen_hours"] + rl["rl_train_hours"]
    assert rl["vllm"]["kv_cache_gb"] > rl["vllm"]["one_sequence_gb"]


def test_plan_fails_a_job_that_does_not_fit(tmp_path):
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "paper-qwen2.5-7b.yaml").read_text())
    raw["rl"]["defaults"]["micro_batch_size"] = 8
    raw["rl"]["defaults"]["vllm_enable_sleep_mode"] = False
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(raw))
    out = subprocess.run([sys.executable, "-m", "plasticity", "plan", "--configfile", str(tmp_path / "big.yaml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 1
    assert "plan: rl.branches.*.micro_batch_size: about" in out.stderr and "exceeds cluster.gpu_mem_gb 80" in out.stderr
    assert "(entries 0, 1, 2," in out.stderr
