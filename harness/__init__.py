"""bench's harness, in wings, each a package whose `__init__` says what it holds and what it may
import (lowest first; `tests/test_layering.py` keeps the order):

- `ground`: errors, hub access, the noise-level channel, device helpers (imported by all);
- `models`: model families, loading, wrappers;
- `config`: the typed cell config and sampler settings;
- `processes`: noise processes (`masked`, `uniform`, `causal`): training, sampling, likelihood,
  evaluation, pretraining;
- `costs`: what a cell costs before it runs;
- `run`: grid, preflight, cell, runner and `executors`;
- `lmeval`: lm-evaluation-harness integration;
- `cli`: the `bench` command, a thin layer over all of the above.

`methods/`, `tasks/` and `results/` sit below the harness's upper wings (they import only
`harness.ground`); `reports/` sits above `run` and below `cli`.
"""
