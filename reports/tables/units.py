"""Human-readable counts, byte sizes and durations for table cells."""

from __future__ import annotations


def _scaled(x: float, units: tuple[tuple[float, str], ...], space: str, plain: str) -> str:
    """``x`` in the largest of ``units`` (divisor, suffix) it reaches, else whole with ``plain``."""
    for div, suffix in units:
        if abs(x) >= div:
            return f"{x / div:.3g}{space}{suffix}"
    return f"{x:.0f}{plain}"


def human_count(x: float) -> str:
    return _scaled(x, ((1e9, "B"), (1e6, "M"), (1e3, "K")), "", "")


def human_bytes(x: float) -> str:
    return _scaled(x, ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")), " ", " B")


def human_seconds(x: float) -> str:
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    if x < 120:
        return f"{x:.3g} s"
    return f"{x / 60:.3g} min"
