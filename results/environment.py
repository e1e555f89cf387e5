"""Collect the ``environment`` part of a record: package versions, git state, device, threads,
CPU kernels."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

from results.schema import Environment

PACKAGES = (
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "lm-eval",
    "numpy",
    "pandas",
    "bench",
)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def git_state(cwd: str | Path | None = None) -> tuple[str | None, bool | None]:
    """(commit hash, dirty flag) of the repository holding ``cwd`` (default: this package);
    (None, None) outside a repository or before the first commit."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return commit.strip(), (None if status is None else bool(status.strip()))


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_name() -> str:
    """How a record names the CPU it ran on, e.g. ``cpu (x86_64)``."""
    return f"cpu ({platform.processor() or platform.machine()})"


def collect_environment(
    device_name: str | None = None, threads: int | None = None, cwd: str | Path | None = None
) -> Environment:
    """The environment of this process. ``device_name`` defaults to the CUDA device name when
    torch sees one, else the CPU (a cell that ran on the CPU passes :func:`cpu_name`);
    ``threads`` to ``torch.get_num_threads()``; the CPU kernels are torch's."""
    cpu_kernels = None
    try:
        import torch
    except ImportError:
        device_name = device_name or f"cpu ({platform.machine()})"
    else:
        cpu_kernels = torch.backends.cpu.get_cpu_capability()
        if device_name is None:
            device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_name()
        if threads is None:
            threads = torch.get_num_threads()
    commit, dirty = git_state(cwd)
    return Environment(
        packages=package_versions(),
        git_commit=commit,
        git_dirty=dirty,
        device_name=device_name,
        threads=threads,
        cpu_kernels=cpu_kernels,
        python=platform.python_version(),
    )
