"""Numbers the READMEs quote, each resolved to the committed file that holds it.

``reports/numbers.yaml`` lists, per README, every number token its results blocks quote and where it
comes from. A results block is a whole ``reports/*/README.md`` and, in ``README.md``, the text between
``<!-- numbers: begin -->`` and ``<!-- numbers: end -->``; code (fenced blocks, backticks), HTML
comments, link targets and the names of tables and figures ("Table 4", "Figures 2, 3") are not
quoted numbers. A source is one of

    {file: F.csv, row: {COLUMN: VALUE, ...}, column: C}    the cell of the one row matching ``row``
    {file: F.json, key: [K1, K2, ...]}                      the value at that path
    {file: F, text: "PHRASE"}                               the phrase, verbatim (prose with a number)

and holds the quoted number when the value, rounded to the quoted number of decimals, prints as it
(signs: +, -, and the typographic minus alike; thousands separators ignored). ``check`` returns every
problem: a number with no source, a source that does not hold its number, a file that is not committed
(``tracked``), an entry no block quotes. ``python -m plasticity.analysis.quoted`` prints them (exit 1
if any), the command to run after editing a README or regenerating a report.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

MANIFEST = Path("reports") / "numbers.yaml"
BEGIN, END = "<!-- numbers: begin -->", "<!-- numbers: end -->"
NUMBER = re.compile(r"(?<![\w.@/])[+\-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+\-]?\d+)?(?![\w.]\d|[A-Za-wyz_]|x\w)")
NAMES = re.compile(r"\b(?:Tables?|Figures?|§|section|sections|PAPER)\s+\d+(?:\.\d+)?(?:\s*(?:,|and|–|-)\s*\d+(?:\.\d+)?)*")


def blocks(readme: Path, text: str) -> list[str]:
    """The results blocks of one README (module docstring)."""
    if readme.name == "README.md" and readme.parent.parent.name == "reports":
        return [text]
    parts = text.split(BEGIN)[1:]
    return [p.split(END)[0] for p in parts]


def quoted_numbers(block: str) -> list[str]:
    """Number tokens of a results block, in order of first appearance, without code, comments, link
    targets and table / figure names."""
    text = re.sub(r"```.*?```", " ", block, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = NAMES.sub(" ", text)
    return list(dict.fromkeys(m.group(0) for m in NUMBER.finditer(text)))


def _value(token: str) -> tuple[float, int]:
    clean = token.replace(",", "").replace("−", "-").lstrip("+")
    decimals = len(clean.split(".")[1].split("e")[0]) if "." in clean else 0
    return float(clean), decimals


def _rounded(v: float, decimals: int) -> str:
    text = f"{v:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def holds(token: str, value: Any) -> bool:
    """Whether ``value`` (a cell, a JSON value) rounded to the token's decimals prints as the token."""
    try:
        v = float(str(value).replace("−", "-"))
    except ValueError:
        return False
    want, decimals = _value(token)
    if "e" in token.lower():
        return abs(v - want) <= 1e-9 * abs(want)
    return _rounded(v, decimals) == _rounded(want, decimals)


def resolve(root: Path, token: str, source: dict) -> str | None:
    """None when ``source`` holds ``token``, else what is wrong."""
    path = root / source["file"]
    if not path.is_file():
        return f"{source['file']}: no such file"
    if "text" in source:
        phrase = source["text"]
        if token not in phrase:
            return f"the phrase {phrase!r} does not contain {token}"
        return None if phrase in path.read_text(encoding="utf-8") else f"{source['file']}: no {phrase!r}"
    if "key" in source:
        value: Any = json.loads(path.read_text(encoding="utf-8"))
        for k in source["key"]:
            if not isinstance(value, dict) or k not in value:
                return f"{source['file']}: no key {source['key']}"
            value = value[k]
        return None if holds(token, value) else f"{source['file']} {source['key']} = {value!r}, not {token}"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh)
                if all((r.get(c) or "").strip() == str(v) for c, v in source.get("row", {}).items())]
    if len(rows) != 1:
        return f"{source['file']}: {len(rows)} rows match {source.get('row')}"
    column = source["column"]
    if column not in rows[0]:
        return f"{source['file']}: no column {column!r}"
    cell = rows[0][column]
    return None if holds(token, cell) else f"{source['file']} {source.get('row')} {column} = {cell!r}, not {token}"


def tracked(root: Path) -> set[str] | None:
    """Files git tracks under ``root`` (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(out.stdout.splitlines()) if out.returncode == 0 else None


def check(root: Path, manifest: dict, committed: set[str] | None = None) -> list[str]:
    """Every problem of the READMEs' quoted numbers against ``manifest`` (module docstring)."""
    problems = []
    readmes = [root / "README.md", *sorted((root / "reports").glob("*/README.md"))]
    for readme in readmes:
        name = str(readme.relative_to(root))
        entries = manifest.get(name, {}) or {}
        found = [t for b in blocks(readme, readme.read_text(encoding="utf-8")) for t in quoted_numbers(b)]
        for token in dict.fromkeys(found):
            sources = entries.get(token)
            if not sources:
                problems.append(f"{name}: {token} is quoted but no file is given for it in {MANIFEST}")
                continue
            for source in sources if isinstance(sources, list) else [sources]:
                if committed is not None and source["file"] not in committed:
                    problems.append(f"{name}: {token}: {source['file']} is not a committed file")
                why = resolve(root, token, source)
                if why:
                    problems.append(f"{name}: {token}: {why}")
        problems += [f"{name}: {token} has a source in {MANIFEST} but is not quoted"
                     for token in entries if token not in found]
    return problems


def main(argv: list[str] | None = None) -> int:
    import yaml

    root = Path(argv[0]) if argv else Path(".")
    problems = check(root, yaml.safe_load((root / MANIFEST).read_text(encoding="utf-8")) or {}, tracked(root))
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
