"""Repeats of a study with other training seeds (config.train_seed, plasticity.seeds): the seed reaches
SFT, RL and evaluation sampling and nothing of the data world, the base model or the grading."""
from pathlib import Path

import pytest

from plasticity import seeds
from plasticity.config import load_config

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "configs" / "mini-study.yaml"
FIXED = [("teacher", "all"), ("ingest", "all"), ("filter", "all"), ("decontaminate", "all"),
         ("difficulty", "all"), ("subsets", "all"), ("benchmarks", "all"), ("tokenizer", "tiny"),
         ("base", "tiny"), ("grade", "all")]
VARIED = [("sft", "tiny/all"), ("rl", "tiny/all@200/dapo_dc"), ("rl", "tiny/none@0/luffy"), ("generate", "tiny")]


def _sections(cfg, keys):
    return [cfg.section(stage, key).model_dump(mode="json") for stage, key in keys]


def test_train_seed_varies_training_and_evaluation_only():
    study = load_config(MINI)
    repeat = load_config(MINI, {"train_seed": 7})
    assert _sections(repeat, FIXED) == _sections(study, FIXED)            # the data world stays
    for before, after in zip(_sections(study, VARIED), _sections(repeat, VARIED)):
        assert before["seed"] == study.seed and after["seed"] == 7
        assert {**after, "seed": study.seed} == before                      # nothing else moves
    # train_seed equal to seed is the study itself: the same sections, so Snakemake reuses its results
    assert _sections(load_config(MINI, {"train_seed": study.seed}), VARIED) == _sections(study, VARIED)


def test_commands_run_each_seed_in_its_own_directories_then_grade():
    cfg = load_config(MINI)
    cmds = seeds.commands(cfg, str(MINI), [1234, 5, 6], [], python="python")
    runs = [c for c in cmds if "snakemake" in c]
    assert [c[c.index("--config") + 1:] for c in runs] == [
        ["train_seed=1234", "results_dir=results-mini-study", "reports_dir=reports/mini-study"],
        ["train_seed=5", "results_dir=results-mini-study-seed5", "reports_dir=reports/mini-study/seeds/seed5"],
        ["train_seed=6", "results_dir=results-mini-study-seed6", "reports_dir=reports/mini-study/seeds/seed6"]]
    publish = [c for c in cmds if c[2:4] == ["plasticity", "publish"]]
    assert [c[c.index("--out") + 1] for c in publish] == ["reports/mini-study", "reports/mini-study/seeds/seed5",
                                                           "reports/mini-study/seeds/seed6"]
    findings = cmds[-1]
    assert findings[2:4] == ["plasticity", "findings"] and findings[-1] == "reports/mini-study/findings"
    assert [findings[i + 1] for i, a in enumerate(findings) if a == "--bundle"] == \
        ["reports/mini-study", "reports/mini-study/seeds/seed5", "reports/mini-study/seeds/seed6"]


def test_the_default_study_publishes_into_reports_default():
    """The embedded default's reports/ holds DVC outputs: its bundles go under reports/default."""
    cfg = load_config(ROOT / "config.yaml")
    cmds = seeds.commands(cfg, "config.yaml", [cfg.seed, 5], [], python="python")
    runs = [c[c.index("--config") + 1:] for c in cmds if "snakemake" in c]
    assert runs == [[f"train_seed={cfg.seed}", "results_dir=results", "reports_dir=reports"],
                    ["train_seed=5", "results_dir=results-seed5", "reports_dir=reports/default/seeds/seed5"]]
    publish = [c[c.index("--out") + 1] for c in cmds if c[2:4] == ["plasticity", "publish"]]
    assert publish == ["reports/default", "reports/default/seeds/seed5"]
    assert cmds[-1][-1] == "reports/default/findings"


def test_a_repeated_seed_is_refused(capsys):
    assert seeds.main(["--configfile", str(MINI), "--seeds", "1", "1", "--dry-run"]) == 2
    assert "repeated" in capsys.readouterr().err


@pytest.mark.parametrize("extra,profile", [([], ["--profile", "profiles/local"]), (["--profile", "p"], [])])
def test_snakemake_arguments_pass_through(extra, profile):
    cmd = seeds.commands(load_config(MINI), str(MINI), [9], extra, python="python")[0]
    assert cmd[3:3 + len(profile)] == profile and cmd[cmd.index("--config") - len(extra):cmd.index("--config")] == extra


def test_the_claims_config_is_the_mini_study_with_fewer_branches():
    """configs/mini-study-claims.yaml: the mini study's data world, base and SFT runs byte for byte, and
    a subset of its RL branches (those the graded findings need), so its seeds grade the mini study."""
    import yaml

    mini = yaml.safe_load(MINI.read_text(encoding="utf-8"))
    claims = yaml.safe_load((ROOT / "configs" / "mini-study-claims.yaml").read_text(encoding="utf-8"))
    own = {"results_dir", "reports_dir", "rl"}
    assert {k: v for k, v in claims.items() if k not in own} == {k: v for k, v in mini.items() if k not in own}
    assert claims["rl"]["defaults"] == mini["rl"]["defaults"]
    branches = claims["rl"]["branches"]
    assert branches and all(b in mini["rl"]["branches"] for b in branches)
    assert len(branches) < len(mini["rl"]["branches"])
    # what the findings need: an Adaptive and the Stable checkpoint of `all`, pure RL, synchronized methods
    assert {"all@200", "all@min_val_loss", "none@0"} <= {f"{b['sft_data']}@{b['switch']}" for b in branches}
    assert {b.get("method") for b in branches} >= {"luffy", "srft", "upt", "prefix_rft", "chord"}
    cfg = load_config(ROOT / "configs" / "mini-study-claims.yaml")
    assert _sections(cfg, FIXED + [("sft", "tiny/all")]) == _sections(load_config(MINI), FIXED + [("sft", "tiny/all")])
