"""Paper-ablation presets: grid files in ``reports/presets/<name>.yaml``.

A grid file (read by the runner for ``bench run --preset NAME`` and by the report) has the keys

    methods: [lora, nara]              # required, non-empty
    tasks: [synth_math, ...]           # required, non-empty
    seeds: [0, 1, 2]                   # optional
    ranks: [8]                         # optional
    steps: [8, 16]                     # optional: sampling-steps axis
    set: {"nara.c_scale": [0.1, 0.2]}  # optional: dotted key -> list of values (each an axis)
    model: tiny                        # optional, default tiny
    real: {tasks: [commonsense, math]} # optional: replaces these keys when --model is a real model
    description: ...                   # optional
    report: {section: title, focus_axis: name, reference: value, note: text, check: aa}
    devices: cpu-cores                 # optional: where cells run when --devices is not given

Every shipped preset is written for the tiny model (synthetic suites, small budgets) and has a
``real`` section with the release's version (the paper's suites and test sets); with
``--model llada-8b-instruct`` the real section replaces those keys and the real-model defaults
(rank 32, train.data=suite, exact masking, release lr/epochs/eval) do the rest.

``report.focus_axis`` names the axis the report's section is about (``rank``, ``steps`` or a
``set`` key); ``reference`` is the value the others are compared with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.ground.errors import BenchError
from reports.theory import CHECKS as THEORY_CHECKS

PRESET_DIR = Path(__file__).resolve().parent / "presets"
GRID_KEYS = {
    "name",
    "methods",
    "tasks",
    "seeds",
    "ranks",
    "steps",
    "set",
    "model",
    "description",
    "report",
    "limit",
    "preset",
    "real",
    # where the cells run (harness/run/executors), not grid axes: the CLI options override them
    "executor",
    "ray_address",
    "workers",
    "devices",
}
REAL_KEYS = {"methods", "tasks", "seeds", "ranks", "steps", "set", "limit", "description"}
REPORT_KEYS = {"section", "focus_axis", "reference", "note", "check"}
# report.check: a calibration section (reports/calibration.py), a theory-sandbox section or
# L2D's flow (reports/flow.py)
REPORT_CHECKS = ("aa", "flow", *THEORY_CHECKS)
DEFAULT_MODEL = "tiny"


def list_presets() -> list[str]:
    """Names of the shipped presets, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _nonempty_list(grid: dict, key: str, where: str, item_type: type | tuple) -> None:
    if key not in grid:
        return
    v = grid[key]
    if not isinstance(v, list) or not v:
        raise BenchError(f"{where}: '{key}' must be a non-empty list, got {v!r}")
    bad = [x for x in v if not isinstance(x, item_type) or isinstance(x, bool)]
    if bad:
        raise BenchError(f"{where}: '{key}' has invalid value(s) {bad!r}")
    if len(set(map(str, v))) != len(v):
        raise BenchError(f"{where}: '{key}' lists a value twice: {v!r}")


