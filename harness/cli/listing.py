"""`bench list methods | tasks | presets | models`: what the harness knows."""

from __future__ import annotations

from harness.cli.app import console, list_app


@list_app.command("methods")
def list_methods_cmd() -> None:
    """Every method with its config fields and defaults."""
    from rich.table import Table

    from methods.registry import list_methods

    for row in list_methods():
        table = Table(
            "field",
            "default",
            "meaning",
            title=f"{row.name}: {row.description}" + (" (noise-aware)" if row.noise_aware else ""),
            title_justify="left",
        )
        for f in row.fields:
            table.add_row(f.name, repr(f.default), f.help)
        if not row.fields:
            table.add_row("-", "-", "no settings")
        console.print(table)


@list_app.command("tasks")
def list_tasks_cmd() -> None:
    """Every task with suite, split sizes, protocols and data availability here."""
    from tasks.cli import list_tasks

    console.print(list_tasks())


@list_app.command("presets")
def list_presets_cmd() -> None:
    """Paper-ablation presets for `bench run --preset NAME`."""
    from reports.presets import list_presets, load_preset

    for name in list_presets():
        console.print(f"[bold]{name}[/bold]: {load_preset(name).get('description', '')}")


@list_app.command("models")
def list_models() -> None:
    """Model aliases and where each loads from."""
    from rich.table import Table

    from harness.models.loader import MODEL_SPECS

    table = Table("name", "family", "source", "notes")
    table.add_row("tiny", "tiny", "built here", "pretrained on first use, cached under BENCH_CACHE")
    table.add_row(
        "tiny-ar",
        "tiny-ar",
        "built here",
        "causal LM (L2D's base); pretrained on first use, cached",
    )
    for name, spec in MODEL_SPECS.items():
        kind = "instruct (chat template)" if spec.instruct else "base"
        table.add_row(name, spec.family, spec.hub_id, f"{kind}; needs the hub or a local copy")
    table.add_row(
        "PATH",
        "auto",
        "a local folder",
        "tiny, LLaDA or Dream (remote code), DiffusionGemma (model_type diffusion_gemma), "
        "a Llama / Qwen2 causal LM, or any masked LM",
    )
    from harness.models.sandboxes import SANDBOXES

    for name, sandbox in SANDBOXES.items():
        what = f"methods {', '.join(sandbox.methods)}; tasks {', '.join(sandbox.tasks)}"
        table.add_row(name, "sandbox", "built per cell", f"{sandbox.description} ({what})")
    console.print(table)
