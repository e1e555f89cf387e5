"""The Python API behind `bench eval --lm-eval-tasks`: lm-eval's ``simple_evaluate`` on a
``bench-dllm`` model, with lm-eval's failures turned into one clear BenchError."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.ground.errors import BenchError
from harness.lmeval.model import BenchDLLM
from harness.lmeval.store import store_results
from harness.lmeval.task_manager import task_manager_for


def _task_names(tasks: Sequence[str]) -> list[str]:
    """The task names given, stripped; none at all is one BenchError."""
    names = [t.strip() for t in tasks if t and t.strip()]
    if not names:
        raise BenchError("no lm-eval task given: pass --lm-eval-tasks NAME[,NAME...]")
    return names


def evaluate_lm(
    lm: BenchDLLM,
    tasks: Sequence[str],
    limit: int | None = None,
    include_path: Path | None = None,
    apply_chat_template: bool | None = None,
    log_samples: bool = True,
    task_manager=None,
    confirm_run_unsafe_code: bool = False,
) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` on ``lm``; ``apply_chat_template`` None means: when the
    tokenizer has a chat template (instruct models). ``confirm_run_unsafe_code`` lets tasks that
    execute generated code (humaneval, mbpp) run. Standard errors are not computed
    (``bootstrap_iters=0``): the report derives intervals from the per-example values."""
    import lm_eval

    tasks = _task_names(tasks)
    if limit is not None and limit <= 0:
        raise BenchError(f"--limit must be positive, got {limit}")
    manager = task_manager or task_manager_for(tasks, include_path)
    if apply_chat_template is None:
        apply_chat_template = bool(lm.chat_template())
    names = ", ".join(tasks)
    try:
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=list(tasks),
            limit=limit,
            task_manager=manager,
            apply_chat_template=apply_chat_template,
            log_samples=log_samples,
            random_seed=lm.seed,
            numpy_random_seed=lm.seed,
            torch_random_seed=lm.seed,
            fewshot_random_seed=lm.seed,
            bootstrap_iters=0,
            confirm_run_unsafe_code=confirm_run_unsafe_code,
        )
    except (ConnectionError, FileNotFoundError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "code_eval" in str(err):
            raise BenchError(
                f"lm-eval task(s) {names} score with HF evaluate's code_eval metric, which is not "
                "cached here: run `python -c \"import evaluate; evaluate.load('code_eval')\"` once "
                "where the Hugging Face hub is reachable (and set HF_ALLOW_CODE_EVAL=1)"
            ) from err
        raise BenchError(
            f"lm-eval task(s) {names} need data or a metric that is neither local nor cached "
            f"({first}): run once where the Hugging Face hub is reachable (without "
            "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE) to fill the cache, or write a local task YAML "
            "(dataset_path: json) and pass --include-path DIR"
        ) from err
    except ValueError as err:
        if "unsafe" not in str(err):
            raise
        raise BenchError(
            f"lm-eval task(s) {names} execute generated code: allow it explicitly "
            "(confirm_run_unsafe_code=True; code_eval also needs HF_ALLOW_CODE_EVAL=1)"
        ) from err
    if results is None:  # only a non-zero rank of a distributed run
        raise BenchError("lm-eval returned no results")
    return results


def run_lm_eval(
    model: str | None,
    adapter: Path | None,
    tasks: list[str],
    limit: int | None,
    include_path: Path | None,
    device: str,
    model_args: dict[str, Any],
    *,
    apply_chat_template: bool | None = None,
    confirm_run_unsafe_code: bool = False,
    runs_dir: Path = Path("runs"),
) -> dict[str, Any]:
    """Score ``model`` (None: the cell's own base) plus ``adapter`` (a cell or adapter folder)
    on lm-eval ``tasks`` and store the scores (protocol ``lm-eval:<task>``).

    With a cell's adapter the scores go into that cell's record (replacing earlier scores of the
    same tasks); otherwise into ``runs_dir/lm-eval/<model>/cells/<id>/record.json``, whose id
    depends on the adapter and the model arguments, so re-runs with more tasks add to it. The
    full lm-eval results (without samples) go beside the record in ``lm_eval_results.json``.
    Returns lm-eval's results with ``bench_record`` (the record's path) added.
    """
    from harness.models.loader import valid_model_names

    if model is None and adapter is None:
        raise BenchError(f"pass --model ({valid_model_names()}) or --adapter CELL")
    tasks = _task_names(tasks)
    # Check the tasks before loading the model: a typo should not cost a model load.
    manager = task_manager_for(tasks, include_path)
    lm = BenchDLLM(
        model=model, adapter=str(adapter) if adapter else None, device=device, **model_args
    )
    results = evaluate_lm(
        lm,
        tasks,
        limit,
        include_path,
        apply_chat_template,
        task_manager=manager,
        confirm_run_unsafe_code=confirm_run_unsafe_code,
    )
    path = store_results(lm, results, limit, runs_dir)
    results["bench_record"] = str(path)
    return results
