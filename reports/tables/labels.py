"""Short row labels for narrow tables (the terminal): ``nara[core_lr×5]`` for the NaRA row with
``nara.core_lr_scale=5``.

The report's own label, ``nara (nara.core_lr_scale=5.0)``, is exact but long: a terminal table
cuts it, and two variants of one method then print the same (``nara (nara.cor…``). A short label
puts what differs first and drops what every reader knows from the method name:

- the section of a setting is dropped when it is the method's own (``nara.``) or ``method.``
  (``train.`` and ``eval.`` too, unless two row axes then share a name);
- a ``*_scale`` factor is written ``×v`` (``core_lr_scale=5`` -> ``core_lr×5``);
- whole floats lose their ``.0``.

Labels are guaranteed distinct: rows whose short labels coincide fall back to the full label.
:func:`short_labels` also returns the legend that spells each short label out.
"""

from __future__ import annotations

from typing import Any

from reports.tables.layout import fmt_axis, row_label

RowKey = tuple[str, tuple[tuple[str, Any], ...]]


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    return str(value)


def _field(axis: str) -> str:
    return axis.rpartition(".")[2]


def _short_setting(method: str, axis: str, value: Any, keep_section: set[str]) -> str:
    section, _, field = axis.rpartition(".")
    own = section in ("", method, "method") or (section in ("train", "eval"))
    name = field if own and axis not in keep_section else axis
    text = _value_text(value)
    if name.endswith("_scale") and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{name[: -len('_scale')]}×{text}"
    return f"{name}={text}"


def short_label(method: str, sub: tuple[tuple[str, Any], ...], keep_section: set[str]) -> str:
    shown = [_short_setting(method, a, v, keep_section) for a, v in sub if v is not None]
    return method + (f"[{','.join(shown)}]" if shown else "")


def short_labels(keys: list[RowKey]) -> tuple[dict[RowKey, str], list[str]]:
    """A distinct short label per row key, and one legend line per label that is not the full
    one (``nara[core_lr×5]: nara (nara.core_lr_scale=5.0)``)."""
    axes = {a for _, sub in keys for a, v in sub if v is not None}
    fields: dict[str, set[str]] = {}
    for a in axes:
        fields.setdefault(_field(a), set()).add(a)
    keep_section = {a for names in fields.values() if len(names) > 1 for a in names}
    labels = {key: short_label(*key, keep_section) for key in keys}
    owners: dict[str, set[RowKey]] = {}
    for key, label in labels.items():
        owners.setdefault(label, set()).add(key)
    for same in owners.values():
        if len(same) > 1:
            for key in same:
                labels[key] = row_label(*key)
    legend = []
    for key in keys:
        full = ", ".join(fmt_axis(a, v) for a, v in key[1] if v is not None)
        if labels[key] != row_label(*key) and labels[key] != key[0]:
            legend.append(f"{labels[key]}: {key[0]} with {full}")
    return labels, list(dict.fromkeys(legend))
