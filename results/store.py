"""Reading and writing result records: atomic writes, validated loads, a pandas/Parquet view.

Layout of a run folder (the runner creates it)::

    <run>/cells/<cell_id>/record.json      # this module's format (results.schema)
    <run>/cells/<cell_id>/adapter/ ...     # the runner's files, referenced from the record

A write never leaves a half-written file under the final name: the content goes to a temporary
file in the same folder, is flushed and fsynced, then renamed over the target with
:func:`os.replace` (atomic on POSIX and Windows). A crash at any moment leaves either the old
file or the new one, plus at most a stray ``.*.tmp`` file that readers ignore.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from harness.ground.errors import BenchError
from results.schema import READABLE_VERSIONS, SCHEMA_VERSION, Record, RecordError

RECORD_NAME = "record.json"
CELLS_DIR = "cells"
TMP_SUFFIX = ".tmp"

# Columns of :func:`records_frame` besides the axis columns (one per varying axis).
COST_COLUMNS = (
    "trainable_params",
    "total_params",
    "adapter_bytes",
    "train_time_s",
    "tokens_per_s",
    "peak_memory_bytes",
    "eval_time_s",
    "time_per_sampling_step_s",
)
BASE_COLUMNS = (
    "run",
    "cell_id",
    "status",
    "error",
    "model",
    "method",
    "cell_task",
    "train_data",
    "suite",
    "seed",
    "rank",
    "task",
    "metric",
    "metric_index",
    "value",
    "n",
    "protocol",
    "steps",
)


# -- atomic writes ----------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    """Persist a rename (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; on a clean exit, flush, fsync and
    rename it over ``path``. On an exception the temporary file is removed and ``path`` is left
    as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    """Turn numpy / torch scalars and arrays, paths and sets into JSON values."""
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    item = getattr(obj, "item", None)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):  # numpy arrays and scalars, torch tensors
        return tolist()
    if callable(item):
        return item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def write_record(cell_dir: str | Path, record: Record) -> Path:
    """Validate ``record`` and write it atomically to ``cell_dir/record.json``; return the path.

    Serialisation streams into the temporary file, so an error half-way (an unserialisable
    value) leaves the previous record untouched."""
    record.validate()
    path = Path(cell_dir) / RECORD_NAME
    with atomic_open(path, "w") as fh:
        json.dump(record.to_dict(), fh, default=_json_default, indent=1, allow_nan=True)
        fh.write("\n")
    record.source = path
    return path


def read_record(path: str | Path) -> Record:
    """Read and validate one record; any problem raises a :class:`BenchError` naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordError(f"{path}: no such record") from None
    except OSError as e:
        raise RecordError(f"{path}: cannot read record ({e.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    return Record.from_dict(data, source=path)


# -- finding and loading records --------------------------------------------------------------
def _record_paths(run: Path) -> list[Path]:
    cells = run / CELLS_DIR
    if not cells.is_dir():
        return []
    return sorted(p / RECORD_NAME for p in cells.iterdir() if (p / RECORD_NAME).is_file())


def find_record_paths(dirs: Iterable[str | Path]) -> list[Path]:
    """The record files under each folder. A folder may be a run folder (holding ``cells/``) or a
    folder of run folders (one level down). Raise :class:`BenchError` for a folder that does not
    exist, is empty, or holds no records."""
    out: list[Path] = []
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise BenchError("no run folders given")
    for d in dirs:
        if not d.exists():
            raise BenchError(f"{d}: no such folder")
        if not d.is_dir():
            raise BenchError(f"{d}: not a folder (expected a run folder holding cells/)")
        found = _record_paths(d)
        if not found and not (d / CELLS_DIR).is_dir():
            for sub in sorted(p for p in d.iterdir() if p.is_dir()):
                found.extend(_record_paths(sub))
        if not found:
            if not any(d.iterdir()):
                raise BenchError(f"{d}: folder is empty, no result records to read")
            raise BenchError(
                f"{d}: no result records found (expected {d}/{CELLS_DIR}/<cell_id>/{RECORD_NAME}"
                f" or <run>/{CELLS_DIR}/<cell_id>/{RECORD_NAME} below it)"
            )
        out.extend(found)
    return out


def check_schema_compatible(run_dir: str | Path) -> None:
    """Raise one clear :class:`BenchError` if ``run_dir`` holds records of another schema version
    (or files named record.json that are not records). A missing or empty folder is fine: the
    runner calls this before any work starts."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for path in _record_paths(run_dir):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise BenchError(f"{path}: unreadable result record in output folder") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version not in READABLE_VERSIONS:
            raise BenchError(
                f"{run_dir} holds records of schema version {version!r} (e.g. {path}); this "
                f"bench writes version {SCHEMA_VERSION}: choose another --out folder"
            )


