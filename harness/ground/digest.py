"""The SHA-256 of a file, read in blocks: how bench names the bytes of a base's or an adapter's
files (adapter stamps, the shipped bases' manifests)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
