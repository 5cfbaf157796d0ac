"""Analysis phase: FLOPs accounting, SFT regimes, robust sigmoid fits, correlations, curves, tables, figures.

Every module here reads result files and writes result files; none trains or evaluates a model.
Modules with a command line (``python -m plasticity <stage>``): flops, regimes, fit, curves,
tables (``table``) and figures (``figure``).
"""
