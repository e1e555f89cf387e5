"""Uniform-noise block diffusion (DiffusionGemma): corruption, the noise level and the loss
(`forward`), the training objective (`objective`), transformers' own sampler with the noise level
hooked in (`sampler`) and evaluation (`evaluate`).
"""
