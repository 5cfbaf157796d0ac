"""Evaluation: the benchmark registry and loaders, generation backends, grading and metrics.

Stages: ``benchmarks`` (eval/registry.py), ``generate`` (eval/generate.py), ``grade``
(eval/score.py). ``evaluate.evaluate_in_memory`` runs generate + grade without files (RL evals).
Submodules import their heavy dependencies lazily; importing this package is cheap.
"""
