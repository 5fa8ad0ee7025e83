"""Search latency of the Milvus store (embedded milvus-lite) against the local store, same index.

    .venv/bin/python bench/milvus_store.py ../shared/eval/orangesum --size 20000 --cached-only \
        --json docs/bench/milvus-latency-20k.json

The OrangeSum subset and its local generation come from bench/scale.py (``var/bench/scale-<size>``,
built once; ``--cached-only`` gives texts missing from the embedding cache random unit vectors,
reported: latency does not depend on the values). The generation is published to a fresh
milvus-lite under ``var/bench/``, then the same queries (OrangeSum headlines and PIAF questions,
interleaved) run through ``Engine.search`` on each store, alternating query by query so both see
the same machine load. Printed: publish time, p50/p95/p99 of the whole search and of the dense and
lexical retrieval alone, and the share of queries whose top-10 is identical on both stores
(``make bench-milvus``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from scale import ROOT, ensure_index, queries, subset

from indexer import layout
from indexer.analysis import analyze
from indexer.milvus import publish
from indexer.model import Embedder
from indexer.settings import Settings
from search.engine import Engine
from search.evaluate import load_dataset, p50_95_99, table, write_json


def timed(engine: Engine, q: str, qv: Any) -> tuple[float, float, float, list[tuple[str, int]]]:
    t0 = time.perf_counter()
    res = engine.search(q, k=10)
    t1 = time.perf_counter()
    v = engine.store.view()
    v.dense(qv, engine.settings.candidates, None)
    t2 = time.perf_counter()
    v.lexical(analyze(q), engine.settings.candidates, None)
    t3 = time.perf_counter()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000, [(r.doc_id, r.start) for r in res.results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="../shared/eval/orangesum")
    ap.add_argument("--piaf", type=Path, default=Path("../shared/eval/piaf-dev"))
    ap.add_argument("--size", type=int, default=20_000, help="paragraphs")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--cached-only", action="store_true", help="random stand-ins for texts not in the cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = Settings()
    ds = load_dataset(args.dataset)
    embedder = Embedder.from_settings(settings)
    arts = subset(ds.articles, args.size)
    label = str(args.size)
    where = ensure_index(label, arts, embedder, settings, False, args.cached_only)
    marker = where / "RANDOM_VECTORS"
    db = ROOT / "var" / "bench" / f"milvus-{label}.db"
    shutil.rmtree(db, ignore_errors=True)
    ms = settings.model_copy(update={"store": "milvus", "milvus_uri": str(db)})
    gen = layout.current_generation(where)
    pub = publish(gen, ms)
    print(f"published {pub.counts} in {pub.seconds:.1f} s", file=sys.stderr)
    engines = {"local": Engine.open(where, settings, embedder), "milvus": Engine.open(where, ms, embedder)}
    qs = queries(args.dataset, args.piaf, args.queries)
    for e in engines.values():
        for q in qs[:10]:
            e.search(q, k=10)  # lazy loads, caches
    # Give milvus-lite's background compaction after the bulk insert time to settle
    # (SCALE-NOTES: p50 65–112 ms during the first minute, ~15 ms after).
    time.sleep(60)
    lat: dict[str, list[tuple[float, float, float]]] = {k: [] for k in engines}
    same = 0
    for q in qs:
        qv = engines["local"].runtime.encode_query(q)
        tops = {}
        for name, e in engines.items():
            total, dense, lex, top = timed(e, q, qv)
            lat[name].append((total, dense, lex))
            tops[name] = top
        same += tops["local"] == tops["milvus"]
    row: dict[str, Any] = {
        "paragraphs": sum(a.text.count("\n\n") + 1 for a in arts),
        "articles": len(arts),
        "chunks": pub.counts["chunks"],
        "sentences": pub.counts["sentences"],
        "random_vectors": marker.read_text().strip() if marker.is_file() else "",
        "publish_seconds": round(pub.seconds, 1),
        "queries": len(qs),
        "same_top10": same / len(qs),
    }
    stages = ("search", "dense", "lexical")
    for name, xs in lat.items():
        for i, stage in enumerate(stages):
            row[f"{name}_{stage}_ms"] = p50_95_99([x[i] for x in xs])
    print(
        f"\n{row['paragraphs']:,} OrangeSum paragraphs ({row['chunks']:,} chunks, {row['sentences']:,} sentences), "
        f"{row['queries']} queries, ms p50 / p95 / p99; published to milvus-lite in {row['publish_seconds']} s"
    )
    if row["random_vectors"]:
        print(f"passage vectors: {row['random_vectors']} (--cached-only: latency only)")
    print(
        table(
            ["store", *stages],
            [[name] + [" / ".join(map(str, row[f"{name}_{s}_ms"])) for s in stages] for name in engines],
        )
    )
    print(f"queries with the same top 10 on both stores: {row['same_top10']:.3f}")
    write_json(args.json, row)


if __name__ == "__main__":
    main()
