"""``python -m plasticity.config FILE...``: validate config files and print the size of their matrix."""
from __future__ import annotations

import sys

from plasticity.config.base import ConfigError
from plasticity.config.load import load_config


def main(argv: list[str] | None = None) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m plasticity.config",
                                     description="Validate config files and print their matrix.")
    parser.add_argument("configs", nargs="+")
    args = parser.parse_args(argv)
    status = 0
    for path in args.configs:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{path}: ok: {len(cfg.models)} models, {len(cfg.sft.runs)} sft runs, "
              f"{len(cfg.rl.branches)} rl branches")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
