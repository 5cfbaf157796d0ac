"""Filter stage: every SFT and RL filter, the set difference kept aside for MIX, reconciliation."""
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from plasticity import schema as S
from plasticity.data import filters
from plasticity.data.tables import write_rows

GOOD = "<think>\n2+2=4\n</think>\n<answer>\\boxed{4}</answer>"
CFG = {"max_prompt_tokens": 20, "max_response_tokens": 60}


def traj(i, prompt="2+2=", response=GOOD, reference="4", *, domain="math", teacher="r1", source="am"):
    return {"problem_id": f"p{i}", "source": source, "source_file": f"{source}/f.jsonl", "source_row": i,
            "domain": domain, "teacher": teacher, "prompt": prompt, "response": response,
            "reference_answer": reference, "win_rate_small": 1.0, "win_rate_mid": None, "win_rate_teacher": None}


def rl(i, prompt, difficulty=0.5):
    return {"problem_id": f"r{i}", "source": "sky", "source_file": "sky/m.parquet", "source_row": i,
            "prompt": prompt, "reference_answer": "1", "difficulty": difficulty}


def exact_grader(completions, references):
    """A stand-in grader: boxed answer string equality."""
    from plasticity.data.text import last_boxed
    out = []
    for c, r in zip(completions, references):
        got = last_boxed(c)
        out.append(SimpleNamespace(correct=got == r, extracted=got, rule="test", reason=None))
    return out


def char_count(texts):
    return [len(t) for t in texts]


def run(tmp_path, rows, rl_rows=(), cfg=CFG, grade=exact_grader):
    src = tmp_path / "in"
    write_rows(src / "trajectories.parquet", rows, S.TRAJECTORY)
    write_rows(src / "rl_prompts.parquet", list(rl_rows), S.RL_PROMPT)
    counts = filters.run(cfg, src, tmp_path / "out", count_tokens=char_count, grade=grade)
    read = lambda n: pq.read_table(tmp_path / "out" / f"{n}.parquet").to_pylist()
    return counts, read("trajectories"), read("rl_prompts"), read("rl_matched"), read("ledger")


def reasons(ledger):
    return {r["problem_id"]: r["reason"] for r in ledger}


def test_each_sft_filter(tmp_path):
    rows = [
        traj(0, "1+1=", GOOD.replace("4", "2"), "2"),                     # kept
        traj(1, "a=", domain="code"),                                     # not_math
        traj(2, "b=", teacher="7b"),                                      # other_teacher
        traj(3, "c=", GOOD.replace("</think>", "")),                      # bad_format (no </think>)
        traj(4, "d=", GOOD.replace("\\boxed{4}", "4")),                   # bad_format (no boxed)
        traj(5, "e=", reference=None),                                    # no_reference
        traj(6, "f=", reference="5"),                                     # wrong_answer
        traj(7, "x" * 21 + "="),                                          # prompt_too_long (22 chars)
        traj(8, "g=", GOOD.replace("2+2=4", "2+2=4 " * 20)),              # response_too_long
        traj(9, "  1+1= ", GOOD.replace("4", "2"), "2"),                  # duplicate of row 0 (whitespace)
        traj(10, "H=", teacher="AM-0309"),                                # kept (case-insensitive teacher)
        traj(11, "h=", teacher="am-0309"),                                # duplicate of 10 (case)
    ]
    counts, kept, _, matched, ledger = run(tmp_path, rows)
    assert [r["problem_id"] for r in kept] == ["p0", "p10"]
    assert reasons(ledger) == {"p1": "not_math", "p2": "other_teacher", "p3": "bad_format", "p4": "bad_format",
                               "p5": "no_reference", "p6": "wrong_answer", "p7": "prompt_too_long",
                               "p8": "response_too_long", "p9": "duplicate_prompt", "p11": "duplicate_prompt"}
    dup = next(r for r in ledger if r["problem_id"] == "p9")
    assert dup["detail"] == "am/f.jsonl row 9: same prompt as am/f.jsonl row 0"
    assert counts["sft"]["in"] == len(rows) == counts["sft"]["kept"] + counts["sft"]["dropped"]
    assert counts["sft"]["dropped"] == len(ledger) and matched == []


def test_dedup_keeps_the_first_good_copy(tmp_path):
    rows = [traj(0, "q=", reference="5"), traj(1, "Q=")]                   # first copy is wrong
    _, kept, _, _, ledger = run(tmp_path, rows)
    assert [r["problem_id"] for r in kept] == ["p1"] and reasons(ledger) == {"p0": "wrong_answer"}


def test_rl_filters_and_set_difference(tmp_path):
    rows = [traj(0, "What is 2+2?"), traj(1, "other=")]
    rl_rows = [rl(0, "what is  2+2?"), rl(1, "计算 2+2"), rl(2, "easy one", 0.0), rl(3, "WHAT IS 2+2?"),
               rl(4, "fine", None)]
    cfg = {**CFG, "rl_difficulty": [0.0625, 0.9375]}
    counts, kept, rl_kept, matched, ledger = run(tmp_path, rows, rl_rows, cfg)
    assert [r["problem_id"] for r in rl_kept] == ["r0", "r4"]              # unknown difficulty kept
    assert reasons(ledger) == {"r1": "chinese_prompt", "r2": "extreme_difficulty", "r3": "duplicate_prompt",
                               "p0": "in_rl_prompts"}
    assert [r["problem_id"] for r in kept] == ["p1"]
    assert [(r["problem_id"], r["response_tokens"]) for r in matched] == [("p0", len(GOOD))]
    assert counts["rl"] == {"in": 5, "kept": 2, "dropped": 3, "dropped_by_reason":
                            {"chinese_prompt": 1, "duplicate_prompt": 1, "extreme_difficulty": 1}}
    assert counts["sft"]["rl_matched"] == 1 and counts["sft"]["dropped_by_reason"] == {"in_rl_prompts": 1}


