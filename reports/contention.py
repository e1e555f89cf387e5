"""Flags cost figures that were timed on a busy machine (see ``harness/ground/machine_load.py``)."""

from __future__ import annotations

from collections import Counter

from harness.ground.machine_load import MIN_CPU_SHARE, OTHERS_PER_CORE, contended
from results.schema import Record

PHASES = (("training", "train"), ("evaluation", "eval"))


def contention_notes(records: list[Record]) -> list[str]:
    """One note per timed phase that was contended in at least one finished cell."""
    done = [r for r in records if r.status == "done"]
    notes = []
    for label, prefix in PHASES:
        busy: Counter[str] = Counter()
        measured = 0
        worst_load, worst_share = 0.0, 1.0
        for r in done:
            load = getattr(r.costs, f"{prefix}_load_avg")
            share = getattr(r.costs, f"{prefix}_cpu_share")
            if load is None and share is None:
                continue
            measured += 1
            if contended(load, share, run_threads=r.costs.run_threads):
                busy[r.method] += 1
                worst_load = max(worst_load, load or 0.0)
                worst_share = min(worst_share, share if share is not None else 1.0)
        if busy:
            who = ", ".join(f"{m} x{n}" for m, n in sorted(busy.items()))
            notes.append(
                f"**Contended timings**: the {label} of {sum(busy.values())} of {measured} cells "
                f"({who}) ran on a busy machine (1-min load average up to {worst_load:.1f}, CPU "
                f"share down to {worst_share:.0%}; flagged when others ran more than "
                f"{OTHERS_PER_CORE:g} thread per core beyond the run's own workers' threads, or "
                f"the cell's CPU share was below {MIN_CPU_SHARE:.0%}). Their {label} times are not comparable; rerun on a "
                "quiet machine before reading cost ratios."
            )
    return notes
