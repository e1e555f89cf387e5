"""`bench pretrain` and `bench sample`: the tiny base model, and a quick look at any model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import app, console
from harness.ground.errors import BenchError


@app.command()
def pretrain(
    seed: Annotated[int, typer.Option(help="Seed for data, init and masking.")] = 0,
    steps: Annotated[
        int | None, typer.Option(help="Training steps (default: the cached config's).")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Pretrain from scratch even if a cached base exists or a copy of it ships with "
            "bench (then compared with that copy)."
        ),
    ] = False,
    eos_tail_every: Annotated[
        int | None,
        typer.Option(
            help="An EOS-tail batch every Nth update (default 4); 0: none, short answers."
        ),
    ] = None,
    eos_tail_mode: Annotated[
        str | None,
        typer.Option(help="add (default): added to a plain update; replace: takes the update."),
    ] = None,
) -> None:
    """Pretrain the embedded tiny dLLM on the synthetic corpus and cache it (BENCH_CACHE).

    The default base ships with bench and is installed rather than pretrained; --force pretrains
    it from scratch and says whether this machine built the same weights."""
    import dataclasses
    import json

    from harness.models.shipped import compare_weights, shipped_base
    from harness.processes.masked.pretrain import PretrainConfig, ensure_tiny_base, tiny_base_dir

    tail = {"eos_tail_every": eos_tail_every, "eos_tail_mode": eos_tail_mode}
    config = PretrainConfig(seed=seed, **{k: v for k, v in tail.items() if v is not None})
    if steps is not None:
        if steps <= 0:
            raise BenchError("--steps must be positive")
        config = dataclasses.replace(config, steps=steps)
    folder = tiny_base_dir(config)
    if force and folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder = ensure_tiny_base(config, from_scratch=force)
    report = json.loads((folder / "pretrain_report.json").read_text())
    shipped = shipped_base(folder.name)
    console.print(f"tiny base: [bold]{folder}[/bold]")
    if shipped is not None and not force:
        built = report.get("built_with", {})
        console.print(
            f"the copy that ships with bench (pretrained with torch {built.get('torch', '?')}, "
            f"{built.get('cpu_capability', '?')} kernels); --force pretrains it here"
        )
    console.print(f"pretraining time {report['train_time_s']} s, params {report['params']:,}")
    for name, acc in report["accuracy"].items():
        console.print(f"  {name}: accuracy {acc:.2f} (chance {report['chance'][name]:.2f})")
    if force and shipped is not None:
        console.print(f"against the copy bench ships: {compare_weights(folder, shipped)}")


@app.command()
def sample(
    prompt: Annotated[str, typer.Argument(help="Prompt text (already formatted).")],
    model: Annotated[
        str | None,
        typer.Option(help="Model alias or folder (default: the adapter's cell's base, else tiny)."),
    ] = None,
    adapter: Annotated[
        Path | None, typer.Option(help="A cell folder or its adapter folder.")
    ] = None,
    gen_length: int = 32,
    steps: int = 32,
    block_length: int = 32,
    temperature: float = 0.0,
    cache: Annotated[str, typer.Option(help="KV cache: none, prefix, dual.")] = "none",
    parallel: Annotated[
        str, typer.Option(help="Commit rule: none, threshold:X (0<X<=1), factor:X (X>0).")
    ] = "none",
    cache_refresh: Annotated[
        str, typer.Option(help="Cache refresh: block, step-level-change:X.")
    ] = "block",
    device: str = "auto",
) -> None:
    """Generate one response with the batched diffusion sampler (a quick look at a model)."""
    from harness.models.loader import load_model
    from harness.processes.masked.sampling import SamplerConfig
    from harness.processes.registry import process_of

    config = SamplerConfig(
        gen_length,
        steps,
        block_length,
        temperature,
        cache=cache,
        parallel=parallel,
        cache_refresh=cache_refresh,
    )
    if adapter is not None:
        from harness.lmeval.adapters import load_adapted

        dlm = load_adapted(model, adapter, device)[0]  # checked against the base it names
    else:
        dlm = load_model(model or "tiny", device)
    prompt_ids = dlm.tokenizer.encode_prompt(dlm.tokenizer.chat(prompt))
    out, summary = process_of(dlm).quick_sample(dlm, prompt_ids, config)
    console.print(dlm.tokenizer.decode(out))
    console.print(f"[dim]{summary}[/dim]")
