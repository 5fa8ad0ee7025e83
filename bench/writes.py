"""The live archive under measurement: write → searchable, write throughput, search with a live
segment beside the generation, and rankings after writes and a merge against a build from scratch.

    .venv/bin/python bench/writes.py ../shared/eval/orangesum --size 20000 --json docs/bench/writes.json

The served generation holds ``--size`` OrangeSum paragraphs (whole articles, drawn as
bench/scale.py draws them, and indexed once into ``var/bench/scale-<size>``; ``--cached-only``
fills chunks missing from the embedding cache with random unit vectors, as bench/scale.py does
at 283k). Two servers on 127.0.0.1 serve copies of it: A takes no writes, B takes them (merges
off, so its live segment only grows). In order:

1. write → searchable: ``--writes`` OrangeSum articles outside the generation, one at a time,
   each PUT without waiting, then its title searched every 20 ms until the article is in the
   top 10; p50 / p95 of the time from the PUT to that answer;
2. throughput: ``--live`` articles in bulk requests of 500 (no wait), timed until the last task
   is indexed: articles/s and words/s on this machine (the encoder bounds it);
3. search p50 with a live segment: ``--queries`` queries (headlines and PIAF questions) sent to
   A and B in turn, before the bulk writes and after each level of ``--live``: B's p50 against
   A's, side by side in one run;
4. rankings after a merge: ``--piaf-questions`` PIAF dev questions; their 933 articles are
   written to B in bulk, ``POST /admin/merge`` folds the live segment into a new generation;
   a build from scratch of the same articles (the generation's and every written one) answers the
   same questions; top-10 passage ids compared.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from load import Server
from scale import ROOT, ensure_index, queries, subset

from indexer import layout
from indexer.build import build_index
from indexer.corpus import Article, CorpusReport
from indexer.model import Embedder
from indexer.settings import Settings
from search.engine import Engine
from search.evaluate import load_dataset, p50_95_99, write_json

TOKEN = "bench-writes"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fields(a: Article) -> dict[str, Any]:
    return {"id": a.id, "title": a.title, "text": a.text, "date": a.date, "source": a.source or "orangesum"}


def copy_index(src: Path, dst: Path) -> Path:
    """A fresh copy of ``src``'s served generation: writes and merges never touch the base."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    gen = layout.current_generation(src)
    shutil.copytree(gen, dst / gen.name)
    (dst / layout.POINTER).write_text(gen.name)
    return dst


def wait_tasks(base: str, tasks: list[str], timeout: float) -> float:
    t0 = time.perf_counter()
    for t in tasks:
        while True:
            st = httpx.get(f"{base}/tasks/{t}", headers=AUTH, timeout=30).json()["status"]
            if st != "enqueued":
                if st != "indexed":
                    raise RuntimeError(f"task {t} {st}")
                break
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"task {t} not indexed in {timeout:.0f} s")
            time.sleep(0.2)
    return time.perf_counter() - t0


def bulk(base: str, arts: list[Article], wait_s: float = 7200) -> float:
    """Write ``arts`` in bulk requests of 500; seconds until the last is indexed."""
    t0 = time.perf_counter()
    tasks = []
    for i in range(0, len(arts), 500):
        body = "\n".join(json.dumps(fields(a), ensure_ascii=False) for a in arts[i : i + 500])
        headers = AUTH | {"Content-Type": "application/x-ndjson"}
        r = httpx.post(f"{base}/articles", content=body.encode(), headers=headers, timeout=120)
        r.raise_for_status()
        tasks.append(r.json()["task_id"])
    wait_tasks(base, tasks, wait_s)
    return time.perf_counter() - t0


def side_by_side(a: str, b: str, qs: list[str]) -> dict[str, float]:
    ta, tb = [], []
    with httpx.Client(timeout=60) as c:
        for q in qs[:10]:  # warm both
            c.get(f"{a}/search", params={"q": q})
            c.get(f"{b}/search", params={"q": q})
        for i, q in enumerate(qs):
            order = [(a, ta), (b, tb)] if i % 2 else [(b, tb), (a, ta)]
            for base, out in order:
                t0 = time.perf_counter()
                c.get(f"{base}/search", params={"q": q}).raise_for_status()
                out.append((time.perf_counter() - t0) * 1000)
    pa, pb = statistics.median(ta), statistics.median(tb)
    return {"a_p50_ms": round(pa, 2), "b_p50_ms": round(pb, 2), "ratio": round(pb / pa, 3)}


