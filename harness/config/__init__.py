"""What a grid cell is asked to do, as typed data: the cell config and its per-kind defaults
(`cell`) and the sampler settings as text and parsed (`sampling`).

Imports the ground module, `methods` (for names a config validates) and `harness.models` (model
kinds and sandbox names); everything that runs a cell reads these dataclasses and nothing here
runs anything.
"""
