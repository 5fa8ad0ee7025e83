"""The server's fixed cost, as a new user meets it: memory and start of `salon serve`, beside txtai
on the same corpus and model; and what the answer step adds to a question.

    .venv/bin/python bench/memory.py --json docs/bench/server-memory.json
    .venv/bin/python bench/memory.py --piaf ../shared/eval/piaf-dev --txtai --json docs/bench/server-memory.json
    .venv/bin/python bench/memory.py --index var/bench/scale-all          # an index already built (283k)
    .venv/bin/python bench/memory.py --checkout ../salon-old              # another checkout's server, same run

For each index: the server is started on 127.0.0.1 (loopback only), the time from its start to
the first answered question is taken, 100 mixed queries are sent (questions, keywords, English,
filters), then its resident memory (VmRSS), its peak (VmHWM) and whether PyTorch was loaded
(libtorch mapped) are read from /proc. With --txtai, a txtai index of the same chunks with the
same model is loaded in a fresh process and queried the same way. With --piaf, the PIAF test
questions are asked in process with and without the answer step, interleaved, on an index of
all PIAF dev articles (the ratio of the two p50s is the answer step's cost).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from load import QUERIES, free_port

from search.evaluate import pct, table, write_json

ROOT = Path(__file__).resolve().parent.parent
FIRST_QUESTION = "qui a critiqué Salesforce ?"


def proc_memory(pid: int) -> dict[str, Any]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    kb = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {
        "rss_mib": round(kb["VmRSS"] / 1024, 1),
        "peak_mib": round(kb["VmHWM"] / 1024, 1),
        "torch_loaded": "libtorch" in maps,
    }


def serve(index_dir: Path, checkout: Path, queries: int) -> dict[str, Any]:
    """Start `salon serve` from ``checkout`` on ``index_dir``; time to the first answer; memory
    after ``queries`` mixed requests."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(checkout), "SALON_INDEX_DIR": str(index_dir)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", _cli(checkout), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        start_s = None
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() - t0 < 300:
                if proc.poll() is not None:
                    raise SystemExit(f"the server stopped: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
                try:
                    # the first question served, the answer step run (on PIAF it declines: no Salesforce)
                    r = client.get(f"{base}/search", params={"q": FIRST_QUESTION})
                    if r.status_code == 200:
                        start_s = time.perf_counter() - t0
                        answered = r.json().get("answer") is not None
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            if start_s is None:
                raise SystemExit("no answer within 300 s")
            lat = []
            for i in range(queries):
                t = time.perf_counter()
                client.get(f"{base}/search", params=QUERIES[i % len(QUERIES)])
                lat.append((time.perf_counter() - t) * 1000)
        return {
            "start_to_first_answer_s": round(start_s, 2),
            "answered": answered,
            **proc_memory(proc.pid),
            "p50_ms": round(pct(lat, 50), 1),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cli(checkout: Path) -> str:
    # an older checkout kept the CLI in indexer/
    return "salon.cli" if (checkout / "salon" / "cli.py").is_file() else "indexer.cli"


TXTAI_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from txtai import Embeddings
e = Embeddings()
e.load(sys.argv[1])
e.search(sys.argv[2], 5)
start = time.perf_counter() - t0
qs = json.loads(sys.argv[3])
for i in range(100):
    e.search(qs[i % len(qs)], 5)
status = open("/proc/self/status").read().splitlines()
kb = {l.split(":")[0]: int(l.split()[1]) for l in status if l.startswith(("VmRSS", "VmHWM"))}
print(json.dumps({"start_to_first_answer_s": round(start, 2), "rss_mib": round(kb["VmRSS"] / 1024, 1),
                  "peak_mib": round(kb["VmHWM"] / 1024, 1), "torch_loaded": "torch" in sys.modules}))
"""


def txtai_row(index_dir: Path, work: Path) -> dict[str, Any]:
    """txtai (hybrid, same model, same chunks with the same prompts), loaded and queried in a
    fresh process; its start is the library's load and first search (no HTTP server)."""
    from txtai import Embeddings

    from indexer.model import resolve_model
    from indexer.settings import Settings
    from search.store import LocalStore

    view = LocalStore.open(index_dir).view()
    chunks = view.chunks(range(view.n_chunks)).values()
    texts = [view.article(c.article).text[c.start : c.end] for c in chunks]
    path = str(resolve_model(Settings()).path)
    emb = Embeddings(
        path=path,
        method="sentence-transformers",
        content=True,
        hybrid=True,  # as bench/quality.py compares it: dense + BM25, like Salon
        instructions={"query": "query: ", "data": "passage: "},
    )
    emb.index([(i, t, None) for i, t in enumerate(texts)])
    emb.save(str(work / "txtai"))
    qs = [q["q"] for q in QUERIES if q["q"].strip()]
    out = subprocess.run(
        [sys.executable, "-c", TXTAI_CHILD, str(work / "txtai"), FIRST_QUESTION, json.dumps(qs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def question_cost(piaf: Path, limit: int) -> dict[str, Any]:
    """PIAF test questions over all PIAF dev articles, each asked with and without the answer
    step, interleaved so both see the same machine."""
    from indexer.build import build_index
    from indexer.corpus import CorpusReport
    from indexer.model import Embedder
    from indexer.settings import Settings
    from search.engine import Engine
    from search.evaluate import load_dataset

    st = Settings()
    ds = load_dataset(piaf, split="test", limit=limit)
    with tempfile.TemporaryDirectory(prefix="salon-memory-") as tmp:
        emb = Embedder.from_settings(st)
        build_index(CorpusReport(ds.articles), Path(tmp), emb, st, progress=False)
        engine = Engine.open(Path(tmp), st, emb)
        engine.search("échauffement", k=1)
        with_answer, without = [], []
        for q in ds.questions:
            for answer, into in ((True, with_answer), (False, without)):
                t = time.perf_counter()
                engine.search(q.text, k=10, answer=answer)
                into.append((time.perf_counter() - t) * 1000)
    p50, p50_no = pct(with_answer, 50), pct(without, 50)
    return {
        "questions": len(ds.questions),
        "p50_ms": round(p50, 1),
        "p95_ms": round(pct(with_answer, 95), 1),
        "p50_ms_without_answer": round(p50_no, 1),
        "ratio": round(p50 / p50_no, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, action="append", default=[], help="also an index already built")
    ap.add_argument("--piaf", type=Path, help="PIAF dev: index it, serve it, and measure the answer step's cost")
    ap.add_argument("--txtai", action="store_true", help="txtai, shipped corpus, same model (.[bench])")
    ap.add_argument("--checkout", type=Path, action="append", default=[], help="also serve from this checkout")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--questions", type=int, default=300, help="PIAF test questions timed (with --piaf)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    checkouts = [ROOT, *args.checkout]
    rows: list[list[Any]] = []
    out: dict[str, Any] = {"servers": []}
    with tempfile.TemporaryDirectory(prefix="salon-memory-") as tmp:
        work = Path(tmp)

        def build(corpus: Path, name: str) -> list[Path]:
            """One index of ``corpus`` per checkout, each built by that checkout's own CLI: an
            older checkout may not read a newer index format."""
            out = []
            for i, checkout in enumerate(checkouts):
                dest = work / f"{name}-{i}"
                env = {**os.environ, "PYTHONPATH": str(checkout)}
                cli = [sys.executable, "-m", _cli(checkout), "index", str(corpus), "--index-dir", str(dest), "-q"]
                subprocess.run(cli, check=True, cwd=checkout, env=env)
                out.append(dest)
            return out

        shipped = build(ROOT / "corpus", "shipped")
        indexes = [("shipped corpus (2 articles)", shipped)]
        if args.piaf:
            piaf_corpus = work / "piaf-corpus"
            piaf_corpus.mkdir()
            from search.evaluate import load_dataset

            with (piaf_corpus / "piaf.jsonl").open("w", encoding="utf-8") as f:
                for a in load_dataset(args.piaf).articles:
                    f.write(json.dumps({"id": a.id, "title": a.title, "text": a.text}, ensure_ascii=False) + "\n")
            indexes.append(("PIAF dev (933 articles)", build(piaf_corpus, "piaf")))
        indexes += [(f"index {p.name}", [p] * len(checkouts)) for p in args.index]
        for label, dirs in indexes:
            for checkout, index_dir in zip(checkouts, dirs, strict=True):
                row = {"index": label, "server": f"salon ({checkout.name})", **serve(index_dir, checkout, args.queries)}
                out["servers"].append(row)
                print(row, file=sys.stderr)
        if args.txtai:
            txtai = txtai_row(shipped[0], work)
            row = {"index": indexes[0][0], "server": "txtai hybrid (library, same model)", **txtai}
            out["servers"].append(row)
    for r in out["servers"]:
        rows.append(
            [
                r["index"],
                r["server"],
                r["rss_mib"],
                r["peak_mib"],
                r["start_to_first_answer_s"],
                r["torch_loaded"],
                r.get("p50_ms", "—"),
            ]
        )
    print(
        table(
            ["index", "server", "RSS MiB", "peak MiB", "start → first answer s", "torch", "mixed /search p50 ms"],
            rows,
        )
    )
    if args.piaf:
        out["question_cost"] = question_cost(args.piaf, args.questions)
        qc = out["question_cost"]
        print()
        print(
            table(
                ["PIAF test questions", "p50 ms", "p95 ms", "p50 ms without the answer step", "ratio"],
                [[qc["questions"], qc["p50_ms"], qc["p95_ms"], qc["p50_ms_without_answer"], qc["ratio"]]],
            )
        )
    write_json(args.json, out)


if __name__ == "__main__":
    main()
