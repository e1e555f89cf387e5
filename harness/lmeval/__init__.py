"""lm-evaluation-harness integration: score a dLLM, with or without a ``bench`` adapter, on any
lm-eval task, and store the scores in the cell's record.

The model class is registered with lm-eval as ``bench-dllm`` once this package is imported
(``lm_eval.simple_evaluate(model="bench-dllm", model_args={"model": "tiny", "adapter":
"runs/NAME/cells/CELL", "mc_num": 128}, ...)``; lm-eval's own command line does not import it)
and is what :func:`run_lm_eval` (``bench eval --lm-eval-tasks ...``) builds. What each request
type computes is in :mod:`harness.lmeval.model`.

One module per job: `args` (model arguments), `adapters` (load an adapter onto its base, checked),
`model` (the lm-eval model), `suites` and `text` (its helpers), `task_manager` (task lookup),
`run` (the Python API), `scores` (lm-eval results -> bench scores) and `store` (records).
"""

from harness.lmeval.adapters import check_adapter_fits, load_adapted
from harness.lmeval.args import DEFAULT_BATCH_SIZE, DEFAULT_MAX_LENGTH, LM_ARGS, MODEL_NAME
from harness.lmeval.model import BenchDLLM
from harness.lmeval.run import evaluate_lm, run_lm_eval
from harness.lmeval.scores import PROTOCOL_PREFIX, scores_from_results
from harness.lmeval.store import RESULTS_SIDECAR, store_results
from harness.lmeval.suites import lm_eval_suite
from harness.lmeval.task_manager import task_manager_for
from harness.lmeval.text import cut_at_stop, rolling_windows

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_LENGTH",
    "LM_ARGS",
    "MODEL_NAME",
    "PROTOCOL_PREFIX",
    "RESULTS_SIDECAR",
    "BenchDLLM",
    "check_adapter_fits",
    "cut_at_stop",
    "evaluate_lm",
    "load_adapted",
    "lm_eval_suite",
    "rolling_windows",
    "run_lm_eval",
    "scores_from_results",
    "store_results",
    "task_manager_for",
]
