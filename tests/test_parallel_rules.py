"""Fast-dLLM's commit rules on exact small cases (hand-computed from the rules' definitions:
``get_transfer_index`` with a threshold at NVlabs/Fast-dLLM 24cc59e, ``get_transfer_index_dynamic``
at f6b35ec), next to bench's own ``threshold:X`` / ``factor:X`` with their schedule floor."""

from __future__ import annotations

import math

import pytest
import torch

from harness.config.sampling import parse_parallel
from harness.processes.masked.sampling.parallel import commit_mask

INF = -math.inf


def _commit(confidence: list[float], rule: str, count: int = 1) -> list[int]:
    c = torch.tensor([confidence], dtype=torch.float64)
    eligible = c > INF
    return commit_mask(c, eligible, count, parse_parallel(rule))[0].nonzero().flatten().tolist()


@pytest.mark.parametrize(
    "confidence,rule,count,committed",
    [
        # the most confident always, then every one at or above X; the schedule plays no part
        ([0.2, 0.95, 0.9, INF, 0.89], "fastdllm-threshold:0.9", 4, [1, 2]),
        ([0.2, 0.5, 0.3], "fastdllm-threshold:0.9", 3, [1]),
        # bench's threshold: strictly above X, and at least the schedule's count
        ([0.2, 0.95, 0.9, INF, 0.89], "threshold:0.9", 1, [1]),
        ([0.2, 0.95, 0.9, INF, 0.89], "threshold:0.9", 3, [1, 2, 4]),
        # factor 1: ranks 2, 3, 4 need 1 - 1/3, 1 - 1/4, 1 - 1/5: 0.74 passes, 0.7 fails
        ([0.9, 0.7, 0.74, 0.1, 0.5], "fastdllm-factor:1", 1, [0, 2]),
        # only the last masked position fails (0.5 < 0.8): Fast-dLLM commits it as well
        ([0.9, 0.78, 0.76, 0.5], "fastdllm-factor:1", 1, [0, 1, 2, 3]),
        ([0.9, 0.78, 0.76, 0.5], "factor:1", 1, [0, 1, 2]),
        ([0.3], "fastdllm-factor:1", 1, [0]),
        ([0.3, 0.2], "fastdllm-factor:1", 1, [0, 1]),  # the second fails and is the last
        ([0.3, 0.2, 0.1], "fastdllm-factor:1", 1, [0]),
        ([0.3, 0.2, 0.1], "factor:1", 2, [0, 1]),  # bench's floor
    ],
)
def test_commit_rules_on_exact_cases(confidence, rule, count, committed):
    assert sorted(_commit(confidence, rule, count)) == sorted(committed)


def test_fastdllm_rules_ignore_steps_and_bench_rules_do_not():
    assert parse_parallel("fastdllm-threshold:0.9").ignores_steps
    assert parse_parallel("fastdllm-factor:1").ignores_steps
    assert not parse_parallel("threshold:0.9").ignores_steps
