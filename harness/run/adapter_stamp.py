"""The stamp a cell writes into its saved adapter, and the check before a saved adapter is reused.

A cell's adapter folder (``cells/<cell_id>/adapter/``) is reused instead of retrained when a run
resumes a cell killed after training, and when ``--retry-failed`` reruns a cell that failed after
its adapter was saved (in evaluation or scoring). The folder name alone does not prove what
trained it: the cell id is a 10-digit digest, a run folder can be copied or edited by hand, and a
base alias such as ``tiny`` resolves to whatever base is cached today. So the runner writes
``bench_cell.json`` into the staging folder before it is renamed into place, with

- ``identity``: the cell's full training identity (:meth:`harness.config.cell.CellConfig.identity`,
  what the cell id hashes: model, method and its config, task, seed, train and eval settings);
- ``base``: the base model actually loaded (the folder or hub id it came from; where it is a
  local folder, the SHA-256 of its config.json and of its weight and tokenizer files; the hub
  commit where transformers reports one);
- ``files``: size and SHA-256 of every other file of the folder.

An adapter is reused only if all three agree with the cell about to run; otherwise the cell is
retrained and the record says why (``config.adapter_retrained``). Adapters saved before stamps
existed carry none and are retrained too, except a finished cell's (extending it with new
evaluations keeps working as before).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from harness.ground.digest import file_sha256
from harness.ground.errors import BenchError

log = logging.getLogger(__name__)
STAMP_FILE = "bench_cell.json"
STAMP_FORMAT = 1


# A local base folder's files that decide what an adapter was trained on besides config.json: a
# base trained further in place (or a tiny base rebuilt) keeps its config but not these.
BASE_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
BASE_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "bench_char_tokenizer.json",
)
# SHA-256 of base files by (path, size, mtime): a worker hashes an 8B base's weights once, not once
# per cell (about as long as loading them).
_BASE_DIGESTS: dict[tuple[str, int, int], str] = {}


def _base_files(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if path.suffix not in BASE_WEIGHT_SUFFIXES and path.name not in BASE_TOKENIZER_FILES:
            continue
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _BASE_DIGESTS:
            _BASE_DIGESTS[key] = file_sha256(path)
        out[path.name] = _BASE_DIGESTS[key]
    return out


def base_identity(model) -> dict[str, Any]:
    """Which base ``model`` (a loaded DiffusionLM / CausalLM) is: its source, the digest of the
    source folder's config.json and of its weight and tokenizer files (``files``), the hub
    commit when transformers knows it."""
    info = model.info
    out: dict[str, Any] = {"source": str(info.source), "family": info.family}
    folder = Path(str(info.source)).expanduser()
    config = folder / "config.json"
    if config.is_file():
        out["config_sha256"] = hashlib.sha256(config.read_bytes()).hexdigest()
        out["files"] = _base_files(folder)
    commit = getattr(getattr(model.backbone, "config", None), "_commit_hash", None)
    if commit:
        out["commit"] = str(commit)
    return out


def base_summary(identity: dict[str, Any]) -> dict[str, Any]:
    """What a result record keeps of :func:`base_identity`: the family, where the base came from
    and ``weights``, a 12-digit digest of its config, weight and tokenizer files (or of the hub
    commit), None where neither is known. Two records of one ``model`` name with different
    ``weights`` were trained on different bases (a re-pretrained tiny base, another revision),
    which the report says."""
    known = {k: identity[k] for k in ("config_sha256", "files", "commit") if identity.get(k)}
    digest = None
    if known:
        text = json.dumps(known, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return {"family": identity.get("family"), "source": identity.get("source"), "weights": digest}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STAMP_FILE)


def write_stamp(folder: Path, cell, base: dict[str, Any]) -> Path:
    """Stamp a just-saved adapter folder (call it on the staging folder, before the rename)."""
    folder = Path(folder)
    files = {
        p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
        for p in _files(folder)
    }
    stamp = {
        "format": STAMP_FORMAT,
        "cell_id": cell.cell_id,
        "identity": cell.identity(),
        "base": base,
        "files": files,
    }
    path = folder / STAMP_FILE
    path.write_text(json.dumps(stamp, indent=1, sort_keys=True) + "\n")
    return path


def read_stamp(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / STAMP_FILE
    if not path.is_file():
        return None
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _differences(saved: Any, wanted: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings in which two identities differ."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(saved) | set(wanted)):
            out += _differences(saved.get(key), wanted.get(key), f"{prefix}{key}.")
        return out
    return [] if saved == wanted else [prefix.rstrip(".")]


def reuse_problem(folder: Path, cell, verify_hashes: bool = False) -> str | None:
    """Why the adapter in ``folder`` must not be reused for ``cell`` (None: it may be).

    Checks the stamp's identity against the cell's and that every stamped file is there with
    its size (and, with ``verify_hashes``, its SHA-256) and no unstamped file was added. The
    base is checked after loading it (:func:`base_problem`)."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return "no saved adapter"
    stamp = read_stamp(folder)
    if stamp is None or stamp.get("format") != STAMP_FORMAT:
        return f"the saved adapter has no readable {STAMP_FILE} (saved before stamps existed?)"
    differ = _differences(stamp.get("identity"), cell.identity())
    if differ:
        shown = ", ".join(differ[:4]) + (" ..." if len(differ) > 4 else "")
        return (
            f"the saved adapter was trained by another config (cell {stamp.get('cell_id')}; "
            f"differs in {shown})"
        )
    files = stamp.get("files") or {}
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder)}
    for name, meta in sorted(files.items()):
        path = present.get(name)
        if path is None:
            return f"the saved adapter is incomplete: {name} is missing"
        if path.stat().st_size != meta.get("bytes"):
            return (
                f"the saved adapter is incomplete: {name} has {path.stat().st_size} bytes, "
                f"{meta.get('bytes')} were saved"
            )
        if verify_hashes and file_sha256(path) != meta.get("sha256"):
            return f"the saved adapter is damaged: {name} differs from what was saved (SHA-256)"
    extra = sorted(set(present) - set(files))
    if extra:
        return f"the saved adapter folder holds files it was not saved with: {', '.join(extra)}"
    return None


