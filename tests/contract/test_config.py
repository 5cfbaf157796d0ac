"""Config validation: every shipped config loads; bad configs fail naming the key."""
from __future__ import annotations

import ast
import copy
import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from plasticity.config import Config, ConfigError, load_config, validate

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


def test_resources_name_job_rules(default):
    """`resources:` keys are rules with jobs of their own; training rules take theirs from `launch`."""
    raw = copy.deepcopy(default)
    raw["resources"] = {"filter": {"mem_gb": 64}, "sft": {"mem_gb": 8}}
    msg = _error(raw)
    assert "resources.sft" in msg and "resources.filter" not in msg
    raw["resources"] = {"filter": {"mem_gb": 64}}
    assert validate(raw, "test.yaml").job_request("filter").mem_gb == 64


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


def test_synchronized_method_needs_a_mix_set(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][0]["method"] = "luffy"
    msg = _error(raw)
    assert "rl.branches.0.prompts" in msg and "luffy" in msg and "kind mix" in msg


def test_upt_cannot_skip_updates_under_deepspeed(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][0].update(method="upt", prompts="mix", overrides={"launch": {"strategy": "zero3"}})
    msg = _error(raw)
    assert "rl.branches.0" in msg and "launch.strategy" in msg and "zero3" in msg


def test_indivisible_batch_names_key_and_numbers(default):
    raw = copy.deepcopy(default)
    raw["sft"]["runs"][0]["overrides"] = {"micro_batch_size": 3}
    msg = _error(raw)
    assert "sft.runs.0" in msg and "batch_size (sequences) = 32" in msg and "micro_batch_size = 3" in msg
    raw = copy.deepcopy(default)
    raw["rl"]["defaults"]["launch"] = {"processes_per_node": 3}
    msg = _error(raw)
    assert "rl.branches.0" in msg and "prompts_per_step = 16 does not divide over 3 processes" in msg


def test_generation_rounds_only_where_dynamic_sampling(default):
    raw = copy.deepcopy(default)
    raw["rl"]["branches"][0]["method"] = "grpo"
    raw["rl"]["branches"][0]["overrides"] = {"gen_prompts_per_round": 32}
    assert "has no dynamic sampling" in _error(raw)


def test_one_warmup_key(default):
    raw = copy.deepcopy(default)
    raw["sft"]["defaults"]["warmup_ratio"] = 0.1
    assert "warmup_steps or warmup_ratio" in _error(raw)


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    seen, todo = {}, [root]
    while todo:
        model = todo.pop()
        if model.__name__ not in seen:
            seen[model.__name__] = model
            todo += [t for f in model.model_fields.values() for t in _types(f.annotation)
                     if isinstance(t, type) and issubclass(t, BaseModel)]
    return seen


def _types(annotation) -> list:
    return [annotation, *(t for arg in typing.get_args(annotation) for t in _types(arg))]


def _read_names() -> set[str]:
    """Attribute names and string keys read by the stages, the rules, and the schema's own helpers.

    Validators do not count: checking a key is not using it.
    """
    names: set[str] = set()
    for path in (ROOT / "src" / "plasticity").rglob("*.py"):
        tree = ast.parse(path.read_text())
        in_schema = path.parent.name == "config"     # the schema package itself
        if in_schema:
            for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
                if any("validator" in ast.unparse(d) for d in fn.decorator_list):
                    fn.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and not in_schema:
                names.add(node.value)
    for path in (ROOT / "rules").glob("*.smk"):
        names.update(re.findall(r"\.(\w+)", path.read_text()))
    return names


def test_every_schema_key_is_read_by_something():
    """A key the config accepts and nothing reads is a defect: walk the schema, find each key's reader."""
    names = _read_names()
    unread = [f"{name}.{field}" for name, model in _models(Config).items() for field in model.model_fields
              if field not in names]
    assert not unread, f"schema keys no stage, rule or resolution helper reads: {unread}"
