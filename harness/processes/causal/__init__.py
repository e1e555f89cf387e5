"""Autoregressive bases (the tiny causal LM, Llama, Qwen2; L2D's hosts): next-token objective,
greedy KV-cached decoding, exact likelihood, evaluation and the tiny causal base's pretraining.
"""