def validate_grid(grid: Any, where: str = "grid") -> dict[str, Any]:
    """Check a grid mapping's structure (names are checked by the runner's registries) and fill
    defaults (``model``, ``set``, ``report``). Raise :class:`BenchError` with one line."""
    if not isinstance(grid, dict):
        raise BenchError(
            f"{where}: a grid file must be a mapping of keys, got {type(grid).__name__}"
        )
    unknown = sorted(set(grid) - GRID_KEYS)
    if unknown:
        raise BenchError(
            f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(GRID_KEYS))}"
        )
    for key in ("methods", "tasks"):
        if key not in grid:
            raise BenchError(f"{where}: missing required key '{key}'")
    _nonempty_list(grid, "methods", where, str)
    _nonempty_list(grid, "tasks", where, str)
    _nonempty_list(grid, "seeds", where, int)
    _nonempty_list(grid, "ranks", where, int)
    _nonempty_list(grid, "steps", where, int)
    for key in ("ranks", "steps"):
        if any(x <= 0 for x in grid.get(key, [])):
            raise BenchError(f"{where}: '{key}' must be positive integers, got {grid[key]!r}")
    limit = grid.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0):
        raise BenchError(f"{where}: 'limit' must be a positive integer, got {limit!r}")
    if "model" in grid and not isinstance(grid["model"], str):
        raise BenchError(f"{where}: 'model' must be a model name or folder, got {grid['model']!r}")
    sets = grid.get("set") or {}
    if not isinstance(sets, dict):
        raise BenchError(f"{where}: 'set' must map dotted keys to lists of values")
    for k, v in sets.items():
        if not isinstance(k, str) or "." not in k:
            raise BenchError(f"{where}: 'set' key {k!r} must be dotted, e.g. nara.c_scale")
        if not isinstance(v, list) or not v:
            raise BenchError(f"{where}: 'set.{k}' must be a non-empty list of values")
    if grid.get("executor", "local") not in ("local", "ray"):
        raise BenchError(f"{where}: 'executor' must be local or ray, got {grid['executor']!r}")
    if not isinstance(grid.get("ray_address", ""), str):
        raise BenchError(f"{where}: 'ray_address' must be auto or HOST:PORT")
    workers = grid.get("workers", 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers <= 0:
        raise BenchError(f"{where}: 'workers' must be a positive integer, got {workers!r}")
    if "devices" in grid and not isinstance(grid["devices"], str):
        raise BenchError(f"{where}: 'devices' must be a string such as cpu-cores or cuda:0,cuda:1")
    report = grid.get("report") or {}
    if not isinstance(report, dict):
        raise BenchError(f"{where}: 'report' must be a mapping")
    bad = sorted(set(report) - REPORT_KEYS)
    if bad:
        raise BenchError(f"{where}: unknown report key(s) {bad}; valid: {sorted(REPORT_KEYS)}")
    if report.get("check") is not None and report["check"] not in REPORT_CHECKS:
        raise BenchError(
            f"{where}: unknown report.check {report['check']!r}; valid: {', '.join(REPORT_CHECKS)}"
        )
    focus = report.get("focus_axis")
    if focus is not None:
        valid = {"rank", "steps", "seed", *sets}
        if focus not in valid:
            raise BenchError(
                f"{where}: report.focus_axis {focus!r} is not an axis of this grid "
                f"({', '.join(sorted(valid))})"
            )
    real = grid.get("real")
    if real is not None:
        if not isinstance(real, dict):
            raise BenchError(f"{where}: 'real' must be a mapping of grid keys")
        bad = sorted(set(real) - REAL_KEYS)
        if bad:
            raise BenchError(f"{where}: unknown key(s) {bad} in 'real'; valid: {sorted(REAL_KEYS)}")
        merged = {**{k: v for k, v in grid.items() if k != "real"}, **real}
        if "set" in real:  # as for_model: the real section's settings join the tiny ones
            merged["set"] = {**(grid.get("set") or {}), **(real["set"] or {})}
        validate_grid(merged, where)
    out = dict(grid)
    out.setdefault("model", DEFAULT_MODEL)
    out["set"] = dict(sets)
    out["report"] = dict(report)
    return out


def load_grid_file(path: str | Path) -> dict[str, Any]:
    """Read and validate a grid YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{path}: no such grid file") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise BenchError(f"{path}: malformed YAML{at}") from None
    return validate_grid(data, where=str(path))


def load_preset(name: str) -> dict[str, Any]:
    """The validated grid of preset ``name`` (see :func:`list_presets`), with ``name`` added."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise BenchError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    grid = load_grid_file(path)
    grid["name"] = name
    return grid


def for_model(grid: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The grid for ``model`` (default: the grid's own): with a real model, the ``real``
    section's keys replace the tiny ones (``set`` entries are merged)."""
    from harness.config.cell import is_tiny

    out = {k: v for k, v in grid.items() if k != "real"}
    chosen = model or out.get("model") or DEFAULT_MODEL
    real = grid.get("real") or {}
    if not is_tiny(chosen):
        for key, value in real.items():
            if key == "set":
                out["set"] = {**(out.get("set") or {}), **value}
            else:
                out[key] = value
    out["model"] = chosen
    return out
