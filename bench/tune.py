"""Fit the second-stage weights and the answer calibration on half of a QA set, report the other half.

    .venv/bin/python bench/tune.py ../shared/eval/piaf-dev

Questions are split by a hash of their id: even → fit, odd → held out. Prints the fitted values
to paste into ``Settings.rerank_weights`` and ``search.answer.CALIBRATION``. Uses the real index
and engine; query vectors come from one batched encode (same vectors as single encodes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.analysis import analyze
from indexer.build import build_index
from indexer.corpus import CorpusReport
from indexer.layout import IndexError_, Manifest, current_generation
from indexer.model import Embedder
from indexer.settings import Settings
from search.engine import Engine
from search.evaluate import _norm, held_out, load_dataset


def open_or_build(dataset: Path, index_dir: Path, settings: Settings) -> tuple[Any, Engine, np.ndarray]:
    """The set, an engine on ``index_dir`` (built there on first use) and every question's vector."""
    ds = load_dataset(dataset)
    embedder = Embedder.from_settings(settings)
    try:
        Manifest.read(current_generation(index_dir))
    except IndexError_:
        build_index(CorpusReport(ds.articles), index_dir, embedder, settings)
    engine = Engine.open(index_dir, settings, embedder)
    t0 = time.perf_counter()
    qvecs = embedder.encode([q.text for q in ds.questions], embedder.query_prompt, "encoding questions")
    print(f"encoded {len(qvecs)} questions in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return ds, engine, qvecs


def pairwise_weights(feats: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
    """Pairwise logistic fit (RankNet-style): gold chunk minus each other candidate of a question."""
    from sklearn.linear_model import LogisticRegression

    d = np.concatenate([f[y][0] - f[~y] for f, y in zip(feats, labels, strict=True) if y.any() and (~y).any()])
    lr = LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000).fit(
        np.concatenate([d, -d]), np.r_[np.ones(len(d)), np.zeros(len(d))]
    )
    w: np.ndarray = lr.coef_[0].astype(np.float32)
    return w / abs(w[0]) if w[0] else w


def mrr_at(scores: list[np.ndarray], labels: list[np.ndarray], w: np.ndarray) -> tuple[float, float]:
    mrr = r1 = 0.0
    for f, y in zip(scores, labels, strict=True):
        order = np.argsort(-(f @ w), kind="stable")
        hits = np.flatnonzero(y[order])
        if len(hits):
            rank = hits[0] + 1
            mrr += 1 / rank if rank <= 10 else 0
            r1 += rank == 1
    n = len(scores) or 1
    return mrr / n, r1 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--index-dir", type=Path, default=Path("var/tune-index"))
    args = ap.parse_args()
    settings = Settings()
    ds, engine, qvecs = open_or_build(args.dataset, args.index_dir, settings)

    feats: dict[bool, list[np.ndarray]] = {True: [], False: []}
    labels: dict[bool, list[np.ndarray]] = {True: [], False: []}
    sent_rows: dict[bool, list[tuple[list[float], int]]] = {True: [], False: []}
    for q, qv in zip(ds.questions, qvecs, strict=True):
        ranked = engine.retrieve(q.text, qv, "hybrid")
        top = [c for c in ranked[: settings.rerank_depth] if c.features is not None]
        f = np.stack([c.features for c in top]) if top else np.zeros((0, len(engine.FEATURES)), np.float32)
        store = engine.store.view()
        y = np.array([store.article(c.chunk.article).id == q.gold_doc for c in top])
        h = held_out(q.qid)
        feats[h].append(f)
        labels[h].append(y)
        golds = [_norm(a) for a in q.answers]
        ranked.sort(key=lambda c: -c.scores.final)
        engine.load_sentences(store, ranked[:5])
        texts = {
            r: t for c in ranked[:5] if c.sentences for r, t in zip(c.sentences.rows, c.sentences.texts, strict=True)
        }
        for _conf, row, _rank, fe in engine.answers.score_sentences(q.text, qv, ranked[:5], analyze(q.text)):
            text = _norm(texts[row])
            sent_rows[h].append(
                ([fe["sim"], fe["cov"], fe["type"], fe["rank"]], int(any(g and g in text for g in golds)))
            )

    w = pairwise_weights(feats[False], labels[False])
    base = np.zeros(len(engine.FEATURES), np.float32)
    base[4] = 1.0
    for name, h in (("fit half", False), ("held-out half", True)):
        m0, r0 = mrr_at(feats[h], labels[h], base)
        m, r1 = mrr_at(feats[h], labels[h], w)
        print(f"{name}: RRF order MRR@10 {m0:.3f} R@1 {r0:.3f} → second stage MRR@10 {m:.3f}, R@1 {r1:.3f}")
    print(dict(zip(engine.FEATURES, w.round(3).tolist(), strict=True)))
    print("rerank_weights =", tuple(round(float(x), 3) for x in w))

    from sklearn.linear_model import LogisticRegression

    X = np.array([r[0] for r in sent_rows[False]])
    Y = np.array([r[1] for r in sent_rows[False]])
    lr = LogisticRegression(C=10.0, max_iter=1000).fit(X, Y)
    coef = dict(zip(["sim", "cov", "type", "rank"], lr.coef_[0].round(3).tolist(), strict=True))
    print("CALIBRATION =", {"bias": round(float(lr.intercept_[0]), 3), **coef})
    Xh = np.array([r[0] for r in sent_rows[True]])
    Yh = np.array([r[1] for r in sent_rows[True]])
    p = lr.predict_proba(Xh)[:, 1]
    for lo in (0.3, 0.5, 0.7, 0.9):
        sel = p >= lo
        if sel.any():
            print(f"held-out sentences with confidence ≥ {lo}: {sel.sum()}, contain gold {Yh[sel].mean():.3f}")


if __name__ == "__main__":
    main()
