"""How the reader's best span of a gold passage is chosen among its windows' candidates, measured.

    .venv/bin/python bench/reader_span_choice.py ../shared/eval/piaf-dev [--out docs/bench/reader-span-choice.json]

Every window centred on a sentence of the gold passage (``reader.every_window``, as
``Reader.read_passage`` and search read them) is read once by the shipped reader (int8 ONNX,
``SALON_READER_DIR`` for another); each window's 10 best spans are candidates. Rules that pick one
candidate are then scored on calib (where rules are chosen) and test:

- ``max margin``: the span with the highest logit sum less its window's no-answer sum (what
  search and ``read_passage`` do);
- ``sum of probabilities``: a span read in several overlapping windows adds up its probability
  (start × end, each a softmax over the window and no-answer) over them;
- ``max margin + log windows``: a bonus for a span that is a candidate in more windows;
- ``centre bonus``: +1 to a span inside the sentence its window is centred on;
- ``span features, fitted``: a listwise (softmax over a question's candidates) logistic model on
  the margin, the log-probability, the log-number of windows, the span's type match, how much of
  it the question already says and its length, fitted on calib's train-fold articles and scored
  on the other fold (two folds, by a hash of the title), then fitted on all of calib for test;
- ``hindsight``: the best candidate by F1 (an upper bound, not a rule).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.analysis import analyze
from indexer.model import Embedder
from indexer.settings import Settings
from search import reader as R
from search.answer import question_type, span_evidence
from training.reader_train import QA, Passage, load_piaf, split_of

TOP = 10  # candidates per window


def candidates(reader: R.Reader, qa: QA, p: Passage) -> tuple[np.ndarray, np.ndarray]:
    """(features, [EM, F1]) of each distinct candidate span of the gold passage. Features: the
    margin, the log-probability summed over windows, the log-number of windows, inside a centre
    sentence, type match, the share the question already says, log-words."""
    spans = p.sentences or [(0, len(p.text))]
    bounds = R.every_window(spans)
    feats = [R.encode(reader.tokenizer, qa.question, p.text[a:b]) for a, b in bounds]
    starts, ends = reader.logits(feats)
    found: dict[tuple[int, int], list[tuple[float, float, bool]]] = {}
    for k, ((wa, wb), f) in enumerate(zip(bounds, feats, strict=True)):
        n = len(f.offsets)
        s = starts[k, f.ctx_start : f.ctx_start + n].astype(np.float64)
        e = ends[k, f.ctx_start : f.ctx_start + n].astype(np.float64)
        null = float(starts[k, 0] + ends[k, 0])
        z = float(np.logaddexp.reduce(np.r_[starts[k, 0], s]) + np.logaddexp.reduce(np.r_[ends[k, 0], e]))
        window = p.text[wa:wb]
        m = s[:, None] + e[None, :]
        i_idx, j_idx = np.indices(m.shape)
        breaks = [x.end() for x in re.finditer("\n\n", window)]  # as ``reader.decode``
        para = np.searchsorted(breaks, [a for a, _ in f.offsets], side="right")
        m[(j_idx < i_idx) | (j_idx - i_idx >= R.MAX_ANSWER_TOKENS) | (para[:, None] != para[None, :])] = -np.inf
        centres = [spans[c] for c in range(len(spans)) if R.window_around(spans, c) == (wa, wb)]
        for flat in np.argsort(-m, axis=None)[:TOP]:
            i, j = divmod(int(flat), n)
            if not np.isfinite(m[i, j]):
                break
            a, b = R._trim(window, f.offsets[i][0], f.offsets[j][1])
            if b <= a:
                a, b = f.offsets[i][0], f.offsets[j][1]
            inside = any(ca <= wa + a < cb for ca, cb in centres)
            found.setdefault((wa + a, wa + b), []).append((float(m[i, j]) - null, float(m[i, j]) - z, inside))
    qtype, qterms = question_type(qa.question), set(analyze(qa.question))
    golds = [t for t, _ in qa.answers]
    x, y = [], []
    for (a, b), reads in found.items():
        text = p.text[a:b]
        ev = span_evidence(qtype, qterms, text)
        margin = max(r[0] for r in reads)
        logp = float(np.logaddexp.reduce([r[1] for r in reads]))
        inside = float(any(r[2] for r in reads))
        x.append(
            [margin, logp, math.log(len(reads)), inside, ev["span_type"], ev["span_in_question"], ev["span_words"]]
        )
        y.append(R.best_em_f1(text, golds))
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


Group = tuple[np.ndarray, np.ndarray, str]  # a question's candidates, their [EM, F1], its article title
FITTED = [0, 1, 2, 4, 5, 6]  # the features the fitted rule uses (not the centre flag: its own rule)


def fit(groups: list[Group], l2: float = 1e-2, iters: int = 300, lr: float = 0.5) -> Callable[[np.ndarray], np.ndarray]:
    """Listwise logistic model: softmax over a question's candidates towards its best-F1 ones."""
    xs = np.concatenate([g[0][:, FITTED] for g in groups])
    mu, sd = xs.mean(0), xs.std(0) + 1e-6
    w = np.zeros(len(FITTED))
    for _ in range(iters):
        grad = l2 * w
        for x, y, _ in groups:
            if y[:, 1].max() <= 0:
                continue
            z = (x[:, FITTED] - mu) / sd
            s = z @ w
            pr = np.exp(s - s.max())
            pr /= pr.sum()
            tgt = (y[:, 1] == y[:, 1].max()).astype(np.float64)
            grad += z.T @ (pr - tgt / tgt.sum()) / len(groups)
        w -= lr * grad
    return lambda x: ((x[:, FITTED] - mu) / sd) @ w


RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max margin (search's rule)": lambda x: x[:, 0],
    "sum of probabilities over windows": lambda x: x[:, 1],
    "max margin + 0.5 log windows": lambda x: x[:, 0] + 0.5 * x[:, 2],
    "max margin, +1 inside the centre sentence": lambda x: x[:, 0] + x[:, 3],
}


def score(groups: list[Group], rule: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
    picked = [y[int(np.argmax(rule(x)))] for x, y, _ in groups]
    return float(np.mean([p[0] for p in picked])), float(np.mean([p[1] for p in picked]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--limit", type=int, default=None, help="first N questions of each split")
    args = ap.parse_args()
    st = Settings()
    emb = Embedder.from_settings(st)
    bert = emb.model[0].auto_model.state_dict()
    reader = R.Reader.load(
        bert, emb.model.tokenizer, emb.info.model_id, st.reader_dir or R.ARTIFACT_DIR, emb.onnx_dir, True
    )
    passages, qas = load_piaf(args.dataset)
    groups: dict[str, list[Group]] = {}
    for split in ("calib", "test"):
        qs = [q for q in qas if split_of(passages[q.passage].title) == split][: args.limit]
        t0 = time.perf_counter()
        groups[split] = [(*candidates(reader, q, passages[q.passage]), passages[q.passage].title) for q in qs]
        print(f"{split}: {len(qs)} questions read in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    def fold(title: str) -> int:
        return int(hashlib.sha256(title.encode()).hexdigest(), 16) % 2

    rows: dict[str, dict[str, Any]] = {}
    for name, rule in RULES.items():
        rows[name] = {"calib": score(groups["calib"], rule), "test": score(groups["test"], rule)}
    cal = groups["calib"]
    held = [0.0, 0.0]
    for f in (0, 1):
        part = [g for g in cal if fold(g[2]) == f]
        em, f1 = score(part, fit([g for g in cal if fold(g[2]) != f]))
        held[0] += em * len(part) / len(cal)
        held[1] += f1 * len(part) / len(cal)
    rows["span features, fitted (calib: two folds held out)"] = {
        "calib": (held[0], held[1]),
        "test": score(groups["test"], fit(cal)),
    }
    rows["hindsight: the best candidate (a bound)"] = {
        k: (float(np.mean([y[:, 0].max() for _, y, _ in g])), float(np.mean([y[:, 1].max() for _, y, _ in g])))
        for k, g in groups.items()
    }
    print(
        f"gold passages, {TOP} candidates a window, reader {reader.meta['sha256'][:16]} ({reader.runtime})\n\n"
        "| rule | calib F1 / EM | test F1 / EM |\n|---|---|---|"
    )
    for name, r in rows.items():
        print(f"| {name} | {r['calib'][1]:.4f} / {r['calib'][0]:.4f} | {r['test'][1]:.4f} / {r['test'][0]:.4f} |")
    if args.out:
        out = {
            "reader_sha256": reader.meta["sha256"],
            "runtime": reader.runtime,
            "questions": {k: len(v) for k, v in groups.items()},
            "rows": {
                k: {s: {"em": round(v[0], 4), "f1": round(v[1], 4)} for s, v in r.items()} for k, r in rows.items()
            },
        }
        args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