def load_records(dirs: Iterable[str | Path]) -> list[Record]:
    """Load and validate every record under ``dirs`` (see :func:`find_record_paths`).

    A record of another schema version raises one :class:`BenchError` naming the folder. When two
    run folders hold the same cell id, the finished one (latest ``finished_at``) is kept."""
    records: list[Record] = []
    for path in find_record_paths(dirs):
        try:
            records.append(read_record(path))
        except RecordError as e:
            run = path.parent.parent.parent
            if "schema version" in str(e):
                raise BenchError(
                    f"{run} holds records of another schema version ({e}); re-run them with "
                    "this bench or report them with the bench that wrote them"
                ) from None
            raise
    best: dict[str, Record] = {}
    rank = {"done": 2, "running": 1, "failed": 0}
    for r in records:
        old = best.get(r.cell_id)
        key = (rank[r.status], r.finished_at or "")
        if old is None or key > (rank[old.status], old.finished_at or ""):
            best[r.cell_id] = r
    return list(best.values())


# -- the table view ---------------------------------------------------------------------------
def _scalar(v: Any) -> Any:
    """Axis values as columns: keep scalars, turn lists/dicts into their JSON text."""
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def axis_names(records: Iterable[Record]) -> list[str]:
    """Every axis key found in the records' ``config.axes``, in first-seen order."""
    names: list[str] = []
    for r in records:
        for k in r.axes:
            if k not in names:
                names.append(k)
    return names


