"""``report`` (fit settings, imported curves) and ``resources`` (what non-training jobs ask the scheduler for)."""
from __future__ import annotations

from typing import Literal, Union

from pydantic import Field

from plasticity.config.base import Strict


class FitCfg(Strict):
    outlier_tau: Union[float, Literal["auto"]] = "auto"
    lts_alpha: Union[float, Literal["auto", "none"]] = "auto"
    eps: Union[float, Literal["free"]] = 0.0


class Report(Strict):
    fit: FitCfg = FitCfg()
    # Curves from elsewhere (the layout of reference/sft889k_curves.csv) rendered instead of this
    # project's results, with optional per-branch fit hyperparameters (the layout of
    # reference/sft889k_table4.csv) and per-set minimum validation losses for Tables 1, 5 and Figure 8
    # (the layout of reference/min_val_loss.csv): the study's own published curves through this pipeline.
    import_curves: str | None = None
    import_hparams: str | None = None
    import_min_loss: str | None = None
    model: str | None = None                # model whose runs the report covers (default: first in use)


# ------------------------------------------------------------------------------ scheduler requests
# Every rule that runs as its own job and is not a training rule (those take their launch settings).
# Downloads and the benchmark suites run on the submit host (compute nodes may be offline): no request.
JOB_RULES = ("teacher", "ingest", "filter", "decontaminate", "difficulty", "subsets",
             "tokenizer", "tokenize", "base", "generate", "grade", "curves", "fits", "table", "figure", "metrics")


class JobRequest(Strict):
    """What one job of a non-training rule asks the scheduler for. The defaults fit any one-node
    cluster; a config raises them per rule (``resources: {filter: {mem_gb: 64, time_min: 480}}``).
    CPUs are the rule's threads: ``workers`` of filter / decontaminate / sft.tokenize, one elsewhere."""

    mem_gb: float = Field(2.0, gt=0)
    time_min: int = Field(60, gt=0)


