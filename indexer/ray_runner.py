"""Encode a build's cache misses on a Ray cluster (``salon index --ray ADDRESS``).

A ``BatchRunner`` (indexer.model): the jobs go, longest first, into a Ray Data job whose actor pool
encodes length-sorted batches; each actor builds its own Embedder once, from the settings, with
the model resolved on its node (bf16 where that node has it natively). Finished batches stream
back to the driver, which checks them and writes the cache and the generation exactly as a local
build does. Ray Data retries the tasks of an actor or node that died (its actor pool restarts
actors without limit), so a batch may be computed twice: the runner keeps side effects out of the
actors, and ``Embedder.encode_jobs`` keeps the first copy of an index it has already received.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from indexer.model import Embedder, ModelError, PassageJob
from indexer.settings import Settings


class _Encoder:
    """One Ray actor: the model loaded once, then one ``forward_jobs`` per batch."""

    def __init__(self, settings: dict[str, Any], model_id: str) -> None:
        import os

        from indexer.model import load_model, resolve_model

        # Each actor owns one CPU of its node: one torch thread, or two actors fight for a core.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        import torch

        s = Settings(**settings)
        torch.set_num_threads(s.ray_threads)
        info = resolve_model(s)
        if info.model_id != model_id:  # another model file on this node: refuse, never mix vectors
            raise ModelError(f"this node resolves model {info.model_id!r}, the driver {model_id!r}")
        self.embedder = Embedder(info, load_model(info), None, s.precision)
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        jobs = [
            PassageJob(str(t), tuple(tuple(p) for p in json.loads(str(sp))))
            for t, sp in zip(batch["text"], batch["spans"], strict=True)
        ]
        arrays = self.embedder.forward_jobs(jobs)
        return {
            "i": batch["i"],
            "rows": np.array([a.shape[0] for a in arrays], dtype=np.int64),
            "data": np.array([np.ascontiguousarray(a, dtype=np.float32).tobytes() for a in arrays], dtype=object),
            "node": np.array([self.node] * len(arrays), dtype=object),
            "precision": np.array([self.embedder.precision] * len(arrays), dtype=object),
        }


class RayRunner:
    """Spreads ``encode_jobs``' misses over a Ray cluster; see the module docstring.

    ``nodes`` counts, after a run, the chunks each node encoded (the operator's check that the
    cluster really shared the work).
    """

    def __init__(self, settings: Settings, address: str | None = None, workers: int | None = None) -> None:
        self.settings = settings
        self.address = address or settings.ray_address or "auto"
        self.workers = workers if workers is not None else settings.ray_workers
        self.nodes: Counter[str] = Counter()
        self.precisions: set[str] = set()

    def _connect(self) -> int:
        import ray

        if not ray.is_initialized():
            # The driver's own code travels with the job: workers import indexer/ from it.
            from pathlib import Path

            root = Path(__file__).resolve().parent.parent
            ray.init(
                address=self.address,
                log_to_driver=False,
                logging_level=logging.WARNING,
                runtime_env={
                    "working_dir": str(root),
                    "excludes": ["var/", ".venv/", ".git/", "*.db", "tests/", "docs/", "bench/", ".*_cache/"],
                },
            )
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return self.workers or max(1, cpus)

    def __call__(
        self, embedder: Embedder, jobs: list[PassageJob], batch_size: int
    ) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        import ray
        from ray.data import ActorPoolStrategy, DataContext

        size = self._connect()
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False  # the driver shows its own bar (encode_jobs)
        # Longest first: consecutive jobs have similar lengths, so a batch pads little.
        order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].text))
        items = [{"i": i, "text": jobs[i].text, "spans": json.dumps(jobs[i].spans)} for i in order]
        # About one block per batch (up to four per actor), so every actor gets work at once.
        blocks = max(1, min(-(-len(items) // batch_size), 4 * size))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        # Settings travel as plain values; credentials are not needed by the encoders.
        conf = self.settings.model_dump(mode="json", exclude={"milvus_token", "admin_token"})
        out = ds.map_batches(
            _Encoder,
            fn_constructor_kwargs={"settings": conf, "model_id": embedder.info.model_id},
            compute=ActorPoolStrategy(size=size),
            batch_size=batch_size,
            num_cpus=1,
            batch_format="numpy",
        )
        dim = embedder.dim
        for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
            idx = [int(i) for i in batch["i"]]
            arrays = [
                np.frombuffer(d, dtype=np.float32).reshape(int(r), dim)
                for d, r in zip(batch["data"], batch["rows"], strict=True)
            ]
            for n in batch["node"]:
                if str(n) not in self.nodes:  # the operator sees each node join the work
                    print(f"salon: ray: first vectors from node {str(n)[:8]}", file=sys.stderr, flush=True)
                self.nodes[str(n)] += 1
            self.precisions.update(str(p) for p in batch["precision"])
            yield idx, arrays

    def describe(self) -> str:
        split = ", ".join(f"{n[:8]}: {c}" for n, c in sorted(self.nodes.items()))
        return f"{len(self.nodes)} node(s) ({split}); precision {'/'.join(sorted(self.precisions)) or 'n/a'}"


def runner_from_settings(settings: Settings) -> RayRunner | None:
    """The Ray runner when ``settings.ray_address`` is set, else None (encode in process)."""
    if not settings.ray_address:
        return None
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise ModelError("--ray needs the scale extra: pip install 'salon[scale]' (ray[data])") from exc
    print(f"salon: encoding on the Ray cluster at {settings.ray_address}", file=sys.stderr)
    return RayRunner(settings)
