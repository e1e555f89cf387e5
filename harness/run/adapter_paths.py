"""Where a cell's adapter is: ``--adapter`` takes a cell folder or an adapter folder."""

from __future__ import annotations

from pathlib import Path

from harness.ground.errors import BenchError


def resolve_adapter(path: str | Path) -> tuple[Path, Path | None]:
    """(adapter folder, cell folder or None) for a cell folder or an adapter folder."""
    from methods.base import METHOD_FILE
    from results.store import RECORD_NAME, read_record

    path = Path(path).expanduser()
    if not path.exists():
        raise BenchError(f"adapter folder {path} does not exist")
    if not path.is_dir():
        raise BenchError(f"adapter {path} is not a folder (expected a cell or adapter folder)")
    if (path / RECORD_NAME).is_file():
        record = read_record(path / RECORD_NAME)
        adapter = record.adapter_path()
        if adapter is None or not (adapter / METHOD_FILE).is_file():
            raise BenchError(f"cell {path} has no saved adapter (its record names none)")
        return adapter, path
    if (path / METHOD_FILE).is_file():
        parent = path.parent
        if (parent / RECORD_NAME).is_file():
            adapter = read_record(parent / RECORD_NAME).adapter_path()
            if adapter is not None and adapter.resolve() == path.resolve():
                return path, parent
        return path, None
    raise BenchError(
        f"{path} is neither a bench cell folder (record.json + adapter/) nor an adapter folder "
        f"(no {METHOD_FILE})"
    )
