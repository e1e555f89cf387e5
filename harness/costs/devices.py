"""Device kinds for cost estimates: peak dense bf16 throughput and memory, from the datasheets.

| kind | peak dense bf16 (no sparsity) | memory (as torch reports it) |
|---|---|---|
| A100-40GB | 312 TFLOP/s | 39.4 GiB |
| A100-80GB | 312 TFLOP/s | 79.2 GiB |
| H100 (SXM) | 989 TFLOP/s | 79.1 GiB |
| H200 (SXM) | 989 TFLOP/s | 139.8 GiB |
| L40S | 362 TFLOP/s | 44.5 GiB |
| CPU | 0.5 TFLOP/s fp32 (assumed: a many-core server) | the machine's RAM |

These are peaks; the estimate divides by an assumed model-FLOP utilisation (see
:mod:`harness.costs.estimate`). A visible GPU is matched by name; an unknown GPU keeps its own
memory and is timed as an A100 (said so in the label). With no GPU visible the dry run assumes
:data:`ASSUMED_KIND` unless ``--device-kind`` says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from harness.ground.errors import BenchError

GIB = 1024**3


@dataclass(frozen=True)
class DeviceKind:
    name: str
    peak_flops: float  # dense bf16 FLOP/s (fp32 for the CPU)
    memory_bytes: int
    weight_bytes: int = 2  # bytes per base weight: bf16 on GPUs, fp32 on the CPU (the loader's)
    note: str = ""  # why this kind was chosen (detected, assumed, ...)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.note})" if self.note else self.name


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GIB


DEVICE_KINDS: dict[str, DeviceKind] = {
    "A100-40GB": DeviceKind("A100-40GB", 312e12, int(39.4 * GIB)),
    "A100-80GB": DeviceKind("A100-80GB", 312e12, int(79.2 * GIB)),
    "H100": DeviceKind("H100", 989e12, int(79.1 * GIB)),
    "H200": DeviceKind("H200", 989e12, int(139.8 * GIB)),
    "L40S": DeviceKind("L40S", 362e12, int(44.5 * GIB)),
    "CPU": DeviceKind("CPU", 0.5e12, 0, weight_bytes=4),
}
ASSUMED_KIND = "A100-80GB"


def device_kind(name: str) -> DeviceKind:
    """A kind by name (case-insensitive), e.g. for ``--device-kind``."""
    for key, kind in DEVICE_KINDS.items():
        if key.lower() == name.strip().lower():
            if key == "CPU":
                return replace(kind, memory_bytes=_ram_bytes(), note="given")
            return replace(kind, note="given")
    raise BenchError(f"unknown device kind {name!r}; valid: {', '.join(DEVICE_KINDS)}")


def match_gpu_name(gpu_name: str, memory_bytes: int) -> DeviceKind:
    """The kind of a GPU reported as ``gpu_name`` with ``memory_bytes`` of memory."""
    upper = gpu_name.upper()
    for key in ("H200", "H100", "L40S"):
        if key in upper:
            return replace(DEVICE_KINDS[key], memory_bytes=memory_bytes, note="detected")
    if "A100" in upper:
        key = "A100-80GB" if memory_bytes > 50 * GIB else "A100-40GB"
        return replace(DEVICE_KINDS[key], memory_bytes=memory_bytes, note="detected")
    a100 = DEVICE_KINDS["A100-80GB"]
    return DeviceKind(gpu_name, a100.peak_flops, memory_bytes, note="unknown GPU: timed as an A100")


def visible_device(device: str = "auto") -> DeviceKind | None:
    """The kind of the device a cell would run on (``auto``, ``cpu``, ``cuda:N``); None when
    ``auto`` finds no GPU (the caller decides what to assume)."""
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return None if device == "auto" else cpu_kind()
    if not torch.cuda.is_available():
        return None
    index = torch.device(device if device != "auto" else "cuda").index or 0
    props = torch.cuda.get_device_properties(index)
    return match_gpu_name(props.name, int(props.total_memory))


def cpu_kind() -> DeviceKind:
    return replace(DEVICE_KINDS["CPU"], memory_bytes=_ram_bytes(), note="this machine's RAM")


def planning_device(override: str | None = None) -> DeviceKind:
    """The kind a dry run estimates for: ``override``, else the visible GPU, else the assumed
    kind (and the label says so)."""
    if override:
        return device_kind(override)
    visible = visible_device("auto")
    if visible is not None:
        return visible
    return replace(
        DEVICE_KINDS[ASSUMED_KIND], note="assumed: no GPU visible; change with --device-kind"
    )
