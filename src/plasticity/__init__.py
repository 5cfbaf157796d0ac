"""plasticity: a workflow-managed reproduction of the SFT-then-RL expert-trajectory study (arXiv 2512.11470)."""

__version__ = "0.1.0"
