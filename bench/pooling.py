"""Which sentence vectors rank and answer best: pooling variants compared on one index.

    .venv/bin/python bench/pooling.py ../shared/eval/piaf-dev

Builds (or reuses) one index of the set with sentence vectors pooled from their chunk's pass,
then swaps in other sentence vectors and, for each variant, fits the second-stage weights and
the answer calibration on the fit half of the questions (bench/tune.py's split) and reports the
held-out half: the same procedure that produced today's constants, so no variant is judged with
constants fitted for another. Variants:

- separate: each sentence encoded again on its own (the former build);
- late: mean of the sentence's token states in its chunk's pass (the default build);
- late+chunk a: late mixed with the vector of its chunk (a × chunk), renormalised;
- late window w: late plus w × its neighbours in the article, renormalised.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tune import open_or_build, pairwise_weights

from indexer.analysis import analyze
from indexer.model import Embedder
from indexer.settings import Settings
from search.engine import Engine
from search.evaluate import _norm, held_out


@dataclass
class Asked:
    held: bool
    feats: np.ndarray  # (candidates, features) of the rescored top
    labels: np.ndarray  # candidate is from the gold article
    cands: list[Any]
    golds: list[str]
    text: str
    qv: np.ndarray


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return out


def variants(engine: Engine, embedder: Embedder) -> dict[str, np.ndarray]:
    late = engine.store.sent_vecs.astype(np.float32)
    n = len(late)
    # the chunk a sentence was pooled from: the one holding it with the most other characters
    owner = np.full(n, -1)
    room = np.full(n, -1)
    for c in range(engine.store.n_chunks):
        lo, hi = int(engine.store.chunk_first[c]), int(engine.store.chunk_last[c]) + 1
        size = int(engine.store.chunk_end[c] - engine.store.chunk_start[c])
        for s in range(lo, hi):
            r = size - int(engine.store.sent_end[s] - engine.store.sent_start[s])
            if r > room[s]:
                owner[s], room[s] = c, r
    chunk = engine.store.chunk_vectors(owner.tolist())
    same_prev = np.r_[False, engine.store.sent_article[1:] == engine.store.sent_article[:-1]]
    prev = np.where(same_prev[:, None], np.roll(late, 1, axis=0), 0)
    same_next = np.r_[engine.store.sent_article[:-1] == engine.store.sent_article[1:], False]
    nxt = np.where(same_next[:, None], np.roll(late, -1, axis=0), 0)
    st = engine.store
    texts = [st.articles[int(st.sent_article[s])].text[int(st.sent_start[s]) : int(st.sent_end[s])] for s in range(n)]
    separate = embedder.encode(texts, embedder.passage_prompt, "sentences on their own", 16)
    return {
        "separate": separate,
        "late": late,
        "late+chunk 0.5": unit(late + 0.5 * chunk),
        "late+chunk 1.0": unit(late + chunk),
        "late window 0.5": unit(late + 0.5 * (prev + nxt)),
    }


def first_gold(a: Asked, w: np.ndarray) -> int | None:
    order = np.argsort(-(a.feats @ w), kind="stable")
    hits = np.flatnonzero(a.labels[order])
    return int(hits[0]) + 1 if len(hits) else None


def run_variant(engine: Engine, ds: Any, qvecs: np.ndarray, default_w: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    asked: list[Asked] = []
    for q, qv in zip(ds.questions, qvecs, strict=True):
        ranked = engine.retrieve(q.text, qv, "hybrid")
        top = [c for c in ranked[: engine.settings.rerank_depth] if c.features is not None]
        if not top:
            continue
        f = np.stack([c.features for c in top])
        y = np.array([engine.store.articles[int(engine.store.chunk_article[c.row])].id == q.gold_doc for c in top])
        asked.append(Asked(held_out(q.qid), f, y, top, [_norm(a) for a in q.answers], q.text, qv))
    fit = [a for a in asked if not a.held]
    test = [a for a in asked if a.held]
    w = pairwise_weights([a.feats for a in fit], [a.labels for a in fit])
    out: dict[str, float] = {}
    for name, weights in (("default", default_w), ("fitted", w)):
        ranks = [first_gold(a, weights) for a in test]
        out[f"R@1 {name} w"] = sum(r == 1 for r in ranks) / len(test)
        out[f"MRR@10 {name} w"] = sum(1 / r for r in ranks if r and r <= 10) / len(test)
    # answers: the top five (fitted order, de-duplicated) give the sentences; calibration refitted
    rows: dict[bool, list[tuple[list[list[float]], list[int]]]] = {True: [], False: []}
    for a in asked:
        for c, score in zip(a.cands, a.feats @ w, strict=True):
            c.scores.final = float(score)
        five = engine._dedupe(sorted(a.cands, key=lambda c: -c.scores.final))[:5]
        feats, hit = [], []
        for _conf, row, _rank, fe in engine.answers.score_sentences(a.text, a.qv, five, analyze(a.text)):
            art = engine.store.articles[int(engine.store.sent_article[row])].text
            text = _norm(art[int(engine.store.sent_start[row]) : int(engine.store.sent_end[row])])
            feats.append([fe["sim"], fe["cov"], fe["type"], fe["rank"]])
            hit.append(int(any(g and g in text for g in a.golds)))
        if feats:
            rows[a.held].append((feats, hit))
    x = np.array([f for fs, _ in rows[False] for f in fs])
    yy = np.array([h for _, hs in rows[False] for h in hs])
    cal = LogisticRegression(C=10.0, max_iter=1000).fit(x, yy)
    hits = 0
    for fs, hs in rows[True]:
        hits += hs[int(np.argmax(cal.decision_function(np.array(fs))))]
    out["answer sentence hit"] = hits / max(1, len(test))
    out["_weights"] = tuple(round(float(v), 3) for v in w)  # type: ignore[assignment]
    out["_calibration"] = {  # type: ignore[assignment]
        "bias": round(float(cal.intercept_[0]), 3),
        **dict(zip(["sim", "cov", "type", "rank"], cal.coef_[0].round(3).tolist(), strict=True)),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--index-dir", type=Path, default=Path("var/bench/pooling-index"))
    ap.add_argument("--only", help="comma-separated variant names")
    args = ap.parse_args()
    settings = Settings(sentence_vectors="late")
    ds, engine, qvecs = open_or_build(args.dataset, args.index_dir, settings)
    default_w = np.asarray(settings.rerank_weights, dtype=np.float32)
    table = {}
    for name, vecs in variants(engine, engine.embedder).items():
        if args.only and name not in args.only.split(","):
            continue
        engine.store.sent_vecs = vecs.astype(np.float16)
        table[name] = run_variant(engine, ds, qvecs, default_w)
        print(name, table[name], file=sys.stderr, flush=True)
    cols = ["R@1 default w", "MRR@10 default w", "R@1 fitted w", "MRR@10 fitted w", "answer sentence hit"]
    held = sum(held_out(q.qid) for q in ds.questions)
    print(f"{ds.name}: held-out half ({held} questions); weights and calibration fitted on the other half\n")
    print("| variant | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, r in table.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    for name, r in table.items():
        print(f"{name}: rerank_weights = {r['_weights']}\n    CALIBRATION = {r['_calibration']}")


if __name__ == "__main__":
    main()