def test_dropped_rl_prompts_do_not_remove_sft_rows(tmp_path):
    _, kept, _, matched, _ = run(tmp_path, [traj(0, "计算 2+2")], [rl(0, "计算 2+2")])
    assert len(kept) == 1 and matched == []


def test_exempt_sources_pass_unchanged(tmp_path):
    rows = [traj(0, "s=", "free text", "a worked solution", domain="science", source="s1k")]
    _, kept, _, _, ledger = run(tmp_path, rows, cfg={**CFG, "exempt_sources": ["s1k"]})
    assert len(kept) == 1 and ledger == []


def test_length_check_skips_tokenizer_only_when_bytes_decide(tmp_path):
    seen = []

    def counting(texts):
        seen.extend(texts)
        return [len(t) for t in texts]

    src = tmp_path / "in"
    write_rows(src / "trajectories.parquet", [traj(0, "2+2=")], S.TRAJECTORY)
    write_rows(src / "rl_prompts.parquet", [], S.RL_PROMPT)
    filters.run({"max_prompt_tokens": 3, "max_response_tokens": 1000}, src, tmp_path / "out",
                count_tokens=counting, grade=exact_grader)
    assert seen == ["2+2="]                                    # the short response was never tokenised
    assert pq.read_table(tmp_path / "out" / "ledger.parquet").column("reason").to_pylist() == ["prompt_too_long"]


def test_real_grader_and_tokenizer(tmp_path):
    """THE grader (plasticity.grading) and the tiny tokenizer, as the stage uses them by default."""
    pytest.importorskip("plasticity.grading")
    from plasticity.models import build_tiny_tokenizer, save_tiny_tokenizer

    save_tiny_tokenizer(build_tiny_tokenizer(), tmp_path / "tok")
    src = tmp_path / "in"
    rows = [traj(0, "2+2="), traj(1, "3+3=", GOOD.replace("4", "6"), "6.0"), traj(2, "1+1=", reference="3")]
    write_rows(src / "trajectories.parquet", rows, S.TRAJECTORY)
    write_rows(src / "rl_prompts.parquet", [], S.RL_PROMPT)
    filters.run(CFG, src, tmp_path / "out", tokenizer=tmp_path / "tok", threads=1)
    kept = pq.read_table(tmp_path / "out" / "trajectories.parquet").column("problem_id").to_pylist()
    assert kept == ["p0", "p1"]
    assert filters.load_token_counter(tmp_path / "tok")(["<think>\n1+1=2"]) == [7]   # <think> is one token


def test_character_bound_drops_a_huge_row_before_grading_or_tokenising(tmp_path):
    """A 200 KB response (the bound here: 60 tokens x 13 characters) is dropped by the character bound: neither the grader nor the tokenizer
    sees it; a text within the bound is still counted exactly; the ledger names file, row, field."""
    from plasticity.models import build_tiny_tokenizer, save_tiny_tokenizer

    save_tiny_tokenizer(build_tiny_tokenizer(), tmp_path / "tok")
    count = filters.load_token_counter(tmp_path / "tok")
    per_token = count.max_chars_per_token
    assert per_token == max(len(t) for t in build_tiny_tokenizer().get_vocab())
    seen = []

    def counting(texts):
        seen.extend(len(t) for t in texts)
        return count(texts)

    counting.max_chars_per_token = per_token
    graded = []

    def grade(completions, references):
        graded.extend(len(c) for c in completions)
        return exact_grader(completions, references)

    huge = "<think>\n" + "1+1=2\n" * 35_000 + "</think>\n<answer>\\boxed{4}</answer>"
    long_but_bounded = "<think>\n" + "1" * (60 * per_token - 40) + "\n</think>\n\\boxed{4}"   # > 60 tokens
    rows = [traj(0), traj(1, "3+3=", huge), traj(2, "4+4=", long_but_bounded)]
    src = tmp_path / "in"
    write_rows(src / "trajectories.parquet", rows, S.TRAJECTORY)
    write_rows(src / "rl_prompts.parquet", [], S.RL_PROMPT)
    counts = filters.run(CFG, src, tmp_path / "out", count_tokens=counting, grade=grade)
    ledger = pq.read_table(tmp_path / "out" / "ledger.parquet").to_pylist()
    assert [(r["reason"], r["file"], r["row"], r["field"]) for r in ledger] == \
           [("response_too_long", "am/f.jsonl", 1, "response"), ("response_too_long", "am/f.jsonl", 2, "response")]
    assert "not tokenised" in ledger[0]["detail"] and "not tokenised" not in ledger[1]["detail"]
    assert max(seen) <= CFG["max_response_tokens"] * per_token and max(graded) < 1000
    assert counts["sft"]["kept"] == 1
