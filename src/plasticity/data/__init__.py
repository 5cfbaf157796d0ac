"""The data phase: simulated teacher -> ingest -> filter -> decontaminate -> difficulty -> subsets.

Each stage is a module with ``main(argv)`` (run as ``python -m plasticity <stage> ...``) and a
``run(...)`` function. Tables between stages follow ``plasticity.schema``; every dropped row is a
ledger row (``schema.LEDGER``) so that, per stage, rows in = rows kept + rows in the ledger.

Module map:
  text.py           prompt normalisation, CJK detection, answer/format checks, word n-grams
  tables.py         streaming parquet reads/writes, the ledger, stage config loading
  native.py         readers of each release's native schema (AM-1.4M, AM-40M, s1K-1.1, Skywork-OR1, RETU)
  teacher.py        the simulated R1 teacher of the embedded default
  ingest.py         native sources -> trajectories.parquet / rl_prompts.parquet
  filters.py        domain, teacher, format, correctness, length, dedup, RL set difference
  decontaminate.py  training-side n-gram overlap; optional benchmark-side embedding filter
  difficulty.py     per-prompt win rates (release metadata or sampling a reference model)
  subsets.py        the named sets (val, all, uniform, easy, hard, source, rl, mix)
"""
