"""Is the Hugging Face hub reachable? Answered once per process, in seconds, so an offline machine
fails over to local files instead of sitting through the hub client's retries."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

HUB_ENV = "BENCH_HUB"  # "0" never tries the hub, "1" skips the reachability probe
_HUB_REACHABLE: bool | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline_by_env() -> bool:
    return (
        _truthy(os.environ.get("HF_HUB_OFFLINE"))
        or _truthy(os.environ.get("HF_DATASETS_OFFLINE"))
        or os.environ.get(HUB_ENV) == "0"
    )


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the hub answers a TCP connect. Offline variables answer False without touching
    the network; BENCH_HUB=1 answers True."""
    global _HUB_REACHABLE
    if hub_offline_by_env():
        return False
    if os.environ.get(HUB_ENV) == "1":
        return True
    if _HUB_REACHABLE is None:
        host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1]
        host = host.split("/")[0].split(":")[0]
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _HUB_REACHABLE = True
        except OSError:
            _HUB_REACHABLE = False
            log.info("hub %s not reachable; using local files and installed packages", host)
    return _HUB_REACHABLE


def probed_reachable() -> bool:
    """True only if an earlier probe in this process found the hub (never probes itself)."""
    return bool(_HUB_REACHABLE)
