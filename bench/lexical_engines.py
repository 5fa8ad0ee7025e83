"""Why bm25s: the two lexical engines the issue names, on PIAF dev, same French analysis goal.

    .venv/bin/pip install tantivy==0.27.0 && .venv/bin/python bench/lexical_engines.py ../shared/eval/piaf-dev

- bm25s over Salon's analyser (indexer/analysis.py: elision, ligatures, accents, stop words,
  Snowball stems), as the engine uses it;
- tantivy with its own French chain (simple tokenizer → lowercase → ascii_fold → French stemmer),
  queried with every term OR-ed (the query text is tokenized by the same analyzer).
Prints R@1, R@5, MRR@10, index build time and query p50/p95 (passage = title + text).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.analysis import analyze
from search.evaluate import load_dataset, metrics_for


def run_bm25s(docs: list[tuple[str, str]], questions: list) -> dict:  # type: ignore[type-arg]
    import bm25s

    t0 = time.perf_counter()
    r = bm25s.BM25(method="lucene")
    r.index([analyze(t) or ["\x00"] for _, t in docs], show_progress=False)
    build = time.perf_counter() - t0
    vocab = r.vocab_dict
    ranks, lat = [], []
    for q in questions:
        t = time.perf_counter()
        terms = [x for x in analyze(q.text) if x in vocab]
        scores = r.get_scores(terms) if terms else np.zeros(len(docs))
        top = np.argsort(-scores)[:20]
        lat.append((time.perf_counter() - t) * 1000)
        ids = [docs[i][0] for i in top if scores[i] > 0]
        ranks.append(ids.index(q.gold_doc) + 1 if q.gold_doc in ids else None)
    return {**metrics_for(ranks, lat), "build_s": build}


def run_tantivy(docs: list[tuple[str, str]], questions: list) -> dict:  # type: ignore[type-arg]
    import tantivy

    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("french"))
        .build()
    )
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw")
    sb.add_text_field("body", stored=False, tokenizer_name="fr")
    schema = sb.build()
    with tempfile.TemporaryDirectory() as tmp:
        index = tantivy.Index(schema, path=tmp)
        index.register_tokenizer("fr", analyzer)
        t0 = time.perf_counter()
        w = index.writer()
        for did, text in docs:
            w.add_document(tantivy.Document(id=did, body=text))
        w.commit()
        index.reload()
        build = time.perf_counter() - t0
        searcher = index.searcher()
        ranks, lat = [], []
        for q in questions:
            t = time.perf_counter()
            toks = [tok for tok in analyzer.analyze(q.text)]
            ids: list[str] = []
            if toks:
                query = tantivy.Query.boolean_query(
                    [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", tok)) for tok in toks]
                )
                hits = searcher.search(query, 20).hits
                ids = [searcher.doc(addr)["id"][0] for _, addr in hits]
            lat.append((time.perf_counter() - t) * 1000)
            ranks.append(ids.index(q.gold_doc) + 1 if q.gold_doc in ids else None)
    return {**metrics_for(ranks, lat), "build_s": build}


def main() -> None:
    ds = load_dataset(Path(sys.argv[1]))
    docs = [(a.id, f"{a.title}\n\n{a.text}" if a.title else a.text) for a in ds.articles]
    print(f"{ds.name}: {len(docs)} passages, {len(ds.questions)} questions\n")
    print("| engine | R@1 | R@5 | MRR@10 | build s | p50 ms | p95 ms |\n|---|---|---|---|---|---|---|")
    for name, fn in (("bm25s + Salon analyser", run_bm25s), ("tantivy 0.27 French chain", run_tantivy)):
        m = fn(docs, ds.questions)
        print(
            f"| {name} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['MRR@10']:.3f} | {m['build_s']:.2f} | "
            f"{m['p50_ms']:.2f} | {m['p95_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
