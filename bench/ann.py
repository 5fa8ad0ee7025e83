"""Exact versus approximate dense search: recall@10, latency, memory and build time per index.

    .venv/bin/python bench/ann.py --real var/bench/scale-all --json docs/bench/ann-283k.json  # after bench/scale.py
    .venv/bin/python bench/ann.py --synthetic 1000000 --like var/bench/scale-all --quick --json docs/bench/ann-1m.json
    .venv/bin/python bench/ann.py --synthetic 1000000   # a Gaussian mixture, no index needed

--synthetic N: N unit vectors of dimension 384 drawn from a mixture of 10,000 Gaussian clusters
(cosine to their centre ≈ 0.7, like e5 passages, which all sit in a narrow cone), and 500
queries from the same mixture. --real: the chunk vectors of a built generation and the
OrangeSum headlines encoded as queries. Ground truth is exact inner-product search.

For each index (flat, flat fp16, HNSW M=16/32 at several efSearch, IVF flat/SQ8/PQ at several
nprobe) it prints build seconds, bytes per vector, single-query p50/p95 and recall@10 against
exact search. ``--json`` writes the rows for bench/plots.py (``make bench-ann`` runs the first two).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from load import rss_mib

from search.evaluate import write_json

ROOT = Path(__file__).resolve().parent.parent


def synthetic(n: int, nq: int, dim: int = 384, clusters: int = 10_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # A shared direction plus cluster centres: e5 vectors share a strong common component
    # (any two passages have cosine ≈ 0.7), which is what makes graph and IVF search work.
    common = rng.standard_normal(dim).astype(np.float32)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres = 1.2 * common + centres
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, dim), np.float32)
        for s in range(0, m, 100_000):
            k = min(100_000, m - s)
            c = centres[rng.integers(0, clusters, k)]
            v = c + 1.0 / np.sqrt(dim) * rng.standard_normal((k, dim)).astype(np.float32)
            out[s : s + k] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    return draw(n), draw(nq)


def real(generation_root: Path, nq: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    from indexer import layout
    from indexer.model import Embedder
    from indexer.settings import Settings

    gen = layout.current_generation(generation_root)
    index = faiss.read_index(str(gen / layout.DENSE))
    xb = index.reconstruct_n(0, index.ntotal)
    heads = [
        json.loads(x)["query"]
        for x in (ROOT.parent / "shared/eval/orangesum/headlines-valid.jsonl").read_text().splitlines()
        if x
    ]
    emb = Embedder.from_settings(Settings(), use_cache=False)
    xq = np.stack([emb.encode_query(h) for h in heads[:nq]])
    return np.ascontiguousarray(xb, dtype=np.float32), xq.astype(np.float32)


def search_timed(index: Any, xq: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, list[float]]:
    out = np.empty((len(xq), k), np.int64)
    lat = []
    for i in range(len(xq)):
        t = time.perf_counter()
        _, ids = index.search(xq[i : i + 1], k, params=params)
        lat.append((time.perf_counter() - t) * 1000)
        out[i] = ids[0]
    return out, lat


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--synthetic", type=int, metavar="N")
    src.add_argument("--real", type=Path, metavar="INDEX_DIR")
    ap.add_argument(
        "--like",
        type=Path,
        metavar="INDEX_DIR",
        help="with --synthetic: draw the N vectors around the real chunk vectors of this index "
        "(each a real vector plus noise, cosine ≈ 0.9 to it) and use real queries",
    )
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="fewer index types (flat, HNSW32, IVF-SQ8)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import faiss

    t0 = time.perf_counter()
    if args.synthetic and args.like:
        seeds, xq = real(args.like, args.queries)
        rng = np.random.default_rng(0)
        xb = np.empty((args.synthetic, seeds.shape[1]), np.float32)
        for s in range(0, args.synthetic, 100_000):
            k = min(100_000, args.synthetic - s)
            v = seeds[rng.integers(0, len(seeds), k)]
            v = v + 0.48 / np.sqrt(seeds.shape[1]) * rng.standard_normal(v.shape).astype(np.float32)
            xb[s : s + k] = v / np.linalg.norm(v, axis=1, keepdims=True)
        label = f"synthetic {len(xb):,} × {xb.shape[1]} around {len(seeds):,} real chunk vectors, real queries"
    elif args.synthetic:
        xb, xq = synthetic(args.synthetic, args.queries)
        label = f"synthetic {len(xb):,} × {xb.shape[1]} (Gaussian mixture)"
    else:
        xb, xq = real(args.real, args.queries)
        label = f"real chunk vectors of {args.real} ({len(xb):,} × {xb.shape[1]}), OrangeSum headlines as queries"
    n, dim = xb.shape
    print(f"{label}; data ready in {time.perf_counter() - t0:.0f} s; {os.cpu_count()} cores", file=sys.stderr)

    flat = faiss.IndexFlatIP(dim)
    flat.add(xb)
    _, truth = flat.search(xq, 10)
    rows: list[dict[str, Any]] = []

    def record(name: str, index: Any, build_s: float, mem_bytes: float, params: Any = None, knob: str = "") -> None:
        found, lat = search_timed(index, xq, 10, params)
        rows.append(
            {
                "index": name,
                "knob": knob,
                "build_s": round(build_s, 1),
                "bytes_per_vector": round(mem_bytes / n, 1),
                "p50_ms": float(np.percentile(lat, 50)),
                "p95_ms": float(np.percentile(lat, 95)),
                "recall10": recall_at(found, truth),
            }
        )
        r = rows[-1]
        print(
            f"  {name} {knob}: recall@10 {r['recall10']:.3f}, p50 {r['p50_ms']:.2f} ms, "
            f"{r['bytes_per_vector']:.0f} B/vector, build {r['build_s']} s",
            file=sys.stderr,
        )

    record("flat (exact)", flat, 0.0, n * dim * 4)

    if not args.quick:
        t = time.perf_counter()
        sq16 = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        sq16.add(xb)
        record("flat fp16", sq16, time.perf_counter() - t, n * dim * 2)

    for m in (16, 32) if not args.quick else (32,):
        before = rss_mib(os.getpid())
        t = time.perf_counter()
        h = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        h.hnsw.efConstruction = 80
        h.add(xb)
        build = time.perf_counter() - t
        mem = n * dim * 4 + n * m * 2 * 4 * 1.1  # vectors + level-0 links (2M) + upper levels (~10%)
        mem = max(mem, (rss_mib(os.getpid()) - before) * 2**20)
        for ef in (16, 32, 64, 128, 256):
            record(f"HNSW{m}", h, build, mem, faiss.SearchParametersHNSW(efSearch=max(ef, 10)), f"efSearch={ef}")
        del h

    nlist = int(4 * np.sqrt(n))
    train = xb[np.random.default_rng(1).choice(n, min(n, 60 * nlist), replace=False)]
    kinds = (
        [("IVF-SQ8", f"IVF{nlist},SQ8", dim)]
        if args.quick
        else [
            ("IVF-flat", f"IVF{nlist},Flat", dim * 4),
            ("IVF-SQ8", f"IVF{nlist},SQ8", dim),
            ("IVF-PQ48", f"IVF{nlist},PQ48", 48),
        ]
    )
    for name, spec, code in kinds:
        t = time.perf_counter()
        ivf = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        ivf.train(train)
        ivf.add(xb)
        build = time.perf_counter() - t
        for nprobe in (4, 8, 16, 32, 64, 128):
            record(
                name,
                ivf,
                build,
                n * (code + 8),
                faiss.SearchParametersIVF(nprobe=nprobe),
                f"nlist={nlist} nprobe={nprobe}",
            )
        del ivf

    print(f"\n{label}; {len(xq)} single queries, top 10, {os.cpu_count()} cores")
    print("| index | setting | recall@10 | p50 ms | p95 ms | bytes/vector | build s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['index']} | {r['knob']} | {r['recall10']:.3f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | "
            f"{r['bytes_per_vector']:.0f} | {r['build_s']} |"
        )
    write_json(args.json, {"label": label, "n": n, "rows": rows})


if __name__ == "__main__":
    main()
