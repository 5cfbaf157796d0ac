"""Downloads run on the submit host; compute jobs read local files with the hub's offline switches set."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = {m[1]: m[2] for path in (ROOT / "rules").glob("*.smk")
         for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", path.read_text(), re.S | re.M)}


def test_only_local_rules_reach_the_hub():
    """The rules that fetch (download_model, download_source, benchmarks) are local rules; nothing else in
    the package imports a hub client outside plasticity.download and the benchmark fetcher it serves."""
    fetching = {name for name, body in RULES.items() if re.search(r"plasticity (download|benchmarks) ", body)}
    assert fetching == {"download_model", "download_source", "benchmarks"}
    assert all("localrule: True" in RULES[name] for name in fetching)
    importers = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src").rglob("*.py")
                 if re.search(r"^\s*from huggingface_hub import|^\s*import huggingface_hub", p.read_text(), re.M)}
    assert importers == {"plasticity/download.py", "plasticity/eval/loaders.py"}
    common = (ROOT / "rules" / "common.smk").read_text()
    assert 'OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")' in common
    assert re.search(r"envvars:\n(\s+.*\n)*?\s+\*OFFLINE,", common)   # passed to every cluster job


def test_slurm_dry_run_downloads_pinned_revisions_and_computes_from_local_copies(tmp_path):
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                          "-n", "-p", "--profile", str(ROOT / "profiles" / "slurm"),
                          "--configfile", str(ROOT / "configs" / "paper-qwen2.5-7b.yaml")],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    commands = re.findall(r"^Shell command: (.+)$", out.stdout, re.M)
    downloads = [c for c in commands if " plasticity download " in c]
    assert len(downloads) == 6                  # two models, three SFT sources, the RL source
    assert all(re.search(r"--revision [0-9a-f]{40}|--revision main", c) for c in downloads)
    assert "--repo Qwen/Qwen2.5-7B --revision d149729398750b98c0af14eb82c78cfe92750796 --type model" in " ".join(downloads)
    for stage, flag in (("tokenizer", "--snapshot"), ("base", "--snapshot"), ("ingest", "--downloads")):
        assert all(flag in c for c in commands if f" plasticity {stage} " in c), stage
