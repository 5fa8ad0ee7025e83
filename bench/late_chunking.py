"""Sentence vectors from the chunk's own pass ("late") against encoding each sentence again
("separate"), side by side in one run: build time and tokens with the embedding cache off, then
retrieval and answer quality on the index each way built.

    .venv/bin/python bench/late_chunking.py ../shared/eval/piaf-dev
    .venv/bin/python bench/late_chunking.py ../shared/eval/orangesum --max-docs 2400

Both builds run in this one process, one after the other, on the same documents and questions.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.settings import Settings
from search.evaluate import evaluate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--max-docs", type=int)
    ap.add_argument("--limit", type=int, help="evaluate only the first N questions")
    ap.add_argument("--ways", default="separate,late", help="sentence-vector ways to compare, in this order")
    ap.add_argument("--out", type=Path, help="write the raw figures here as JSON")
    args = ap.parse_args()
    runs: dict[str, Any] = {}
    for way in args.ways.split(","):
        settings = Settings(sentence_vectors=way)  # type: ignore[arg-type]
        print(f"[{way}] building and evaluating…", file=sys.stderr)
        runs[way] = evaluate(
            args.dataset, settings, ["hybrid"], args.limit, args.max_docs, progress=False, use_cache=False
        )
    first = runs[args.ways.split(",")[0]]
    print(f"{first['dataset']}: {first['documents']} documents, {first['questions']} questions, embedding cache off\n")
    print("| way | build s | build CPU s | embed s | tokens | R@1 | MRR@10 | answer sentence, never abstaining |")
    print("|---|---|---|---|---|---|---|---|")
    for way, r in runs.items():
        b, m = r["build"], r["modes"]["hybrid"]
        h = m["held_out"]
        # each quality figure: all questions, then (in brackets) the half no constant was fitted on
        hit = ""
        if "answer_sentence_hit_no_abstention" in m:
            hit = f"{m['answer_sentence_hit_no_abstention']:.3f} ({h['answer_sentence_hit_no_abstention']:.3f})"
        print(
            f"| {way} | {b['seconds']:.1f} | {b['cpu_seconds']:.1f} | {b['embed_seconds']:.1f} | "
            f"{b['embed_tokens']:,} | {m['R@1']:.3f} ({h['R@1']:.3f}) | {m['MRR@10']:.3f} ({h['MRR@10']:.3f}) | {hit} |"
        )
    print(f"(in brackets: the {first['modes']['hybrid']['held_out']['questions']} held-out questions of bench/tune.py)")
    ways = list(runs)
    if len(ways) == 2:
        a, b = runs[ways[0]]["build"], runs[ways[1]]["build"]
        print(
            f"\n{ways[1]} / {ways[0]}: build {b['seconds'] / a['seconds']:.2f}×, "
            f"CPU {b['cpu_seconds'] / a['cpu_seconds']:.2f}×, tokens {b['embed_tokens'] / a['embed_tokens']:.2f}×"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(runs, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
