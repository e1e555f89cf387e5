"""What a worker does with one job: run the cell (or finish evaluating a trained one) and write
its record, never raising (the failure is the record). Every executor calls :func:`execute_job`;
the driver (:mod:`harness.run.runner`) never runs a cell itself, so executors need not import it.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.run.cell import Monitor, run_cell
from harness.run.executors.job import Job, Placement

log = logging.getLogger(__name__)


def execute_job(
    job: Job,
    device: str,
    monitor: Monitor | None = None,
    models=None,
    placement: Placement | None = None,
) -> tuple[str, str | None]:
    """Run one cell and write its record; never raises (the failure is the record).

    ``models`` is the worker's base-model source (``harness.models.source``; None loads the base
    fresh); ``placement`` says which worker runs it. Both are stamped into every record written:
    ``environment.placement`` and ``costs.model_load_s``."""
    from harness.models.source import FreshModels, use_models

    source = models if models is not None else FreshModels()
    source.last_load_s = None  # until this cell's checkout: not the previous cell's figure
    if hasattr(source, "last_checksum"):
        source.last_checksum = None
    save = _stamped_writer(job.cell_dir, source, placement)
    status = "failed"
    try:
        with use_models(source):
            status, detail = (_extend_job if job.extend else _run_job)(job, device, monitor, save)
        return status, detail
    finally:
        source.release(status == "done")


def _stamped_writer(cell_dir: Path, source, placement: Placement | None) -> Callable:
    import dataclasses

    from results.store import write_record

    def save(record) -> None:
        where = dict(placement.to_dict()) if placement is not None else {}
        checksum = getattr(source, "last_checksum", None)
        if checksum:
            where["base_checksum"] = checksum
        environment = dataclasses.replace(record.environment, placement=where)
        costs = dataclasses.replace(record.costs, model_load_s=source.last_load_s)
        write_record(cell_dir, dataclasses.replace(record, environment=environment, costs=costs))

    return save


@contextlib.contextmanager
def _cell_log(cell_dir: Path, mode: str) -> Iterator[None]:
    """Everything logged while the block runs also goes to the cell's ``log.txt`` ("w" for a
    fresh training, "a" when a saved adapter is evaluated further)."""
    handler = logging.FileHandler(cell_dir / "log.txt", mode=mode)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(min(previous_level, logging.INFO))
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def _run_job(job: Job, device: str, monitor: Monitor | None, save) -> tuple[str, str | None]:
    from results.schema import Record

    cell = job.request.cell
    job.cell_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(job.cell_dir, adapter=True)
    config = {**cell.to_dict(), "rank": cell.rank}
    if job.retrain_reason:
        config["adapter_retrained"] = job.retrain_reason
    save(Record(cell_id=cell.cell_id, status="running", config=config))
    with _cell_log(job.cell_dir, "w"):
        if job.retrain_reason:
            log.warning("cell %s: retraining, not reusing its adapter: %s", cell.cell_id,
                        job.retrain_reason)  # fmt: skip
        try:
            from harness.models.sandboxes import sandbox_cell_function

            cell_function = sandbox_cell_function(cell) or run_cell
            record = cell_function(job.request, job.cell_dir, device, monitor, checkpoint=save)
            if job.retrain_reason:
                record.config.setdefault("adapter_retrained", job.retrain_reason)
            save(record)
            return "done", None
        except Exception as err:  # noqa: BLE001 - isolation is the point: record and continue
            tb = traceback.format_exc()
            log.error("cell %s failed: %s\n%s", cell.cell_id, err, tb)
            summary = f"{type(err).__name__}: {err}"
            save(_failed_record(job, config, summary + "\n" + tb[-4000:]))
            return "failed", summary


def _failed_record(job: Job, config: dict, error: str):
    """The failed record: the last checkpoint of this attempt when its adapter was saved by then
    (its training, costs and scores so far stay, and ``--retry-failed`` can reuse the adapter),
    else a bare one."""
    import dataclasses

    from results.schema import Record, utc_now
    from results.store import RECORD_NAME, read_record

    path = job.cell_dir / RECORD_NAME
    latest = read_record(path) if path.is_file() else None
    if latest is not None and latest.status == "running" and latest.config.get("trained"):
        return dataclasses.replace(latest, status="failed", error=error, finished_at=utc_now())
    cell = job.request.cell
    return Record(
        cell_id=cell.cell_id, status="failed", config=config, error=error, finished_at=utc_now()
    )


def _remove_leftovers(cell_dir: Path, adapter: bool = False) -> None:
    """Staging folders and temp files of an earlier attempt that was killed mid-write, and with
    ``adapter`` the adapter of an earlier attempt (the cell is trained afresh)."""
    import shutil

    from harness.run.cell import ADAPTER_DIR

    stale = [*cell_dir.glob("*.tmp-*"), *cell_dir.glob(".*.tmp")]
    for path in [*stale, *([cell_dir / ADAPTER_DIR] if adapter else [])]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _extend_job(job: Job, device: str, monitor: Monitor | None, save) -> tuple[str, str | None]:
    """Evaluate a trained cell's saved adapter on what it lacks (new step counts, new tasks, the
    rest of an interrupted or failed evaluation). A failure keeps a finished cell's record as it
    was (with the scores added so far); an unfinished cell that fails again is recorded as
    failed. An unfinished cell whose adapter fails the stamp check is retrained instead."""
    import dataclasses

    from harness.run.adapter_stamp import AdapterNotReusable
    from harness.run.cell import extend_cell
    from results.schema import utc_now
    from results.store import RECORD_NAME, read_record

    job.cell_dir.mkdir(parents=True, exist_ok=True)
    with _cell_log(job.cell_dir, "a"):
        record = None
        try:
            record = read_record(job.cell_dir / RECORD_NAME)
            finished = extend_cell(
                job.request,
                job.cell_dir,
                record,
                device,
                monitor,
                save,
                reuse=job.reuse,
                stale=job.stale,
            )
            save(finished)
            return "done", None
        except AdapterNotReusable as err:
            if job.reuse is None:  # a finished cell: keep its record, report the problem
                log.error("not evaluating cell %s: %s", job.cell_id, err)
                return "failed", f"evaluating the saved adapter failed: {err}"
            retrain = str(err)
        except Exception as err:  # noqa: BLE001
            tb = traceback.format_exc()
            log.error("evaluating cell %s failed: %s\n%s", job.cell_id, err, tb)
            summary = f"{type(err).__name__}: {err}"
            if record is not None and record.status in ("running", "failed"):
                latest = read_record(job.cell_dir / RECORD_NAME)
                error = summary + "\n" + tb[-4000:]
                save(
                    dataclasses.replace(latest, status="failed", error=error, finished_at=utc_now())
                )
            return "failed", f"evaluating the saved adapter failed: {summary}"
    # unfinished and its adapter failed the check: train it again rather than use that adapter
    job = dataclasses.replace(job, extend=False, reuse=None, retrain_reason=retrain)
    return _run_job(job, device, monitor, save)