def base_problem(folder: Path, model) -> str | None:
    """Why the stamped adapter in ``folder`` was trained on another base than ``model``."""
    stamp = read_stamp(folder) or {}
    saved, now = stamp.get("base") or {}, base_identity(model)
    if "config_sha256" in saved and "files" not in saved:  # stamped before base files were
        now.pop("files", None)
    if saved.get("files") and now.get("files"):  # the same bytes are the same base, wherever
        saved, now = _without_source(saved), _without_source(now)  # (a moved BENCH_CACHE)
    differ = _differences(saved, now)
    if differ:
        return (
            f"the saved adapter was trained on another base ({saved.get('source')}; differs in "
            f"{', '.join(differ)}; now {now.get('source')})"
        )
    return None


def family_problem(folder: Path, model) -> str | None:
    """Why the stamped adapter in ``folder`` cannot mean anything on ``model``: it was trained on
    a base of another family (a masked-diffusion LoRA put on a causal model of the same shapes,
    say). None when the families agree, the adapter carries no stamp, or either side is a
    folder of unknown family ("generic")."""
    saved = (read_stamp(folder) or {}).get("base") or {}
    family, now = saved.get("family"), model.info.family
    if not family or family == now or "generic" in (family, now):
        return None
    return (
        f"adapter {folder} was trained on a {family} base ({saved.get('source')}), and "
        f"{model.info.name!r} is a {now} model: pass the base it was trained on with --model"
    )


def _without_source(identity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in identity.items() if k != "source"}


class AdapterNotReusable(BenchError):
    """A saved adapter the cell about to run must not reuse (another config or base, or
    incomplete); the message says why. The runner retrains an unfinished cell instead."""


def check_saved_adapter(folder: Path, cell, reuse: str | None) -> bool:
    """Before an unfinished cell (``reuse`` = its status) reuses its adapter, or a finished
    cell's stamped adapter is evaluated further: raise :class:`AdapterNotReusable` unless the
    stamp matches ``cell`` file for file (SHA-256). Returns whether the base must be checked too
    (False only for an unstamped adapter of a finished cell, saved before stamps existed)."""
    if reuse is None and read_stamp(folder) is None:
        return False
    problem = reuse_problem(folder, cell, verify_hashes=True)
    if problem:
        raise AdapterNotReusable(f"cell {cell.cell_id}: {problem}")
    return True


def check_base(folder: Path, model, cell) -> None:
    problem = base_problem(folder, model)
    if problem:
        raise AdapterNotReusable(f"cell {cell.cell_id}: {problem}")


def note_reuse(record, folder: Path, reuse: str):
    """The record with one more ``config.adapter_reused`` entry, and the same said in the log."""
    from results.environment import git_state
    from results.schema import utc_now

    previous = record.error.splitlines()[0] if record.error else None
    checked = f"cell config, base and {len(read_stamp(folder)['files'])} files (SHA-256)"
    after = f"it failed: {previous}" if reuse == "failed" else "it was interrupted"
    log.info(
        "cell %s: reusing its saved adapter (trained %s; %s checked), not retraining; %s",
        record.cell_id,
        record.created_at,
        checked,
        after,
    )
    config = dict(record.config)
    # the record's environment is the training's; the scores from here on come from this code
    commit, dirty = git_state()
    entry = {"at": utc_now(), "after": reuse, "error": previous, "checked": checked}
    entry.update(git_commit=commit, git_dirty=dirty)
    config["adapter_reused"] = [*config.get("adapter_reused", []), entry]
    return dataclasses.replace(record, config=config)
