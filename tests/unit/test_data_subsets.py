"""Named sets: sizes, val disjointness, win-rate pools, source/from_set, RL and MIX, pool-too-small."""
import pyarrow.parquet as pq
import pytest

from plasticity import schema as S
from plasticity.data import subsets
from plasticity.data.filters import MATCHED
from plasticity.data.tables import write_rows


def traj(i, wr, source="am"):
    return {"problem_id": f"p{i}", "source": source, "source_file": f"{source}/f", "source_row": i, "domain": "math",
            "teacher": "r1", "prompt": f"{i}+0=", "response": "<think>x</think>\\boxed{1}", "reference_answer": "1",
            "win_rate_small": wr, "win_rate_mid": None, "win_rate_teacher": None}


def rl(i):
    return {"problem_id": f"r{i}", "source": "sky", "source_file": "sky/x", "source_row": i, "prompt": f"RL {i}",
            "reference_answer": "1", "difficulty": 0.5}


@pytest.fixture()
def data_dir(tmp_path):
    rates = [1.0, 0.75, 0.5, 0.25, 0.0, None]
    rows = [traj(i, rates[i % 6]) for i in range(300)] + [traj(300 + i, None, "s1k") for i in range(10)]
    write_rows(tmp_path / "in" / "trajectories.parquet", rows, S.TRAJECTORY)
    write_rows(tmp_path / "in" / "rl_prompts.parquet", [rl(i) for i in range(50)], S.RL_PROMPT)
    matched = [{**traj(1000 + i, 1.0), "prompt": f"rl {i}", "response": f"<think>{'x' * i}</think>\\boxed{{1}}",
                "response_tokens": 10 + i} for i in range(0, 50, 2)]
    write_rows(tmp_path / "in" / "rl_matched.parquet", matched, MATCHED)
    return tmp_path / "in"


SETS = {
    "val": {"kind": "val", "size": 20},
    "all": {"kind": "all"},
    "uniform": {"kind": "uniform", "size": 100},
    "easy": {"kind": "easy", "size": 30, "min_win_rate": 1.0, "max_win_rate": 1.0},
    "hard": {"kind": "hard", "size": 40, "max_win_rate": 0.25},
    "s1k": {"kind": "source", "source": "s1k"},
    "uni_small": {"kind": "uniform", "size": 10, "from_set": "uniform"},
    "rl": {"kind": "rl", "size": 40},
    "mix": {"kind": "mix", "max_response_tokens": 40},
}


def ids(out, name):
    return pq.read_table(out / f"{name}.parquet").column("problem_id").to_pylist()


def table(out, name):
    return pq.read_table(out / f"{name}.parquet").to_pylist()


def test_sets(tmp_path, data_dir):
    out = tmp_path / "sets"
    counts = subsets.run(SETS, data_dir, out, seed=7)
    val = set(ids(out, "val"))
    assert len(val) == 20
    for name in ("all", "uniform", "easy", "hard", "s1k", "uni_small"):
        assert not val & set(ids(out, name)), name
    assert len(ids(out, "all")) == 310 - 20
    assert len(ids(out, "uniform")) == 100 and len(set(ids(out, "uniform"))) == 100
    assert all(r["win_rate_small"] == 1.0 for r in table(out, "easy")) and len(ids(out, "easy")) == 30
    assert all(r["win_rate_small"] <= 0.25 for r in table(out, "hard")) and len(ids(out, "hard")) == 40
    assert set(ids(out, "s1k")) <= {f"p{300 + i}" for i in range(10)}
    assert set(ids(out, "uni_small")) <= set(ids(out, "uniform")) and len(ids(out, "uni_small")) == 10
    assert len(ids(out, "rl")) == 40
    mix = table(out, "mix")
    assert pq.read_schema(out / "mix.parquet") == S.MIX
    rl_prompts = {r["prompt"] for r in table(out, "rl")}
    assert mix and all(r["prompt"] in rl_prompts for r in mix)          # drawn from the rl set
    assert all(int(r["prompt"].split()[1]) <= 30 for r in mix)            # response_tokens <= 40
    assert all(r["response"].startswith("<think>") for r in mix)
    assert counts["mix"]["from_set"] == "rl"
    # rows keep input order
    assert ids(out, "uniform") == sorted(ids(out, "uniform"), key=lambda p: int(p[1:]))


def test_deterministic_and_independent_of_other_sets(tmp_path, data_dir):
    subsets.run(SETS, data_dir, tmp_path / "a", seed=7)
    subsets.run(SETS, data_dir, tmp_path / "b", seed=7)
    for name in SETS:
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()
    fewer = {k: v for k, v in SETS.items() if k in ("val", "easy")}
    subsets.run(fewer, data_dir, tmp_path / "c", seed=7)
    assert ids(tmp_path / "c", "easy") == ids(tmp_path / "a", "easy")
    subsets.run(SETS, data_dir, tmp_path / "d", seed=8)
    assert ids(tmp_path / "d", "uniform") != ids(tmp_path / "a", "uniform")


def test_pool_too_small_names_set_asked_and_available(tmp_path, data_dir):
    sets = {"val": {"kind": "val", "size": 20}, "easy": {"kind": "easy", "size": 60}}
    with pytest.raises(subsets.PoolTooSmall, match=r"set 'easy': asked for 60 rows but the pool .* holds only \d+"):
        subsets.run(sets, data_dir, tmp_path / "x", seed=7)
    assert not (tmp_path / "x").exists()


def test_cli_reports_pool_too_small(tmp_path, data_dir, capsys):
    import json
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"seed": 1, "sets": {"val": {"kind": "val", "size": 400}}}))
    with pytest.raises(SystemExit) as exc:
        subsets.main(["--config", str(cfg), "--in", str(data_dir), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "asked for 400 rows" in capsys.readouterr().err


def test_paper_scale_names_are_expressible():
    sets = {"Val-199": {"kind": "val", "size": 199}, "SFT889K": {"kind": "all"},
            "Uniform102K": {"kind": "uniform", "size": 102_000, "source": "amthink-40m"},
            "Easy102K": {"kind": "easy", "size": 102_000, "source": "amthink-40m"},
            "Hard102K": {"kind": "hard", "size": 102_000, "max_win_rate": 0.25, "source": "amthink-40m"},
            "S1K": {"kind": "source", "source": "s1k"}, "RL62K": {"kind": "rl"},
            "MIX37K": {"kind": "mix", "max_response_tokens": 8192}}
    assert subsets._order(sets)[0] == "Val-199"
