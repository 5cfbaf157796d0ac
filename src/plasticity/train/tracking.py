"""Experiment tracking through the trainers' own integrations (``report_to``), one run id per job.

The run id is derived from the stage's resolved config and its output directory, so every segment of
a preempted and resumed job reports to the same tracker run (wandb resumes it: ``WANDB_RESUME=allow``)
and a rebuilt cell gets the id it had. The id is written to the stage's ``manifest.json`` whatever
``report_to`` says, so a result can be matched to its dashboard. Which package each tracker needs and
which extra installs it: ``plasticity.features``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def run_id(config: dict[str, Any], out: str | Path) -> str:
    """``plasticity-<12 hex>`` from the resolved config section and the output directory."""
    blob = json.dumps({"config": config, "out": str(Path(out))}, sort_keys=True).encode()
    return "plasticity-" + hashlib.sha256(blob).hexdigest()[:12]


def trainer_kwargs(report_to: str, rid: str, run_dir: str | Path) -> dict[str, Any]:
    """Arguments for trl's config: where metrics go and under which run name.

    TensorBoard event files go to ``run_dir/tensorboard`` (the trainer's own output directory is
    removed when the stage finishes); wandb resumes the run of this id. A value the user exported
    (``WANDB_RUN_ID``, ``TENSORBOARD_LOGGING_DIR``) wins.
    """
    if report_to == "wandb":
        os.environ.setdefault("WANDB_RUN_ID", rid)
        os.environ.setdefault("WANDB_RESUME", "allow")
    if report_to == "tensorboard":   # transformers 5 reads the event directory from the environment
        os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(Path(run_dir) / "tensorboard"))
    return {"report_to": report_to, "run_name": rid}


def manifest_entry(report_to: str, rid: str) -> dict[str, Any]:
    return {"tracking": {"report_to": report_to, "run_id": rid}}
