"""Search latency against corpus size, in process and over HTTP, on OrangeSum paragraphs.

    .venv/bin/python bench/scale.py ../shared/eval/orangesum --sizes 1000,20000,all --cached-only all \
        --json docs/bench/search-latency-vs-size.json
    .venv/bin/python bench/scale.py ../shared/eval/orangesum --sizes all --cached-only all --with-piaf \
        --no-recall --no-http --json docs/bench/question-latency-283k.json

For each size, whole articles are drawn in a seeded random order until they hold that many
paragraphs (``all`` = the 282,996 paragraphs); each size is indexed once into
``var/bench/scale-<size>`` (reused by later runs while model and settings match) through the
real build, so embeddings come from, and go to, the embedding cache: the first run at ``all``
embeds everything (see docs/performance.md for how long that took), later runs re-encode nothing.

Queries: the OrangeSum headlines (keyword-like) and PIAF dev questions (questions, so the answer
stage runs too), interleaved. Printed per size: chunks, ANN kind, build time, p50/p95/p99 of the
whole ``Engine.search`` and of its stages (query encoding, dense, lexical; for the questions, the
search again without the answer step), Recall@1/5 of the
headlines whose article is in the subset, the same over HTTP against ``salon serve``, and the
server's resident memory after the run. ``--json`` writes the figures for bench/plots.py
(``make bench-scale`` runs both commands above).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from load import free_port, rss_mib

from indexer import layout
from indexer.analysis import analyze
from indexer.build import build_index
from indexer.corpus import Article, CorpusReport
from indexer.model import Embedder
from indexer.settings import Settings
from search.evaluate import load_dataset, metrics_for, p50_95_99, write_json

ROOT = Path(__file__).resolve().parent.parent


def subset(articles: list[Article], size: int | None, seed: int = 13) -> list[Article]:
    if size is None:
        return articles
    order = list(articles)
    random.Random(seed).shuffle(order)
    out, n = [], 0
    for a in order:
        if n >= size:
            break
        out.append(a)
        n += a.text.count("\n\n") + 1
    return out


class CachedOrRandom(Embedder):
    """Chunk and sentence vectors from the embedding cache only; a chunk missing there gets random
    unit vectors instead of being encoded (counted, and reported next to every figure it touches).

    For latency at a size whose texts could not all be encoded in the time at hand: the work a
    search does per vector (a dot product, a graph step) does not depend on the values.
    """

    def __init__(self, base: Embedder) -> None:
        super().__init__(base.info, base.model, base.cache, base.precision)
        self.random = 0
        self.real = 0
        self._rng = np.random.default_rng(0)

    def encode_jobs(
        self, jobs: Any, progress: str | None = None, batch_size: int = 16, runner: Any = None
    ) -> list[np.ndarray]:
        assert self.cache is not None, "needs the embedding cache"
        keys = [self.job_key(j) for j in jobs]
        hits = self.cache.get_many(list(set(keys)))
        out = []
        for job, key in zip(jobs, keys, strict=True):
            if key in hits:
                self.real += 1
                out.append(np.frombuffer(hits[key], dtype=np.float32).reshape(-1, self.dim))
                continue
            self.random += 1
            v = self._rng.standard_normal((1 + len(job.spans), self.dim)).astype(np.float32)
            out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        self.last_encoded = self.last_tokens = 0
        return out


def ensure_index(
    label: str, arts: list[Article], embedder: Embedder, settings: Settings, rebuild: bool, cached_only: bool = False
) -> Path:
    where = ROOT / "var" / "bench" / f"scale-{label}{os.environ.get('SALON_BENCH_SUFFIX', '')}"
    marker = where / "RANDOM_VECTORS"
    if not rebuild:
        try:
            m = layout.Manifest.read(layout.current_generation(where))
            if marker.is_file() and not cached_only:
                raise layout.IndexMissing("built with random stand-ins; rebuild")
            if m.model_id == embedder.info.model_id and m.counts.get("articles") == len(arts):
                print(f"[{label}] reusing {where} ({m.counts['chunks']} chunks, {m.ann})", file=sys.stderr)
                return where
        except layout.IndexError_:
            pass
    t0 = time.perf_counter()
    if cached_only:
        embedder = CachedOrRandom(embedder)
    res = build_index(CorpusReport(arts), where, embedder, settings, progress=True)
    if isinstance(embedder, CachedOrRandom):
        marker.write_text(f"{embedder.random} random, {embedder.real} real chunks (with their sentences)\n")
        print(f"[{label}] {embedder.random} random stand-ins, {embedder.real} real vectors", file=sys.stderr)
    elif marker.exists():
        marker.unlink()
    c = res.manifest.counts
    print(
        f"[{label}] built in {time.perf_counter() - t0:.0f} s: {c['chunks']} chunks, {c['sentences']} sentences, "
        f"{c['encoded_texts']} texts encoded ({res.embed_seconds:.0f} s), ann {res.manifest.ann}",
        file=sys.stderr,
    )
    return where


def queries(orangesum: Path, piaf: Path | None, n: int) -> list[str]:
    heads = [json.loads(x)["query"] for x in (orangesum / "headlines-valid.jsonl").read_text().splitlines() if x]
    qs: list[str] = []
    if piaf is not None and (piaf / "questions.jsonl").is_file():
        qs = [json.loads(x)["question"] for x in (piaf / "questions.jsonl").read_text().splitlines() if x]
    random.Random(7).shuffle(heads)
    random.Random(7).shuffle(qs)
    out = []
    for i in range(n):
        out.append(qs[i // 2] if qs and i % 2 else heads[i // 2 % len(heads)])
    return out


def in_process(where: Path, embedder: Embedder, settings: Settings, qs: list[str]) -> dict[str, Any]:
    from search.answer import is_question
    from search.engine import Engine

    engine = Engine.open(where, settings, embedder)
    for q in qs[:5]:
        engine.search(q, k=10)  # warm caches, lazy loads
    total, enc, dense, lex, asked, unanswered = [], [], [], [], [], []
    for q in qs:
        t0 = time.perf_counter()
        engine.search(q, k=10)
        total.append((time.perf_counter() - t0) * 1000)
        if is_question(q):  # the answer step (the reader, when on) runs for these only
            asked.append(total[-1])
            # the same question without the answer step: what the reader adds is the difference
            t0 = time.perf_counter()
            engine.search(q, k=10, answer=False)
            unanswered.append((time.perf_counter() - t0) * 1000)
        # Stages timed apart, on the same query, for the breakdown (the sum of stages < total:
        # the rest is fusion, the sentence second stage, answers and result assembly).
        t0 = time.perf_counter()
        qv = engine.runtime.encode_query(q)
        t1 = time.perf_counter()
        engine.store.view().dense(qv, settings.candidates, None)
        t2 = time.perf_counter()
        engine.store.view().lexical(analyze(q), settings.candidates, None)
        t3 = time.perf_counter()
        enc.append((t1 - t0) * 1000)
        dense.append((t2 - t1) * 1000)
        lex.append((t3 - t2) * 1000)
    return {
        "ann": engine.manifest.ann,
        "chunks": engine.manifest.counts["chunks"],
        "total": p50_95_99(total),
        "questions": p50_95_99(asked),
        "question_count": len(asked),
        "questions_without_answer_step": p50_95_99(unanswered),
        "reader": engine.answers.reader.runtime if engine.answers.reader is not None else "off",
        "encode": p50_95_99(enc),
        "dense": p50_95_99(dense),
        "lexical": p50_95_99(lex),
    }


def recall(
    where: Path, embedder: Embedder, settings: Settings, ds_questions: list[Any], ids: set[str]
) -> dict[str, list[float]]:
    """Recall@1/@5 of the headlines whose article is in the subset, per retrieval mode."""
    from search.engine import Engine

    engine = Engine.open(where, settings, embedder, verify=False)
    qs = [q for q in ds_questions if q.gold_doc in ids][:500]
    out: dict[str, list[float]] = {}
    for mode in ("hybrid", "dense", "lexical"):
        ranks: list[int | None] = []
        for q in qs:
            docs = [r.doc_id for r in engine.search(q.text, k=5, mode=mode, answer=False).results]
            ranks.append(docs.index(q.gold_doc) + 1 if q.gold_doc in docs else None)
        m = metrics_for(ranks, [])
        out[mode] = [m["R@1"], m["R@5"]]
    return out


def over_http(where: Path, qs: list[str]) -> dict[str, Any]:
    import httpx

    port = free_port()
    env = {**os.environ, "SALON_INDEX_DIR": str(where)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "salon.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=60) as client:
            deadline = time.time() + 600
            while time.time() < deadline:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            for q in qs[:5]:
                client.get("/search", params={"q": q})
            lat, errors = [], 0
            for q in qs:
                t0 = time.perf_counter()
                r = client.get("/search", params={"q": q, "k": 10})
                lat.append((time.perf_counter() - t0) * 1000)
                errors += r.status_code != 200
        return {"http": p50_95_99(lat), "errors": errors, "rss_mib": rss_mib(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="../shared/eval/orangesum")
    ap.add_argument("--piaf", type=Path, default=Path("../shared/eval/piaf-dev"), help="questions for the mix")
    ap.add_argument("--sizes", default="1000,20000,all")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rebuild", action="store_true", help="rebuild even if var/bench holds a matching index")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument(
        "--cached-only",
        default="",
        metavar="SIZES",
        help="for these sizes (e.g. 'all'), take passage vectors from the cache and give texts "
        "missing there a random unit vector instead of encoding them (latency only; reported)",
    )
    ap.add_argument(
        "--with-piaf",
        action="store_true",
        help="index the PIAF articles too (label '<size>+piaf'), so the PIAF questions of the mix find "
        "their articles and the reader reads what it would read in real use (with --cached-only, "
        "OrangeSum's stand-in vectors match no question and the reader's window gate would skip them)",
    )
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-recall", action="store_true", help="latency only (e.g. over random stand-in vectors)")
    ap.add_argument("--json", type=Path, help="write the figures here (for bench/plots.py)")
    args = ap.parse_args()
    settings = Settings()
    ds = load_dataset(args.dataset)
    embedder = Embedder.from_settings(settings)
    print(f"{len(ds.articles)} articles, precision {embedder.precision}", file=sys.stderr)
    qs = queries(args.dataset, args.piaf, args.queries)
    rows = []
    for label in args.sizes.split(","):
        size = None if label == "all" else int(label)
        arts = subset(ds.articles, size)
        cached_only = label in args.cached_only.split(",")
        if args.with_piaf:
            arts = arts + load_dataset(args.piaf).articles
            label += "+piaf"
        paras = sum(a.text.count("\n\n") + 1 for a in arts)
        where = ensure_index(label, arts, embedder, settings, args.rebuild, cached_only)
        if args.build_only:
            continue
        row: dict[str, Any] = {"size": label, "paragraphs": paras, "articles": len(arts)}
        marker = where / "RANDOM_VECTORS"
        row["random_vectors"] = marker.read_text().strip() if marker.is_file() else ""
        row.update(in_process(where, embedder, settings, qs))
        if not args.no_recall:
            row["recall_1_5"] = recall(where, embedder, settings, ds.questions, {a.id for a in arts})
        if not args.no_http:
            row.update(over_http(where, qs))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    if not rows:
        return
    print(f"\n{len(qs)} queries (headlines and PIAF questions interleaved), k=10, ms p50/p95/p99")
    print(
        "| paragraphs | chunks | ANN | search (in process) | encode | dense | lexical | HTTP | "
        "R@1/R@5 Salon | R@1/R@5 dense | R@1/R@5 BM25 | server RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:

        def f(v: list[float]) -> str:
            return "/".join(f"{x:.1f}" for x in v)

        http = f(r["http"]) if "http" in r else "-"
        rec = r.get("recall_1_5") or {m: [float("nan")] * 2 for m in ("hybrid", "dense", "lexical")}
        print(
            f"| {r['paragraphs']:,} | {r['chunks']:,} | {r['ann']} | {f(r['total'])} | {f(r['encode'])} | "
            f"{f(r['dense'])} | {f(r['lexical'])} | {http} | "
            + " | ".join(f"{rec[m][0]:.3f} / {rec[m][1]:.3f}" for m in ("hybrid", "dense", "lexical"))
            + f" | {r.get('rss_mib', 0):.0f} |"
        )
        print(
            f"  {r['paragraphs']:,} paragraphs, the {r['question_count']} questions alone (reader {r['reader']}): "
            f"{f(r['questions'])} ms; without the answer step {f(r['questions_without_answer_step'])} ms"
        )
        if r["random_vectors"]:
            print(f"  ({r['paragraphs']:,} paragraphs: {r['random_vectors']}; see --cached-only)")
    write_json(args.json, {"queries": len(qs), "rows": rows})


if __name__ == "__main__":
    main()
