"""``python -m plasticity.config FILE...``: validate config files and print the size of their matrix.

A package a valid config turns on but this machine cannot import is a warning here, naming the key and
the extra that installs it (``plasticity.features``): the GPU stack need not be on a login node, and
the stage fails at start where it is missing.
"""
from __future__ import annotations

import sys

from plasticity.config.base import ConfigError
from plasticity.config.load import load_config
from plasticity.features import config_warnings


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
        for line in config_warnings(cfg):
            print(f"{path}: warning: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
