"""What the project installs: requirements.txt carries what it imports, extras what configs turn on."""
from __future__ import annotations

import ast
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from plasticity import features
from plasticity.config import load_config

ROOT = Path(__file__).resolve().parents[2]
# Installed for what they run, not for an import.
NOT_IMPORTED = {"snakemake-executor-plugin-slurm": "loaded by snakemake's --executor slurm",
                "dvc": "the dvc command (repro, push, pull)", "pytest": "the test runner"}


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [re.split(r"[=<>\[ ]", line, 1)[0] for line in lines if line.strip() and not line.startswith("#")]


def _imported_modules() -> set[str]:
    found: set[str] = set()
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    for path in (ROOT / "rules").glob("*.smk"):
        found.update(re.findall(r"^\s*(?:from|import) (\w+)", path.read_text(), re.M))
    return found


def _top_level(dist: str) -> set[str]:
    return {module for module, dists in metadata.packages_distributions().items()
            if any(d.lower().replace("_", "-") == dist.lower().replace("_", "-") for d in dists)}


def test_every_requirement_is_imported_by_the_project():
    imported = _imported_modules()
    unused = [name for name in _requirements()
              if name not in NOT_IMPORTED and not (_top_level(name) & imported)]
    assert not unused, f"requirements.txt pins packages nothing imports: {unused}"


def test_every_optional_module_has_a_pinned_extra_and_every_extra_a_use():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = {extra: {re.split(r"==", req)[0].lower().replace("_", "-") for req in reqs} for extra, reqs in extras.items()}
    assert all("==" in req for reqs in extras.values() for req in reqs), "extras must pin their versions"
    dist_of = {"liger_kernel": "liger-kernel", "flash_attn": "flash-attn"}
    for module, extra in features.EXTRAS.items():
        assert dist_of.get(module, module) in pinned[extra], f"{module}: not pinned in the extra {extra!r}"
    declared = {dist_of.get(m, m) for m in features.EXTRAS}
    assert set().union(*pinned.values()) <= declared, "an extra pins a package no config key turns on"


def test_needs_name_schema_keys():
    from plasticity.config import Eval, RlBranchSettings, SftRunSettings

    for need in features.TRAINING_NEEDS:
        root = need.key.split(".")[0]
        assert root in SftRunSettings.model_fields or root in RlBranchSettings.model_fields, need.key
    assert all(n.key in Eval.model_fields for n in features.BACKEND_NEEDS)


def test_a_missing_package_names_the_key_and_the_extra(monkeypatch):
    cfg = load_config(ROOT / "configs" / "paper-qwen2.5-7b.yaml")
    monkeypatch.setattr(features, "importable", lambda module: module != "liger_kernel")
    settings = cfg.sft_settings(cfg.sft.runs[0])
    with pytest.raises(RuntimeError, match=r"sft\.liger: needs the package 'liger_kernel' \(pip install -e '\.\[gpu\]'\)"):
        features.require(settings, "sft")
    assert features.config_warnings(cfg) == [
        "sft.runs.*.liger: needs the package 'liger_kernel' (pip install -e '.[gpu]') (entries 0, 1, 2, 3, 4, 5, 6)"]
    monkeypatch.setattr(features, "importable", lambda module: True)
    features.require(settings, "sft")
    assert features.config_warnings(cfg) == []


def test_the_stage_checks_before_the_model_loads(monkeypatch, tmp_path):
    """The sft stage fails on a missing package before it touches its inputs (none exist here)."""
    from plasticity.config import SftSection
    from plasticity.train import sft

    cfg = load_config(ROOT / "configs" / "paper-qwen2.5-7b.yaml")
    section = cfg.section("sft", "qwen2.5-7b/S1K")
    assert isinstance(section, SftSection)
    monkeypatch.setattr(features, "importable", lambda module: module != "flash_attn")
    with pytest.raises(RuntimeError, match="sft.padding_free: needs the package 'flash_attn'"):
        sft.run(section, tmp_path / "no-base", tmp_path / "no-train", tmp_path / "no-val", tmp_path / "out")
