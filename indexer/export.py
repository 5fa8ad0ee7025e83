"""ONNX Runtime for Salon's networks (the query encoder, indexer/serving.py; the reader,
search/reader.py): the export from PyTorch and the session options. Each caller checks its graph
against PyTorch and records the outputs it checked, so a server checks them again without it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def session_options() -> Any:
    """ONNX Runtime options for Salon's sessions (query encoder, reader) on a few shared cores.

    No busy-waiting after a run: spinning ORT threads fought FAISS's OpenMP threads for the two
    cores and tripled search p95 on a flat index (bench/scale.py, 20k: 37 → 18 ms). Spinning
    *during* a run, stopped when it ends (``force_spinning_stop``), spares the worker threads a
    sleep and wake-up between the graph's ~200 operators: a reader window 27.0 → 24.5 ms, and no
    CPU left spinning after the run (docs/performance.md).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1")
    so.add_session_config_entry("session.force_spinning_stop", "1")
    return so


def open_session(path: Path, threads: int = 0) -> Any:
    """An ONNX Runtime session of ``path`` on the CPU (``threads``: 0 lets it choose)."""
    import onnxruntime as ort

    so = session_options()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def export(
    module: Any,
    sample: dict[str, np.ndarray],
    path: Path,
    outputs: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> None:
    """Trace ``module`` on the ``sample`` inputs (in order, by name) into ONNX (opset 17) at ``path``."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            tuple(torch.from_numpy(v) for v in sample.values()),
            str(path),
            input_names=list(sample),
            output_names=list(outputs),
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )


def cosine_gap(got: np.ndarray, want: np.ndarray) -> float:
    """1 − the lowest cosine between matching rows of unit vectors."""
    return 1.0 - float((got * want).sum(axis=1).min())
