"""Benchmark, evaluation and report scripts of the tomodiff checkout (not part of the package).

They import ``tomodiff`` as any user would. Run them from the repository root as modules, e.g.
``python -m benchmarks.sampler_eval --out benchmarks/results/sampler_eval`` (the ones that share
code import their siblings relatively, so only that form works for them). Data from outside the
repository (the shared data folder with ``ct_corpus/``, ``vtk_headsq/`` and the measured scans) comes
from ``--data-dir`` where a script has it, else from ``$TOMODIFF_SHARED_DATA``.
"""
