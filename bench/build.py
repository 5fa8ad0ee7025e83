"""Index build throughput and peak memory, with the embedding cache off (every text encoded).

    .venv/bin/python bench/build.py ../shared/eval/piaf-dev

Prints chunks/s and tokens/s of the embedding stage (chunks and sentences both), the whole
build time and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.build import build_index
from indexer.corpus import CorpusReport
from indexer.model import Embedder
from indexer.settings import Settings
from search.evaluate import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--max-docs", type=int)
    args = ap.parse_args()
    settings = Settings()
    ds = load_dataset(args.dataset, max_docs=args.max_docs)
    embedder = Embedder.from_settings(settings, use_cache=False)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = build_index(CorpusReport(ds.articles), Path(tmp), embedder, settings)
        total = time.perf_counter() - t0
    m = res.manifest.counts
    texts = m["chunks"] + m["sentences"]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{ds.name}: {m['articles']} articles → {m['chunks']} chunks + {m['sentences']} sentences")
    print(
        f"embedding stage: {res.embed_seconds:.1f} s for {m['encoded_texts']} of {texts} texts, "
        f"{res.embed_tokens} tokens (prompts and special tokens included)"
    )
    print(
        f"  texts/s: {m['encoded_texts'] / res.embed_seconds:.1f} "
        f"(chunks/s counting only the {m['chunks']} chunks: {m['chunks'] / res.embed_seconds:.1f})"
    )
    print(f"  tokens/s: {res.embed_tokens / res.embed_seconds:.0f}")
    print(f"whole build: {total:.1f} s; peak RSS {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
