"""Bases that ship with bench, in ``bases/``: the default tiny base, as ``bench pretrain`` built it.

Pretraining the default tiny base takes 2-4 minutes on two cores, a quarter of `make demo`, and
another machine's kernels can build slightly different weights from the same seed. A copy ships
with the project instead, so a fresh cache starts fine-tuning at once and every machine starts
from the same bytes. A copy is used only under its own cache key (the folder name, the hash of
its whole pretraining config), so a changed recipe never picks up a stale copy: it is
pretrained as before. Each folder lists the SHA-256 of its files (``SHA256SUMS``, the format of
``sha256sum``); a copy that does not match is refused, never installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.ground.digest import file_sha256
from harness.ground.errors import BenchError

BASES = Path(__file__).resolve().parent / "bases"
MANIFEST = "SHA256SUMS"


def shipped_base(name: str) -> Path | None:
    """The shipped folder of the cache folder named ``name`` (``tiny-base-<key>``), if one ships."""
    folder = BASES / name
    return folder if (folder / MANIFEST).is_file() else None


def manifest(folder: Path) -> dict[str, str]:
    """File name -> SHA-256, as listed in ``folder``'s manifest."""
    out = {}
    for line in (Path(folder) / MANIFEST).read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = digest
    return out


def write_manifest(folder: Path) -> None:
    """List every file of ``folder`` (but the manifest) with its SHA-256."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    lines = [f"{file_sha256(folder / name)}  {name}" for name in names]
    (folder / MANIFEST).write_text("\n".join(lines) + "\n")


def install(source: Path, folder: Path) -> None:
    """Copy the shipped ``source`` into the cache ``folder``, checked against its manifest, through
    a staging folder renamed into place (the folder appears only when complete)."""
    folder = Path(folder)
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for name, digest in manifest(source).items():
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)
            if not (staging / name).is_file() or file_sha256(staging / name) != digest:
                raise BenchError(
                    f"the shipped base {source.name} is damaged ({name} does not match "
                    f"{MANIFEST}): reinstall bench, or pretrain it with `bench pretrain --force`"
                )
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def compare_weights(built: Path, shipped: Path) -> str:
    """One line: whether the base pretrained in ``built`` has the shipped copy's weights, bit for
    bit, or how far apart they are (another machine's kernels round differently)."""
    from safetensors.torch import load_file

    name = "model.safetensors"
    if file_sha256(Path(built) / name) == manifest(shipped).get(name):
        return "the same weights, bit for bit"
    ours, theirs = load_file(Path(built) / name), load_file(Path(shipped) / name)
    if ours.keys() != theirs.keys():
        return "different tensors (another architecture)"
    worst = max((ours[k].float() - theirs[k].float()).abs().max().item() for k in ours)
    return f"different weights: largest difference {worst:.3g} (this machine's kernels)"
