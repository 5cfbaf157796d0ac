"""Config validation: every shipped config loads; bad configs fail naming the key."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from plasticity.config import ConfigError, load_config, validate

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [ROOT / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml")),
           ROOT / "tests" / "smoke" / "config.yaml"]


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name if p.parent.name != "smoke" else "smoke")
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.models and cfg.eval.benchmarks


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        validate(raw, "test.yaml")
    return str(exc.value)


def test_unknown_key_is_named(default):
    raw = copy.deepcopy(default)
    raw["sft"]["defaults"]["learning_rate"] = 1e-3
    msg = _error(raw)
    assert "test.yaml" in msg and "sft.defaults.learning_rate" in msg and "unknown key" in msg


def test_wrong_type_is_named(default):
    raw = copy.deepcopy(default)
    raw["rl"]["defaults"]["steps"] = "many"
    assert "rl.defaults.steps" in _error(raw)


def test_bad_switch_rule(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][0]["switch"] = "stabel"
    msg = _error(raw)
    assert "rl.branches.0.switch" in msg and "stabel" in msg


def test_switch_step_must_be_a_save_step(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][0]["switch"] = 250
    assert "not a save step" in _error(raw)


def test_branch_needs_an_sft_run(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][0]["sft_data"] = "hard"
    assert "no sft run for (tiny, hard)" in _error(raw)


def test_base_branch_needs_switch_zero(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][2]["switch"] = 200
    assert "needs switch 0" in _error(raw)


def test_save_steps_within_run(default):
    raw = copy.deepcopy(default)
    raw["sft"]["runs"][0]["save_steps"] = [100, 900]
    assert "save_steps" in _error(raw)


def test_names_cannot_escape_paths(default):
    raw = copy.deepcopy(default)
    raw["data"]["sets"]["../evil"] = {"kind": "uniform", "size": 10}
    assert "set name" in _error(raw)


def test_hub_model_needs_revision(default):
    raw = copy.deepcopy(default)
    raw["models"]["big"] = {"source": "hub", "hub_id": "Qwen/Qwen2.5-7B"}
    assert "models.big" in _error(raw) and "revision" in _error(raw)


def test_unknown_method(default):
    raw = copy.deepcopy(default)
    raw["rl"]["defaults"]["method"] = "ppo"
    assert "ppo" in _error(raw)


def test_dapo_d_has_symmetric_clipping():
    cfg = load_config(ROOT / "configs" / "paper-llama3.2-3b.yaml")
    branch = next(b for b in cfg.rl.branches if b.method == "dapo_d")
    settings = cfg.rl_settings(branch)
    assert settings["epsilon_high"] == settings["epsilon"] == 0.2
