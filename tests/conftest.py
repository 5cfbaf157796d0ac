"""Shared pytest setup: markers for GPU-only tests, the repository root, offline hubs, the smoke study."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plasticity import cpu_kernels

ROOT = Path(__file__).resolve().parents[1]
# The test process runs on the kernels every stage process runs on (``python -m plasticity`` pins them
# first): tests compare stages run in this process with stages run in child processes byte for byte,
# and children inherit this environment. Pinned here, before any test imports torch or numpy.
cpu_kernels.pin()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_addoption(parser):
    parser.addoption("--update-hashes", action="store_true",
                     help="rewrite tests/smoke/hashes.json from this run's smoke study instead of comparing "
                          "(after a change of numerics on purpose)")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_slurm = pytest.mark.skip(reason="needs a SLURM cluster (sbatch)")
    cuda = None
    for item in items:
        if "gpu" in item.keywords:
            cuda = _has_cuda() if cuda is None else cuda
            if not cuda:
                item.add_marker(skip_gpu)
        if "slurm" in item.keywords and shutil.which("sbatch") is None:
            item.add_marker(skip_slurm)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random tiny Qwen2 model (96-token context) with the miniature's tokenizer, saved as safetensors."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from plasticity.models import build_tiny_tokenizer, save_model_and_tokenizer

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=64, max_position_embeddings=96,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None,
                      tie_word_embeddings=True)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # make EOS likely enough that some samples stop early
        model.lm_head.weight[tok.eos_token_id] *= 0.0
        model.model.embed_tokens.weight[tok.eos_token_id] += 0.5
    out = tmp_path_factory.mktemp("tiny")
    save_model_and_tokenizer(model, tok, out)
    return out


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory) -> Path:
    """The whole DAG on tests/smoke/config.yaml, built once per session in a working directory of its own.
    tests/smoke checks it (and leaves it complete after its reruns); the DVC round trip copies it; the
    SLURM test compares a cluster run with it."""
    workdir = tmp_path_factory.mktemp("smoke")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          "--configfile", str(ROOT / "tests" / "smoke" / "config.yaml"), "--cores", "2"],
                         capture_output=True, text=True, timeout=900)
    logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in (workdir / "results-smoke" / "logs").rglob("*.log")) \
        if out.returncode else ""
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:] + logs
    return workdir
