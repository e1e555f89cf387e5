"""A dataset on the Hugging Face hub, and how to tell without the network whether it is cached."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.ground.hub import HUB_ENV, hub_reachable
from tasks.base import Source, SourceUnavailable


@dataclass(frozen=True)
class HubSource(Source):
    """A dataset on the Hugging Face hub, loaded with `datasets.load_dataset`."""

    path: str = ""
    config: str | None = None
    split: str = "train"
    revision: str | None = None

    kind = "hub"

    def describe(self) -> str:
        cfg = f"/{self.config}" if self.config else ""
        return f"hub:{self.path}{cfg}@{self.revision or 'main'}[{self.split}]"

    def availability(self) -> str | None:
        return "hub (cached)" if hub_cached(self.path) else None

    def rows(self) -> Iterator[dict[str, Any]]:
        if os.environ.get(HUB_ENV) == "0":
            raise SourceUnavailable("hub disabled (BENCH_HUB=0)")
        online = hub_reachable()
        if not online and not hub_cached(self.path):
            raise SourceUnavailable(f"hub not reachable and {self.path} not cached")
        import datasets

        try:
            with _hub_offline(not online):
                ds = datasets.load_dataset(
                    self.path, self.config, split=self.split, revision=self.revision
                )
        except Exception as e:  # any hub/cache failure means: try the next source
            raise SourceUnavailable(f"{self.describe()}: {type(e).__name__}: {e}") from e
        yield from ds.to_list()


def _hf_cache_dirs() -> tuple[Path, Path]:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE", home / "hub"))
    ds = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    return hub, ds


def hub_cached(path: str) -> bool:
    """Whether a hub dataset has files in the local caches (no network)."""
    hub, ds = _hf_cache_dirs()
    if (hub / f"datasets--{path.replace('/', '--')}").is_dir():
        return True
    return (ds / path.replace("/", "___")).is_dir()


@contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Make `datasets` use only its cache (no HTTP retries) for the duration."""
    if not offline:
        yield
        return
    import datasets.config as dcfg
    import huggingface_hub.constants as hcfg

    saved = (dcfg.HF_HUB_OFFLINE, hcfg.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE"))
    dcfg.HF_HUB_OFFLINE = hcfg.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, hcfg.HF_HUB_OFFLINE = saved[0], saved[1]
        if saved[2] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[2]
