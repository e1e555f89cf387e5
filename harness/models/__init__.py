"""Model families and loading: one module per family holding everything that family needs
(`tiny`, `llada`, `dream`, `diffusion_gemma`, `causal_loader` for Llama/Qwen2 and the tiny causal
LM: load-time repairs, inputs, default adapter targets, layer roles, KV-cache backend), found by
name through `registry` (which imports none of them until asked); `family` is the record they
fill in; `loader` loads any alias or folder; `dlm` and `causal` wrap a loaded model behind one call;
`shipped` installs the default tiny base that ships with bench (`bases/`).

May import only the ground module; every layer above (config, processes, costs, run, lmeval,
cli) builds on these modules. The tiny bases are pretrained by their noise process, which the
loader names by module path rather than importing.
"""