def records_frame(records: list[Record]) -> pd.DataFrame:
    """One row per cell x score, ``task`` being the evaluated task (an evaluated task without
    scores, e.g. of a failed cell, gives one row with ``metric``/``value`` empty). Columns: :data:`BASE_COLUMNS`, one column per axis (named by the
    axis key, e.g. ``nara.c_scale``; keys clashing with a base column are skipped),
    :data:`COST_COLUMNS`, ``trainable_pct`` and ``adapter_dir``."""
    axes = [a for a in axis_names(records) if a not in BASE_COLUMNS and a not in COST_COLUMNS]
    rows: list[dict[str, Any]] = []
    for r in records:
        cfg = r.config
        run = r.source.parent.parent.parent if r.source is not None else None
        base = {
            "run": str(run) if run is not None else None,
            "cell_id": r.cell_id,
            "status": r.status,
            "error": (r.error or "").strip().splitlines()[-1] if r.error else None,
            "model": _scalar(cfg.get("model")),
            "method": str(cfg["method"]),
            "cell_task": str(cfg["task"]),
            "train_data": r.train_data,
            "suite": cfg.get("suite"),
            "seed": int(cfg["seed"]),
            "rank": cfg.get("rank"),
        }
        ax = r.axes
        for a in axes:
            base[a] = _scalar(ax.get(a))
        c = r.costs
        costs = {k: getattr(c, k) for k in COST_COLUMNS}
        tp, tot = c.trainable_params, c.total_params
        costs["trainable_pct"] = 100.0 * tp / tot if tp is not None and tot else None
        costs["adapter_dir"] = r.adapter_dir
        scored_tasks = {s.task for s in r.scores}
        # One row per evaluated task without a score (failed, running). Records that list no
        # evaluated tasks (version 1, lm-eval's own) get one only when they have no score at all.
        listed = r.eval_tasks if (cfg.get("eval_tasks") or not r.scores) else []
        for task in listed:
            if task in scored_tasks:
                continue
            rows.append(
                {**base, "task": task, "metric": None, "metric_index": None}
                | {"value": math.nan, "n": None, "protocol": None, "steps": None}
                | costs
            )
        for s in r.scores:
            rows.append(
                {**base, "task": s.task, "metric": s.metric, "metric_index": _mindex(r, s)}
                | {"value": float(s.value), "n": s.n, "protocol": s.protocol, "steps": s.steps}
                | {"sampler": _sampler(s)}
                | costs
            )
    cols = list(BASE_COLUMNS) + axes + ["sampler"]
    cols += list(COST_COLUMNS) + ["trainable_pct", "adapter_dir"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("rank", "steps", "n", *COST_COLUMNS[:3], "peak_memory_bytes"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    for col in ("value", "trainable_pct", *COST_COLUMNS[3:5], *COST_COLUMNS[6:]):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["metric_index"] = pd.to_numeric(df["metric_index"], errors="coerce").astype("Int64")
    return df


def _sampler(s: Any) -> str | None:
    """The fast-sampling label of a generative score ("plain" for records written before it
    existed); None for scores without sampling steps (log-likelihood)."""
    if s.sampler is not None:
        return s.sampler
    return "plain" if s.steps is not None else None


def _mindex(r: Record, s: Any) -> int:
    """Position of ``s.metric`` among the distinct metrics of ``s.task`` in this record (0 is
    the primary metric)."""
    order: list[str] = []
    for x in r.scores:
        if x.task == s.task and x.metric not in order:
            order.append(x.metric)
    return order.index(s.metric)


def examples_frame(records: list[Record]) -> pd.DataFrame:
    """One row per cell x score x example: the per-example correctness the statistics pair up.
    Columns: cell_id, method, seed, rank, task, metric, steps, scored_set_hash, every axis, id,
    correct (float), prediction (the raw output, else the extracted answer, as text)."""
    axes = [a for a in axis_names(records) if a not in BASE_COLUMNS and a not in COST_COLUMNS]
    parts: list[pd.DataFrame] = []
    for r in records:
        if r.status != "done":
            continue
        for s in r.scores:
            if not s.per_example:
                continue
            part = pd.DataFrame(
                {
                    "id": [str(e["id"]) for e in s.per_example],
                    "correct": [float(e["correct"]) for e in s.per_example],
                    "prediction": [_prediction_text(e) for e in s.per_example],
                }
            )
            part["cell_id"] = r.cell_id
            part["method"] = r.method
            part["seed"] = r.seed
            part["rank"] = r.config.get("rank")
            part["task"] = s.task
            part["metric"] = s.metric
            part["metric_index"] = _mindex(r, s)
            part["steps"] = s.steps
            part["sampler"] = _sampler(s)
            part["scored_set_hash"] = s.scored_set_hash
            for a in axes:
                part[a] = _scalar(r.axes.get(a))
            parts.append(part)
    cols = ["cell_id", "method", "seed", "rank", "task", "metric", "metric_index", "steps"]
    cols += ["scored_set_hash", *axes, "sampler", "id", "correct", "prediction"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)[cols]


def _prediction_text(example: dict) -> str | None:
    """What the model answered: its raw output (the chosen index for log-likelihood tasks),
    else the extracted answer."""
    for key in ("prediction", "extracted"):
        if example.get(key) is not None:
            return str(example[key])
    return None


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` to Parquet atomically. Object columns of mixed types (axis values such as
    0.1 and "fourier" in one column) are stored as text so that pyarrow accepts them."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col].dropna()}
            if len(kinds) > 1:
                df[col] = df[col].map(lambda v: None if v is None else str(v))
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def read_parquet(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)
