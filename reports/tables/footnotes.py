"""Report footnotes from the records: data provenance, limits, evaluation and training settings,
and what each adapter trained on."""

from __future__ import annotations

from typing import Any

from harness.config.cell import EVAL_ONLY_FIELDS
from results.schema import Record


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items()))


def footnotes(records: list[Record]) -> list[str]:
    """Data provenance (fallback splits first), limits, protocol / sampler and training settings,
    each stated once."""
    notes: list[str] = []
    prov = {}
    for r in records:
        for p in r.provenance:
            prov[(p.task, p.split, p.source, p.content_hash, p.fallback_of, p.limit)] = p
    ordered = sorted(prov.values(), key=lambda p: (p.fallback_of is None, p.task, p.split))
    for p in ordered:
        size = f", {p.size} examples" if p.size is not None else ""
        h = f", sha {p.content_hash[:12]}" if p.content_hash else ""
        detail = f" ({p.detail})" if p.detail else ""
        lim = f", limited to {p.limit}" if p.limit is not None else ""
        if p.fallback_of:
            notes.append(
                f"**Fallback data**: {p.task} `{p.split}` split comes from {p.source}{detail} in "
                f"place of {p.fallback_of}{size}{h}{lim}."
            )
        else:
            notes.append(f"Data: {p.task} `{p.split}` from {p.source}{detail}{size}{h}{lim}.")
    limits: dict[Any, set[str]] = {}
    evals: dict[str, set[str]] = {}
    protocols: dict[str, set[str]] = {}
    follows: dict[str, set[str]] = {}
    trains: dict[str, set[str]] = {}
    for r in records:
        ev = dict(r.config.get("eval") or {})
        lim = ev.pop("limit", None)
        followed = ev.pop("follows", None)
        rules = {s.task: s.answer_rule for s in r.scores if s.answer_rule}
        for task in r.eval_tasks:
            if lim is not None:
                limits.setdefault(lim, set()).add(task)
            evals.setdefault(task, set()).add(_kv({k: v for k, v in ev.items() if k != "steps"}))
            if followed:
                rule = f" (answer rule {rules[task]})" if task in rules else ""
                follows.setdefault(task, set()).add(f"{followed}{rule}")
        for s in r.scores:
            if s.protocol:
                protocols.setdefault(s.task, set()).add(s.protocol)
        tr = r.config.get("train") or {}
        if tr:
            trains.setdefault(r.config.get("suite") or r.task, set()).add(_kv(tr))
    for lim, tasks in sorted(limits.items(), key=lambda kv: str(kv[0])):
        notes.append(
            f"**Limit**: evaluation used only the first {lim} examples of "
            f"{', '.join(sorted(tasks))} (--limit)."
        )
    for task in sorted(evals):
        settings = "; ".join(s for s in sorted(evals[task]) if s)
        proto = ", ".join(sorted(protocols.get(task, set())))
        followed = ", ".join(sorted(follows.get(task, set())))
        if settings or proto or followed:
            notes.append(
                f"Evaluation of {task}: "
                + (f"follows {followed} (docs/protocols.md); " if followed else "")
                + (f"protocol {proto}; " if proto else "")
                + (f"settings {settings}" if settings else "")
            )
    notes += _mixed_settings_notes(records)
    steps = sorted({s.steps for r in records for s in r.scores if s.steps is not None})
    if steps:
        notes.append(f"Sampling steps evaluated: {', '.join(map(str, steps))}.")
    for suite in sorted(trains, key=str):
        notes.append(f"Training ({suite}): " + " | ".join(sorted(trains[suite])))
    return notes + training_data_notes(records)


# Evaluation fields that never mix silently: the limit and the followed protocol have their own
# notes, the steps and fast-sampling settings are columns of every score (tables split by them).
_SEPARATED = ("limit", "follows", "steps", *EVAL_ONLY_FIELDS)


def _mixed_settings_notes(records: list[Record]) -> list[str]:
    """A warning per task scored, or trained for, under different settings that no grid axis
    separates (runs made with another ``eval.gen_length`` or ``train.lr``, say, reported
    together): the tables then set results made under different settings side by side."""
    values: dict[tuple[str, str], dict[str, set[str]]] = {}
    for r in records:
        sections = [("eval", task) for task in r.eval_tasks]
        if r.config.get("trained", True) and r.method != "base":
            sections.append(("train", str(r.config.get("suite") or r.task)))
        for section, task in sections:
            axes = {k.split(".", 1)[1] for k in r.axes if k.startswith(section + ".")}
            seen = values.setdefault((section, task), {})
            for key, value in (r.config.get(section) or {}).items():
                if key not in axes and not (section == "eval" and key in _SEPARATED):
                    seen.setdefault(key, set()).add(repr(value))
    notes = []
    for (section, task), seen in sorted(values.items()):
        mixed = {k: v for k, v in sorted(seen.items()) if len(v) > 1}
        if mixed:
            shown = "; ".join(f"{section}.{k} {' / '.join(sorted(v))}" for k, v in mixed.items())
            what = "scored" if section == "eval" else "trained"
            notes.append(
                f"**Warning**: {task} was {what} under different settings that no grid axis "
                f"separates ({shown}): its tables compare results made under each."
            )
    return notes


def training_data_notes(records: list[Record]) -> list[str]:
    """What each adapter trained on (a suite training set or each task's own data) and which
    tasks it was scored on; why train.data=auto chose as it did."""
    scored: dict[str, set[str]] = {}
    reasons: set[str] = set()
    for r in records:
        scored.setdefault(r.train_data, set()).update(r.eval_tasks)
        if r.config.get("train_data_note"):
            reasons.add(str(r.config["train_data_note"]))
    notes = []
    suite = {k: v for k, v in scored.items() if k.endswith("(suite)")}
    if suite:
        notes.append(
            "**Training data**: one adapter per suite training set, scored on several tasks: "
            + "; ".join(f"{k} -> {', '.join(sorted(v))}" for k, v in sorted(suite.items()))
            + "."
        )
    per_task = sorted(k.split(" ", 1)[0] for k in scored if not k.endswith("(suite)"))
    if per_task and suite:
        notes.append(f"**Training data**: one adapter per task for {', '.join(per_task)}.")
    notes += [f"**Training data**: {reason}." for reason in sorted(reasons)]
    return notes