def write_latency(base: str, arts: list[Article]) -> list[float]:
    out = []
    with httpx.Client(timeout=60) as c:
        for a in arts:
            t0 = time.perf_counter()
            c.put(f"{base}/articles/{a.id}", json=fields(a) | {"id": a.id}, headers=AUTH).raise_for_status()
            while True:
                res = c.get(f"{base}/search", params={"q": a.title, "answer": "false"}).json()
                if any(r["doc_id"] == a.id for r in res["results"]):
                    break
                if time.perf_counter() - t0 > 120:
                    raise RuntimeError(f"{a.id} not searchable after 120 s")
                time.sleep(0.02)
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="../shared/eval/orangesum")
    ap.add_argument("--piaf", type=Path, default=Path("../shared/eval/piaf-dev"))
    ap.add_argument("--size", default="20000", help="paragraphs in the generation, or 'all' (282,996)")
    ap.add_argument("--cached-only", action="store_true", help="random stand-ins for chunks not in the cache")
    ap.add_argument("--writes", type=int, default=40, help="articles for write → searchable")
    ap.add_argument("--live", default="1000", help="live segment sizes for search p50 (articles, cumulative)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--piaf-questions", type=int, default=200)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    settings = Settings()
    embedder = Embedder.from_settings(settings)
    ds = load_dataset(args.dataset)
    size = None if args.size == "all" else int(args.size)
    base_arts = subset(ds.articles, size)
    inside = {a.id for a in base_arts}
    label = args.size
    base_dir = ensure_index(label, base_arts, embedder, settings, False, args.cached_only)
    # OrangeSum articles carry no title: their headline where the dataset has one, else their
    # first words (what the write → searchable step searches for)
    heads = {
        json.loads(x)["gold_doc_id"]: json.loads(x)["query"]
        for x in (args.dataset / "headlines-valid.jsonl").read_text(encoding="utf-8").splitlines()
        if x.strip()
    }
    outside = [
        replace(a, title=a.title or heads.get(a.id) or " ".join(a.text.split()[:12]))
        for a in ds.articles
        if a.id not in inside
    ]
    levels = [int(x) for x in args.live.split(",") if x]
    need = args.writes + max(levels, default=0)
    if len(outside) < need:
        raise SystemExit(f"only {len(outside)} OrangeSum articles outside the generation; need {need}")
    writes, live = outside[: args.writes], outside[args.writes : need]
    words = statistics.mean(len(a.text.split()) for a in live) if live else 0.0
    qs = queries(args.dataset, args.piaf, args.queries)
    work = ROOT / "var" / "bench" / f"writes-{label}"
    a_dir, b_dir = copy_index(base_dir, work / "a"), copy_index(base_dir, work / "b")
    chunks = layout.Manifest.read(layout.current_generation(a_dir)).counts["chunks"]
    row: dict[str, Any] = {"paragraphs": args.size, "chunks": chunks, "cached_only": args.cached_only}

    import os

    os.environ["SALON_LIVE_MERGE_ARTICLES"] = str(10**9)  # B's segment only grows while measured
    os.environ["SALON_QUESTION_WAIT"] = "60"
    a = Server(a_dir, "")
    b = Server(b_dir, TOKEN)
    try:
        print(f"[{label}] {chunks:,} chunks served; warming B's writer (loads PyTorch)", file=sys.stderr)
        warm = outside[need]
        httpx.put(f"{b.base}/articles/{warm.id}?wait=true", json=fields(warm), headers=AUTH, timeout=300)
        row["search_live_0"] = side_by_side(a.base, b.base, qs)
        lat = write_latency(b.base, writes)
        p = p50_95_99([x * 1000 for x in lat])
        row["write_to_searchable_ms"] = {"p50": p[0], "p95": p[1], "max": round(max(lat) * 1000, 1), "n": len(lat)}
        print(f"[{label}] write → searchable p50 {p[0]:.0f} ms, p95 {p[1]:.0f} ms", file=sys.stderr)
        done = 0
        for level in levels:
            secs = bulk(b.base, live[done:level])
            n = level - done
            row[f"throughput_{level}"] = {
                "articles": n,
                "seconds": round(secs, 1),
                "articles_per_s": round(n / secs, 2),
                "words_per_article": round(words),
            }
            done = level
            row[f"search_live_{level}"] = side_by_side(a.base, b.base, qs)
            print(f"[{label}] live {level}: {row[f'search_live_{level}']}, {n / secs:.1f} articles/s", file=sys.stderr)
        # 4. PIAF articles written, then a merge, against a build from scratch
        piaf = load_dataset(args.piaf)
        bulk(b.base, piaf.articles)
        t0 = time.perf_counter()
        httpx.post(f"{b.base}/admin/merge", headers=AUTH, timeout=7200).raise_for_status()
        row["merge_seconds"] = round(time.perf_counter() - t0, 1)
        final: dict[str, Article] = {x.id: x for x in base_arts}
        for x in [warm, *writes, *live, *piaf.articles]:
            final[x.id] = x
        s2 = Settings(index_dir=work / "scratch")
        shutil.rmtree(s2.index_dir, ignore_errors=True)
        build_index(CorpusReport(list(final.values())), s2.index_dir, embedder, s2, progress=False)
        scratch = Engine.open(s2.index_dir, s2, embedder)
        same = 0
        qn = [q.text for q in piaf.questions[: args.piaf_questions]]
        with httpx.Client(timeout=60) as c:
            for q in qn:
                served = c.get(f"{b.base}/search", params={"q": q, "answer": "false"}).json()["results"]
                ref = scratch.search(q, answer=False).results
                same += [r["passage_id"] for r in served] == [r.passage_id for r in ref]
        row["rankings_equal_after_merge"] = {"questions": len(qn), "identical_top10": same}
        print(f"[{label}] identical top-10 after merge: {same}/{len(qn)}", file=sys.stderr)
    finally:
        a.stop()
        b.stop()
    print(json.dumps(row, indent=2))
    if args.json:
        write_json(args.json, {"command": " ".join(sys.argv), "rows": [row]})


if __name__ == "__main__":
    main()
