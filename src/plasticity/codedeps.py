"""Code dependencies: the source files a stage imports, transitively, within the package.

One function, used by Snakemake (``code()`` in rules/common.smk: each rule's ``code`` input) and,
through the DAG those rules build, by dvc.yaml's stage deps (``plasticity.dvc_yaml``), so editing a
module reruns the same work under both. Imports are read with ``ast`` (nothing is imported):
``import plasticity.x``, ``from plasticity.x import y`` (``plasticity/x/y.py`` when ``y`` is a
submodule) and lazy imports inside functions alike; relative imports are not used in the package.

    python -m plasticity.codedeps plasticity.train.rl     # prints the closure, one path a line
"""
from __future__ import annotations

import ast
import sys
from functools import lru_cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
PACKAGE = "plasticity"


def module_file(module: str, src: Path = SRC) -> Path | None:
    """``src/a/b.py`` or ``src/a/b/__init__.py`` for module ``a.b``; None when neither exists (a name
    imported from a module rather than a submodule)."""
    base = src.joinpath(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imports(path: Path) -> set[str]:
    """Package modules (and candidate submodules) that ``path`` imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == PACKAGE or m.startswith(f"{PACKAGE}.")}


@lru_cache(maxsize=None)
def closure(*modules: str, src: Path = SRC) -> tuple[str, ...]:
    """Absolute paths, sorted, of every package file the modules import, themselves included.

    Absolute because Snakemake may run with a working directory (-d) other than the repository.
    A module that does not exist is an error: a typo here would silently drop a dependency.
    """
    for module in modules:
        if module_file(module, src) is None:
            raise ValueError(f"code dependency {module!r}: no {module.replace('.', '/')}.py or package under {src}")
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        path = module_file(todo.pop(), src)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(imports(path))
    return tuple(sorted(str(p) for p in seen))


def main(argv: list[str] | None = None) -> int:
    modules = sys.argv[1:] if argv is None else argv
    if not modules:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(closure(*modules)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
