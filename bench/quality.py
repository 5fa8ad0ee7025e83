"""Retrieval and answer quality, side by side, in one run: BM25 alone, dense alone, Salon, txtai.

    .venv/bin/python bench/quality.py ../shared/eval/piaf-dev --no-cache --out docs/bench/retrieval-piaf.json
    .venv/bin/python bench/quality.py ../shared/eval/orangesum --max-docs 2400 --out docs/bench/retrieval-orangesum.json

The first three rows are `salon eval` (same index, same engine, same code path as /search);
the fourth is txtai (PyPI `txtai`) with its hybrid mode over the same local model folder, the
same e5 prompts, the same documents (title + text) and the same questions. Prints a Markdown
table and writes the raw figures as JSON with --out (``make bench-quality``; ``make bench-txtai``
runs the first command alone).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer.model import resolve_model
from indexer.settings import Settings
from search.evaluate import evaluate, load_dataset, metrics_for, write_json

COLS = ["R@1", "R@5", "R@20", "MRR@10", "nDCG@10", "p50_ms", "p95_ms"]


def run_txtai(folder: Path, settings: Settings, max_docs: int | None, limit: int | None) -> dict[str, Any]:
    from txtai import Embeddings

    ds = load_dataset(folder, max_docs=max_docs, limit=limit)
    info = resolve_model(settings)
    emb = Embeddings(
        path=str(info.path),
        method="sentence-transformers",
        content=True,
        hybrid=True,
        instructions={"query": "query: ", "data": "passage: "},
    )
    t0 = time.perf_counter()
    emb.index((a.id, f"{a.title}\n\n{a.text}" if a.title else a.text, None) for a in ds.articles)
    build = time.perf_counter() - t0
    ranks: list[int | None] = []
    lat: list[float] = []
    emb.search("échauffement", 1)
    for q in ds.questions:
        t = time.perf_counter()
        res = emb.search(q.text, 20)
        lat.append((time.perf_counter() - t) * 1000)
        ids = [r["id"] for r in res]
        ranks.append(ids.index(q.gold_doc) + 1 if q.gold_doc in ids else None)
    out: dict[str, Any] = metrics_for(ranks, lat)
    out["build_seconds"] = round(build, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--skip-txtai", action="store_true")
    ap.add_argument("--out", type=Path, help="Write the raw figures as JSON here.")
    ap.add_argument(
        "--no-cache", action="store_true", help="Encode everything (fair build times against txtai, which has no cache)"
    )
    args = ap.parse_args()
    settings = Settings()
    report = evaluate(
        args.dataset,
        settings,
        ["lexical", "dense", "hybrid"],
        limit=args.limit,
        max_docs=args.max_docs,
        use_cache=not args.no_cache,
    )
    rows = {
        "BM25 (bm25s, French analyser)": report["modes"]["lexical"],
        "dense (e5-small, FAISS)": report["modes"]["dense"],
        "Salon (hybrid + sentence rerank)": report["modes"]["hybrid"],
    }
    write_json(args.out, report)  # Salon's figures are kept even if the reference run fails
    if not args.skip_txtai:
        rows["txtai 9.14 hybrid (same model)"] = run_txtai(args.dataset, settings, args.max_docs, args.limit)
        report["txtai"] = rows["txtai 9.14 hybrid (same model)"]
    print(
        f"\n{report['dataset']}: {report['documents']} documents, {report['questions']} questions. "
        f"{report.get('note', '')}\n"
    )
    print("| system | " + " | ".join(COLS) + " |")
    print("|---" * (len(COLS) + 1) + "|")
    for name, m in rows.items():
        print(f"| {name} | " + " | ".join(f"{m[c]:.3f}" if "ms" not in c else f"{m[c]:.1f}" for c in COLS) + " |")
    h = report["modes"]["hybrid"]
    if "txtai" in report:
        t = report["txtai"]
        b = report["build"]
        cached = "" if args.no_cache else " (Salon's embedding cache was on: rerun with --no-cache for build times)"
        print(f"\nSpeed, Salon against txtai, same corpus, model and questions{cached}:\n")
        print("| | Salon | txtai | Salon / txtai |")
        print("|---|---|---|---|")
        print(
            f"| index build, s ({report['chunks']} chunks + {report['sentences']} sentences for Salon, "
            f"{report['documents']} documents for txtai) | {b['seconds']:.1f} | {t['build_seconds']:.1f} | "
            f"{b['seconds'] / t['build_seconds']:.2f} |"
        )
        for c in ("p50_ms", "p95_ms"):
            print(f"| query {c[:3]}, ms | {h[c]:.1f} | {t[c]:.1f} | {h[c] / t[c]:.2f} |")
        print(f"| Recall@5 | {h['R@5']:.3f} | {t['R@5']:.3f} | {h['R@5'] / t['R@5']:.2f} |")
    if "answer_sentence_hit" in h:
        print(
            f"\nAnswers (Salon): top answer sentence contains a gold answer for {h['answer_sentence_hit']:.3f} "
            f"of questions (abstention {h['abstention']:.3f}, precision when answering {h['answer_precision']:.3f}; "
            f"{h['answer_sentence_hit_no_abstention']:.3f} if it never abstained); "
            f"short span EM {h['span_em']:.3f}, F1 {h['span_f1']:.3f}."
        )
    write_json(args.out, report)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
