"""lm-eval results -> bench scores: one Score per metric of every task, with per-example values
when lm-eval logged them."""

from __future__ import annotations

import math
from typing import Any

from harness.processes.masked.sampling import SamplingStats

PROTOCOL_PREFIX = "lm-eval:"


def scores_from_results(
    results: dict[str, Any],
    steps_used: dict[str, set[int]],
    sampling: dict[str, SamplingStats] | None = None,
    sampler: str | None = None,
) -> list:
    """One Score per metric of every task (and group) in lm-eval's results; stderr left out.

    The metric is named as lm-eval names it, with its filter appended unless it is ``none``
    (``acc``, ``exact_match/strict-match``). Per-example values are kept when lm-eval logged
    them and their mean is the score."""
    from results.schema import Score

    scores = []
    for task, metrics in results.get("results", {}).items():
        n = (results.get("n-samples", {}).get(task) or {}).get("effective")
        steps = steps_used.get(task, set())
        stats = (sampling or {}).get(task)
        for key, value in metrics.items():
            if "," not in key or "_stderr" in key:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            scores.append(
                Score(
                    task=task,
                    metric=metric if filt == "none" else f"{metric}/{filt}",
                    value=float(value),
                    n=n,
                    protocol=PROTOCOL_PREFIX + task,
                    steps=next(iter(steps)) if len(steps) == 1 else None,
                    per_example=_per_example(results, task, metric, filt, float(value)),
                    sampler=sampler if stats is not None else None,
                    sampling=stats.to_dict() if stats is not None else None,
                )
            )
    return scores


def _per_example(results, task: str, metric: str, filt: str, value: float) -> list[dict]:
    if not math.isfinite(value):
        return []
    samples = [s for s in results.get("samples", {}).get(task, []) if s.get("filter") == filt]
    rows = []
    for s in samples:
        v = s.get(metric)
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return []
        resp = s.get("filtered_resps")
        pred = resp[0] if isinstance(resp, list) and resp and isinstance(resp[0], str) else None
        rows.append({"id": str(s.get("doc_id")), "prediction": pred, "correct": float(v)})
    if not rows or abs(sum(r["correct"] for r in rows) / len(rows) - value) > 1e-9:
        return []
    return rows
