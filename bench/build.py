"""Index build throughput and peak memory, with the embedding cache off (every text encoded).

    .venv/bin/python bench/build.py ../shared/eval/piaf-dev --json docs/bench/build-piaf.json
    .venv/bin/python bench/build.py ../shared/eval/orangesum --max-docs 2400 --json docs/bench/build-orangesum.json

Prints the whole build time, the embedding stage's time, tokens and tokens/s (chunks; sentence
vectors are pooled from the chunks' pass), and the peak resident memory of the process
(``make bench-build``).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from indexer.build import build_index
from indexer.corpus import CorpusReport
from indexer.model import Embedder
from indexer.settings import Settings
from search.evaluate import load_dataset, table, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    settings = Settings()
    ds = load_dataset(args.dataset, max_docs=args.max_docs)
    embedder = Embedder.from_settings(settings, use_cache=False)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        res = build_index(CorpusReport(ds.articles), Path(tmp), embedder, settings)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    m = res.manifest.counts
    row = {
        "dataset": ds.name,
        "articles": m["articles"],
        "chunks": m["chunks"],
        "sentences": m["sentences"],
        "encoded_texts": m["encoded_texts"],
        "build_s": round(total, 1),
        "build_cpu_s": round(cpu, 1),
        "embed_s": round(res.embed_seconds, 1),
        "embed_tokens": res.embed_tokens,
        "tokens_per_s": round(res.embed_tokens / res.embed_seconds) if res.embed_seconds else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"\n{ds.name}: {m['articles']} articles → {m['chunks']} chunks + {m['sentences']} sentences, cache off")
    cols = ["build_s", "build_cpu_s", "embed_s", "embed_tokens", "tokens_per_s", "peak_rss_mib"]
    print(table(cols, [[row[c] for c in cols]]))
    write_json(args.json, row)


if __name__ == "__main__":
    main()
