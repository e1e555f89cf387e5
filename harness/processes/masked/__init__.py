"""Masked (absorbing-state) diffusion, the LLaDA convention: the forward process and SFT loss
(`forward`, `objective`), the block sampler with its caches and parallel rules (`sampling/`),
Monte Carlo likelihood (`likelihood`), evaluation (`evaluate`) and the tiny dLLM's pretraining
(`pretrain`). Used by the tiny dLLM, LLaDA and Dream.
"""
