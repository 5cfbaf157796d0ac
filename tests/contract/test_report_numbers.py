"""Every number README.md and reports/*/README.md quote resolves to a committed file that holds it
(reports/numbers.yaml; plasticity.analysis.quoted). A number no committed file holds fails here."""
from pathlib import Path

import yaml

from plasticity.analysis import quoted as Q

ROOT = Path(__file__).resolve().parents[2]


def test_every_quoted_number_is_held_by_a_committed_file():
    manifest = yaml.safe_load((ROOT / Q.MANIFEST).read_text(encoding="utf-8"))
    problems = Q.check(ROOT, manifest, Q.tracked(ROOT))
    assert not problems, "\n".join(problems)


def test_the_results_are_inside_checked_blocks():
    """The default study's paragraph is a results block of README.md, and every report README is one
    whole block, so the check above covers them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = Q.blocks(ROOT / "README.md", text)
    assert any("reports/default" in b for b in blocks)
    assert text.count(Q.BEGIN) == text.count(Q.END)
    numbers = [t for b in blocks for t in Q.quoted_numbers(b)]
    assert len(numbers) >= 10
    for readme in sorted((ROOT / "reports").glob("*/README.md")):
        assert Q.blocks(readme, readme.read_text(encoding="utf-8")) == [readme.read_text(encoding="utf-8")]
