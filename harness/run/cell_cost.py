"""Cost of a cell before it runs (for ``bench run --dry-run``).

For the tiny model, the time is token counts times per-token rates of ONE torch thread on the
2-core development machine, measured per phase with ``benchmarks/bench_demo_phases.py`` on the
demo grid (training, validation, sampling, the code sandbox per program); a grid run on several
CPU workers divides the sum by their number (``grid_seconds``). Expect +-50%. For real
models, tokens, GPU-hours on a device kind and peak memory come from :mod:`harness.costs`
(FLOPs from the architecture over an assumed utilisation; the derivation is written there).
Every cell whose base's shapes are known here (a folder's config.json, an alias's published
shapes, the cached tiny base) also gets the base's parameter count and its method's trainable
parameters, counted from the architecture (``harness/costs/architecture.py``); a real model
whose shapes are not known gets one line saying so instead of a cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config.cell import is_tiny
from harness.costs import CellCost, DeviceKind, estimate_real, fit_problem
from harness.costs.estimate import gib
from harness.ground.errors import BenchError
from harness.run.cell import CellRequest

# One torch thread, process CPU seconds (benchmarks/bench_demo_phases.py, the demo grid, 2-core
# development machine): math 8.2e-5, choice 8.8e-5, code 8.7e-5 s per training token, etc.
TRAIN_SECONDS_PER_TOKEN = 8.5e-5  # forward + backward + optimizer, batch 32
VALIDATION_SECONDS_PER_TOKEN = 3.3e-5  # one validation forward (every example x every bin)
FORWARD_SECONDS_PER_TOKEN = 1e-5  # one sampling or likelihood forward, batch 64
SANDBOX_SECONDS_PER_PROGRAM = 0.035  # one generated program run in tasks.sandbox
CELL_OVERHEAD_SECONDS = 0.5  # loading the model and the data, writing the record
WORKER_START_SECONDS = 3.5  # a fresh worker process: interpreter, torch and the harness


@dataclass(frozen=True)
class Cost:
    updates: int | None  # None: the training set's size is not known before loading it
    train_examples: int | None  # examples seen in training (updates x batch x accumulation)
    seconds: float | None  # tiny model: wall seconds on the development CPU
    train_tokens: int | None = None
    eval_tokens: int | None = None
    real: CellCost | None = None  # real models: GPU-hours and memory on a device kind
    problem: str | None = None  # why the cell cannot fit its device, if it cannot
    base_params: int | None = None  # the base model's parameters (None: shapes unknown here)
    trainable_params: int | None = None  # the method's trainable parameters on it
    note: str | None = None  # why a real model could not be costed

    @property
    def label(self) -> str:
        if self.real is not None:
            hours = self.real.gpu_hours
            return "? (train size unknown)" if hours is None else f"{hours:.1f} GPU-h"
        if self.seconds is None:
            if self.train_examples is None:
                return "?"
            return f"{self.train_examples:,} train ex."
        return f"~{self.seconds:.0f} s"

    @property
    def memory_label(self) -> str:
        if self.real is None:
            return "-"
        m = self.real.memory
        return f"{gib(m.peak(False))} / GC {gib(m.peak(True))}"

    @property
    def fits_label(self) -> str:
        if self.real is None:
            return "-"
        return "yes" if self.problem is None else "NO"


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def token_labels(cost: Cost) -> tuple[str, str]:
    return _count(cost.train_tokens), _count(cost.eval_tokens)


def param_labels(cost: Cost) -> tuple[str, str]:
    """(base parameters, trainable parameters) as short counts, "?" when unknown."""
    return _count(cost.base_params), _count(cost.trainable_params)


def parameter_counts(cell, arch=None) -> tuple[int | None, int | None]:
    """(base parameters, the method's trainable parameters) from the architecture, or Nones
    when its shapes are not known here."""
    from harness.costs.architecture import adapter_params, architecture_for
    from methods.registry import get_method

    try:
        arch = arch or architecture_for(_tiny_folder(cell.model) or cell.model)
        method = get_method(cell.method)
        config = method.config_cls.from_dict(cell.method_config)
        trainable = adapter_params(arch, cell.method, config) if method.trains else 0
    except BenchError:
        return None, None
    return arch.total_params, trainable


def _tiny_folder(model: str) -> str | None:
    """The tiny base's folder for the ``tiny`` / ``tiny-ar`` aliases, if built or shipped."""
    if model == "tiny":
        from harness.processes.masked.pretrain import tiny_base_dir

        folder = tiny_base_dir()
    elif model == "tiny-ar":
        from harness.processes.causal.pretrain import tiny_ar_base_dir

        folder = tiny_ar_base_dir()
    else:
        return None
    if (folder / "config.json").is_file():
        return str(folder)
    from harness.models.shipped import shipped_base

    shipped = shipped_base(folder.name)
    return str(shipped) if shipped is not None else None


def estimate(request: CellRequest, device: DeviceKind | None = None) -> Cost:
    """The cell's cost; real models are costed on ``device`` (see harness.costs.planning_device)."""
    from harness.models.sandboxes import sandbox_of
    from methods.registry import get_method

    cell = request.cell
    sandbox = sandbox_of(cell.model)
    if sandbox is not None:  # its own cost model (harness/models/sandboxes.py)
        return sandbox.load("estimate")(request)
    if not is_tiny(cell.model):
        from harness.costs import planning_device

        try:
            real = estimate_real(cell, request.steps, device or planning_device())
        except BenchError as err:  # no shapes known for it here: the cells, without a cost
            return Cost(None, None, None, note=f"not costed: {err}")
        assert real is not None
        return Cost(
            real.updates,
            real.train_examples,
            real.seconds,
            real.train_tokens,
            real.eval_tokens,
            real,
            fit_problem(real, cell),
            *parameter_counts(cell, real.arch),
        )
    train = cell.train
    if not get_method(cell.method).trains:
        updates = 0  # the base model is only evaluated
    elif train.steps is not None:
        updates = train.steps
    else:
        n = train.train_limit or 1000
        updates = max(1, round(train.epochs * n / (train.batch_size * train.grad_accum)))
    seen = updates * train.batch_size * train.grad_accum
    tokens, prompt = _lengths(cell.task, train.max_length)
    n_eval = (cell.eval.limit or 200) * len(cell.evaluated_tasks)
    programs = 0
    if cell.eval.protocol == "loglik":
        forwards = n_eval * 4 * cell.eval.mc_num  # about four choices per example
        eval_tokens = forwards * tokens
    else:
        sequence = prompt + cell.eval.gen_length
        # every sampler variant counted at the plain cost: an upper bound for the fast ones
        runs = len(request.steps) * len(request.variants())
        eval_tokens = n_eval * sum(request.steps) * len(request.variants()) * sequence
        programs = runs * sum((cell.eval.limit or 200) for t in cell.evaluated_tasks if _is_code(t))
    # validations: every val_every updates and at the end; the base model validates once
    validations = -(-updates // train.val_every) if updates else 1
    val_tokens = validations * train.noise_bins * train.val_examples * tokens
    seconds = (
        CELL_OVERHEAD_SECONDS
        + seen * tokens * TRAIN_SECONDS_PER_TOKEN
        + val_tokens * VALIDATION_SECONDS_PER_TOKEN
        + eval_tokens * FORWARD_SECONDS_PER_TOKEN
        + programs * SANDBOX_SECONDS_PER_PROGRAM
    )
    return Cost(
        updates, seen, seconds, seen * tokens, eval_tokens, None, None, *parameter_counts(cell)
    )


def grid_seconds(cell_seconds: float, workers: int) -> float:
    """Wall seconds of a tiny grid whose cells take ``cell_seconds`` in all (one thread each),
    spread over ``workers`` processes (each pays its start-up once)."""
    if workers <= 1:
        return cell_seconds
    return cell_seconds / workers + WORKER_START_SECONDS


def _is_code(task: str) -> bool:
    from tasks.registry import get_task

    try:
        return get_task(task).kind == "code"
    except BenchError:  # a suite training set's name, not a task: no programs
        return False


def _lengths(task: str, max_length: int) -> tuple[int, int]:
    """(prompt + answer, prompt) tokens of a typical example: measured on a few generated
    examples for a synthetic task, else ``max_length`` (an upper bound)."""
    from tasks.registry import get_task

    try:
        spec = get_task(task)
    except BenchError:  # a suite training set's name: the upper bound
        spec = None
    if spec is None or spec.make_split is None:
        return max_length, max_length
    examples = spec.make_split("train", 32, 0)
    prompt = sum(len(e.prompt) + 1 for e in examples) // len(examples)  # + BOS
    answer = sum(len(e.target) + 1 for e in examples) // len(examples)  # + EOS
    return prompt + answer, prompt
