"""Noise processes: how a model family is trained, sampled, scored by likelihood and pretrained.

One package per process: `masked` (LLaDA, Dream and the tiny dLLM: absorbing-mask diffusion),
`uniform` (DiffusionGemma: uniform-noise block diffusion) and `causal` (autoregressive bases,
L2D's hosts). A family names its process (`harness.models.family.Family.process`); training,
evaluation, lm-eval and the CLI ask `registry.get_process(name)` and never branch on the family.
What every process shares lives beside them: the one training loop (`training`), the evaluation
entry (`evaluation`, `outcome`), pretraining scaffolding (`pretraining`) and sampler statistics.

May import: ground, config, models, methods, tasks, results. Never imports harness.run, costs,
lmeval or cli.
"""
