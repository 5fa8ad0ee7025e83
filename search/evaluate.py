"""`salon eval`: build a temporary index of an evaluation set and measure retrieval and answers.

Two layouts are read:
- PIAF / SQuAD-like: ``passages.jsonl`` (id, title?, text) + ``questions.jsonl``
  (qid, question, passage_id, answers[{text}]);
- OrangeSum-like: ``paragraphs.jsonl[.gz]`` (id, doc_id, date?, text) + ``headlines*.jsonl``
  (qid, query, gold_doc_id); paragraphs are joined into one article per doc_id.
Queries go through ``Engine.search`` exactly as in production.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.corpus import Article, CorpusReport
from indexer.settings import Settings
from search.reader import answer_f1 as _f1
from search.reader import best_em_f1
from search.reader import normalize_answer as _norm

# Per question, per window the reader read: (reader.FEATURES, the answer's sentence holds a gold
# answer, span F1).
Readings = list[list[tuple[dict[str, float], bool, float]]]


@dataclass
class Question:
    qid: str
    text: str
    gold_doc: str
    answers: list[str] = field(default_factory=list)
    # where each answer starts in the gold article, as the dataset says (PIAF's answer_start; -1
    # when it says nothing): training places its windows by it, the evaluation compares texts
    starts: list[int] = field(default_factory=list)


@dataclass
class Dataset:
    name: str
    articles: list[Article]
    questions: list[Question]
    note: str = ""


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for line in f:
            if line.strip():
                yield json.loads(line)


# Fixed article-disjoint split of PIAF (by title): the reader trains on train, its confidence is
# fitted on calib, and its figures are reported on test (training/reader_train.py).
SPLITS = {"train": (0, 75), "calib": (75, 85), "test": (85, 100)}


def split_of(title: str) -> str:
    """train (75 %), calib (10 %) or test (15 %), fixed by a hash of the article title."""
    h = int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:8], 16) % 100
    return next(name for name, (lo, hi) in SPLITS.items() if lo <= h < hi)


def load_dataset(
    folder: Path,
    max_docs: int | None = None,
    limit: int | None = None,
    seed: int = 13,
    split: str | None = None,
    questions: Path | None = None,
) -> Dataset:
    if (folder / "passages.jsonl").is_file():
        arts = [
            Article(id=str(p["id"]), text=p["text"], title=p.get("title") or "", source=folder.name)
            for p in _jsonl(folder / "passages.jsonl")
        ]
        qs = [
            Question(
                str(q["qid"]),
                q["question"],
                str(q["passage_id"]),
                [a["text"] for a in q.get("answers", [])],
                [int(a.get("answer_start", -1)) for a in q.get("answers", [])],
            )
            for q in _jsonl(folder / "questions.jsonl")
        ]
    else:
        paras = next((p for p in (folder / "paragraphs.jsonl.gz", folder / "paragraphs.jsonl") if p.is_file()), None)
        heads = sorted(folder.glob("headlines*.jsonl"))
        if paras is None or not heads:
            raise SystemExit(
                f"{folder}: expected passages.jsonl + questions.jsonl, or paragraphs.jsonl[.gz] + headlines*.jsonl"
            )
        qs = [Question(str(q["qid"]), q["query"], str(q["gold_doc_id"])) for h in heads for q in _jsonl(h)]
        docs: dict[str, list[str]] = {}
        dates: dict[str, str] = {}
        for p in _jsonl(paras):
            docs.setdefault(str(p["doc_id"]), []).append(p["text"])
            dates.setdefault(str(p["doc_id"]), str(p.get("date") or ""))
        arts = [Article(id=d, text="\n\n".join(t), date=dates[d][:10], source=folder.name) for d, t in docs.items()]
    note = ""
    if questions is not None:
        qs, note = _rewritten(qs, questions)
    if split is not None:
        titles = {a.id: a.title for a in arts}
        qs = [q for q in qs if split_of(titles.get(q.gold_doc, "")) == split]
        note = (note + "; " if note else "") + (
            f"questions of the {split} split (articles by title hash); index of all documents"
        )
    if limit is not None:
        qs = qs[:limit]
    if max_docs is not None and max_docs < len(arts):
        # Keep every gold document of the kept questions, fill up with a seeded random sample.
        gold = {q.gold_doc for q in qs}
        rest = [a for a in arts if a.id not in gold]
        random.Random(seed).shuffle(rest)
        keep = {a.id for a in arts if a.id in gold} | {a.id for a in rest[: max(0, max_docs - len(gold))]}
        arts = [a for a in arts if a.id in keep]
        note = (note + "; " if note else "") + f"subset: {len(arts)} documents (all gold + random, seed {seed})"
    ids = {a.id for a in arts}
    qs = [q for q in qs if q.gold_doc in ids]
    return Dataset(folder.name, arts, qs, note)


def _rewritten(qs: list[Question], path: Path) -> tuple[list[Question], str]:
    """Only the questions ``path`` rewrites (JSON lines of ``qid`` and ``question``: the same
    question in another language, say), asked in their new wording; gold answers unchanged."""
    try:
        new = {str(r["qid"]): str(r["question"]) for r in _jsonl(path)}
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"{path}: expected JSON lines with 'qid' and 'question' ({e})") from e
    unknown = set(new) - {q.qid for q in qs}
    if unknown:
        raise SystemExit(f"{path}: {len(unknown)} qid(s) not in the dataset, e.g. {sorted(unknown)[0]}")
    out = [replace(q, text=new[q.qid]) for q in qs if q.qid in new]
    return out, f"questions reworded by {path.name}"


def metrics_for(ranks: list[int | None], lat: list[float]) -> dict[str, float]:
    n = len(ranks) or 1

    def recall(k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n

    return {
        "R@1": recall(1),
        "R@5": recall(5),
        "R@20": recall(20),
        "MRR@10": sum(1 / r for r in ranks if r is not None and r <= 10) / n,
        "nDCG@10": sum(1 / math.log2(r + 1) for r in ranks if r is not None and r <= 10) / n,
        "p50_ms": pct(lat, 50) if lat else 0.0,
        "p95_ms": pct(lat, 95) if lat else 0.0,
    }


def evaluate(
    folder: Path,
    settings: Settings,
    modes: list[str],
    limit: int | None = None,
    max_docs: int | None = None,
    progress: bool = True,
    index_dir: Path | None = None,
    use_cache: bool = True,
    store: str = "local",
    split: str | None = None,
    fit_reader: bool = False,
    keep_readings: bool = False,
    questions: Path | None = None,
) -> dict[str, Any]:
    """Retrieval and answer figures; with the reader on, also the reader alone on the gold
    article and, for ``split`` questions, how often it abstains when their articles are left
    out of the index. ``fit_reader`` refits the answer confidence on these questions
    (``keep_readings``: and returns what it was fitted on, under ``readings``)."""
    from indexer.build import build_index
    from indexer.model import Embedder
    from search.engine import Engine

    ds = load_dataset(folder, max_docs=max_docs, limit=limit, split=split, questions=questions)
    embedder = Embedder.from_settings(settings, use_cache=use_cache)
    with tempfile.TemporaryDirectory(prefix="salon-eval-") as tmp:
        where = index_dir or Path(tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        result = build_index(CorpusReport(ds.articles), where, embedder, settings, progress=progress)
        build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        publish_s = 0.0
        if store == "milvus":
            from indexer.milvus import publish

            update: dict[str, Any] = {"store": "milvus"}
            if "://" not in settings.milvus_uri:  # never touch a served milvus-lite: a fresh one
                update["milvus_uri"] = str(Path(tmp) / "milvus.db")
            settings = settings.model_copy(update=update)
            publish_s = publish(result.generation, settings).seconds
        engine = Engine.open(where, settings, embedder)
        engine.search("échauffement", k=1)  # load lazy pieces before timing
        out: dict[str, Any] = {
            "dataset": ds.name,
            "documents": len(ds.articles),
            "questions": len(ds.questions),
            "chunks": result.manifest.counts["chunks"],
            "sentences": result.manifest.counts["sentences"],
            "model": embedder.info.model_id,
            "store": store,
            "note": ds.note,
            "build": {
                "seconds": round(build_s, 1),
                # CPU time of all the process's threads: steadier than wall time on a shared machine
                "cpu_seconds": round(build_cpu, 1),
                "sentence_vectors": settings.sentence_vectors,
                "embed_seconds": round(result.embed_seconds, 1),
                "embed_tokens": result.embed_tokens,
                "publish_seconds": round(publish_s, 1),
            },
            "modes": {},
        }
        for mode in modes:
            out["modes"][mode] = _run_mode(engine, ds, mode, progress)
        has_answers = any(q.answers for q in ds.questions)
        reader = engine.answers.reader
        if not has_answers or "hybrid" not in modes:
            return out
        if reader is not None:
            out["reader"] = {**_reader_gold(reader, ds, progress), "runtime": reader.runtime}
        if split is None:  # every article holds some question's answer: no index can leave them out
            return out
        present = _readings(engine, ds, progress) if fit_reader and reader is not None else []
    # The same questions against an index without their articles: the answer should be "none".
    gold = {q.gold_doc for q in ds.questions}
    titles = {a.title or a.id for a in ds.articles if a.id in gold}
    rest = [a for a in ds.articles if (a.title or a.id) not in titles]
    with tempfile.TemporaryDirectory(prefix="salon-eval-absent-") as tmp:
        build_index(CorpusReport(rest), Path(tmp), embedder, settings, progress=progress)
        engine = Engine.open(Path(tmp), settings, embedder)
        if present:
            absent = _readings(engine, ds, progress)
            cal = fit_answer_confidence(present, absent)
            if keep_readings:
                out["readings"] = {"present": present, "absent": absent}
            out["reader"]["calibration"] = cal
            engine.answers.reader.calibration = cal  # type: ignore[union-attr]
            engine.answers.reader.threshold = cal["threshold"]  # type: ignore[union-attr]
        out["absent"] = {"documents": len(rest), "abstains": _abstains(engine, ds, progress)}
    return out


def _progress(items: list[Any], desc: str, progress: bool) -> Any:
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q", file=sys.stderr, disable=None)


# A question read on its gold passage: (question, passage text, its sentence spans, title, gold answers).
GoldRead = tuple[str, str, list[tuple[int, int]], str, list[str]]


def gold_passage_scores(
    reader: Any, reads: list[GoldRead], centred: bool = True, progress: bool = False
) -> tuple[float, float]:
    """Mean exact match and F1 of the reader alone on each question's gold passage
    (``Reader.read_passage``, never abstaining): the "reader on the gold passage" figure of the
    evaluation and of training's epochs."""
    em = f1 = 0.0
    for question, text, sentences, title, golds in _progress(reads, "reader, gold article", progress):
        best = reader.read_passage(question, text, sentences, title, centred)
        e, f = best_em_f1(best.text, golds)
        em, f1 = em + e, f1 + f
    n = max(1, len(reads))
    return em / n, f1 / n


def _reader_gold(reader: Any, ds: Dataset, progress: bool) -> dict[str, Any]:
    """The reader alone on the gold article of every question with answers."""
    from indexer.chunking import split_sentences

    arts = {a.id: a for a in ds.articles}
    reads: list[GoldRead] = [
        (q.text, a.text, [(s.start, s.end) for s in split_sentences(a.text)], a.title, q.answers)
        for q in ds.questions
        if q.answers and (a := arts.get(q.gold_doc)) is not None
    ]
    em, f1 = gold_passage_scores(reader, reads, progress=progress)
    return {"gold_em": em, "gold_f1": f1, "gold_questions": len(reads)}


def _abstains(engine: Any, ds: Dataset, progress: bool) -> float:
    n = abst = 0
    for q in _progress(ds.questions, "asked without their article", progress):
        res = engine.search(q.text, k=10)
        n += 1
        abst += res.answer is None
    return abst / max(1, n)


def _readings(engine: Any, ds: Dataset, progress: bool, article: bool = False) -> Readings:
    """Per question, for every window the reader read as search reads them: (confidence
    features, the answer sentence holds a gold answer, span F1). ``article``: the features also
    name the window's article (its index in the store), for benchmarks of which windows to read."""
    from search.answer import is_question

    out = []
    qs = [q for q in ds.questions if q.answers and is_question(q.text)]
    for q in _progress(qs, "reader windows", progress):
        rows = []
        for r, right, f1 in question_readings(engine, q):
            f = {**r.features, "article": float(r.sentences.article)} if article else r.features
            rows.append((f, right, f1))
        out.append(rows)
    return out


def question_readings(engine: Any, q: Question) -> list[tuple[Any, bool, float]]:
    """Every window the reader reads for ``q`` as search reads them, ungated, best confidence
    first: (the ``Reading``, its answer sentence holds a gold answer, its span's F1)."""
    golds = [_norm(g) for g in q.answers]
    out = []
    engine.answers.entity_features = True
    for r in engine.readings(q.text, gate=False):
        sv, sp = r.sentences, r.span
        k = max((k for k in range(len(sv.starts)) if sv.starts[k] <= sp.start), default=r.index)
        sent = _norm(sv.texts[k] + " " + sp.text)
        out.append((r, any(g and g in sent for g in golds), max(_f1(sp.text, g) for g in q.answers)))
    return out


def top_readings(readings: Readings, cal: dict[str, Any]) -> list[tuple[float, bool, float]]:
    """Per question, the (confidence, right, span F1) of its most confident reading under ``cal``:
    the answer search would give."""
    from search.reader import confidence

    out = []
    for reads in readings:
        scored = [(confidence(f, cal), ok, f1) for f, ok, f1 in reads]
        out.append(max(scored, key=lambda r: r[0], default=(0.0, False, 0.0)))
    return out


def operating_point(
    present: list[tuple[float, bool, float]], absent: list[tuple[float, bool, float]], threshold: float
) -> tuple[float, float, float, int]:
    """(answered, precision when answering, abstains without the article, answers right) at ``threshold``."""
    answered = [ok for p, ok, _ in present if p >= threshold]
    return (
        len(answered) / max(1, len(present)),
        sum(answered) / max(1, len(answered)),
        sum(p < threshold for p, _, _ in absent) / max(1, len(absent)),
        sum(answered),
    )


def expected_precision(top: list[tuple[float, bool, float]], threshold: float) -> float:
    """The fitted model's own estimate of precision at ``threshold``: its mean confidence over
    the answers given (0 when none is)."""
    given = [p for p, _, _ in top if p >= threshold]
    return sum(given) / len(given) if given else 0.0


def fit_answer_confidence(
    present: Readings,
    absent: Readings,
    precision: float = 0.85,
    abstain: float = 0.85,
    features: tuple[str, ...] | None = None,
    rule: str = "expected",
) -> dict[str, Any]:
    """Logistic P(answer right) over the named reading ``features``, and the answer threshold.

    "Right" is what ``answer_precision`` counts: the answer's sentence holds a gold answer.
    Readings from an index without the gold article are wrong by construction. The threshold
    is the lowest whose answers the fitted model expects to be right ≥ ``precision`` of the time
    (the mean confidence of the questions it answers) and that abstains on ≥ ``abstain`` of the
    questions asked without their article; if none does, the one that abstains enough with the
    most questions answered right. (``rule="counted"``: the first threshold where the counted
    precision reaches ``precision``, the former rule.)

    The counted precision of ~250 answers moves by ±0.02 from one sample to the next and the curve
    is flat near 0.85, so its first crossing is noise: fitted on either half of calib it fell at
    0.67 or 0.89 (0.69 or 0.83 for the former reader), where the model's expectation gave 0.73 or
    0.76 (0.76 or 0.78). Held out, it answered more (0.322 against 0.252) at precision 0.832
    against 0.857, the counted rule's figure coming from thresholds 0.22 apart
    (the "threshold rule" experiment, docs/quality.md).
    """
    from search.reader import CALIBRATION_FEATURES, fit_logistic

    if rule not in ("expected", "counted"):
        raise ValueError(f"threshold rule {rule!r}: 'expected' or 'counted'")
    names = list(features or CALIBRATION_FEATURES)
    feats = [f for q in present for f, _, _ in q] + [f for q in absent for f, _, _ in q]
    x = np.array([[f[n] for n in names] for f in feats], dtype=np.float64).reshape(len(feats), len(names))
    y = np.array([ok for q in present for _, ok, _ in q] + [False] * sum(len(q) for q in absent), np.float64)
    w, b = fit_logistic(x, y)
    cal: dict[str, Any] = {"features": names, "weights": w, "bias": b}

    tp, ta = top_readings(present, cal), top_readings(absent, cal)
    rows = [(t, *operating_point(tp, ta, t)) for t in (round(0.05 + 0.01 * i, 2) for i in range(91))]

    def precise(r: tuple[float, ...]) -> bool:
        return (expected_precision(tp, r[0]) if rule == "expected" else r[2]) >= precision

    ok = [r for r in rows if precise(r) and r[3] >= abstain]
    pick = ok[0] if ok else max((r for r in rows if r[3] >= abstain), key=lambda r: r[4], default=rows[45])
    return {
        **cal,
        "threshold": pick[0],
        "at_threshold": {"answered": round(pick[1], 4), "precision": round(pick[2], 4), "abstains": round(pick[3], 4)},
        "windows": len(x),
        "positives": int(y.sum()),
        # the answer finder skips a window that could not pass the threshold with this margin
        # (plus reader.MARGIN_OFFSET): the largest the reader gave on the windows fitted on
        "margin_max": round(float(max((f["margin"] for f in feats), default=0.0)), 4),
        # the trade-off, for docs and for choosing SALON_READER_THRESHOLD by hand
        "curve": [
            {"threshold": t, "answered": round(a, 4), "precision": round(p, 4), "abstains": round(ab, 4)}
            for t, a, p, ab, _ in rows
            if round(t * 100) % 10 == 0
        ],
    }


SIZE_CORRECTION = ("small_index", "lead_x_small")


def with_size_features(readings: Readings) -> Readings:
    """``readings`` with their size features recomputed from the index size and passage lead
    they record (readings cached before a size feature changed read like new ones)."""
    from search.reader import size_features

    def redo(f: dict[str, float]) -> dict[str, float]:
        return {**f, **size_features(10 ** f["log_chunks"], f["passage_lead"], bool(f["foreign"]))}

    return [[(redo(f), ok, f1) for f, ok, f1 in q] for q in readings]


def without_size_correction(cal: dict[str, Any]) -> dict[str, Any]:
    """``cal`` as it was before ``fit_size_correction`` added its correction."""
    corr = cal.get("size_correction")
    if not corr:
        return cal
    added = dict(zip(corr["features"], corr["weights"], strict=True))
    kept = [(n, w) for n, w in zip(cal["features"], cal["weights"], strict=True) if n not in added]
    rest = {k: v for k, v in cal.items() if k != "size_correction"}
    return rest | {"features": [n for n, _ in kept], "weights": [w for _, w in kept]}


def fit_size_correction(
    cal: dict[str, Any], present: Readings, absent: Readings, features: tuple[str, ...] = SIZE_CORRECTION
) -> dict[str, Any]:
    """``cal`` with a correction for small indexes: weights over ``features`` (0 on an index of
    ``reader.SMALL_INDEX`` passages or more, so ``cal``'s answers there are unchanged) fitted on
    readings over small corpora with ``cal``'s logit held fixed, and no bias of their own.

    A confidence fitted over the full PIAF index reads the passage's lead over other articles as
    evidence; over two articles every lead is large and answers shown at 95 % were right 87 % of
    the time (docs/quality.md). Its threshold is kept: a calibrated probability means the same
    at every size, so the same threshold keeps precision when answering."""
    from search.reader import fit_logistic, logit

    cal = without_size_correction(cal)  # refitting replaces a correction, never stacks a second one
    names = list(cal.get("features") or [])
    rows = [(f, ok) for q in present for f, ok, _ in q] + [(f, False) for q in absent for f, _, _ in q]
    z = np.array([logit(f, cal) for f, _ in rows], np.float64)
    x = np.array([[f[n] for n in features] for f, _ in rows], np.float64).reshape(len(rows), len(features))
    y = np.array([ok for _, ok in rows], np.float64)
    extra, _ = fit_logistic(x, y, offset=z, intercept=False)
    weights = dict(zip(names, cal.get("weights", []), strict=True))
    for n, w in zip(features, extra, strict=True):
        weights[n] = round(weights.get(n, 0.0) + w, 5)
    return {
        **cal,
        "features": list(weights),
        "weights": list(weights.values()),
        "size_correction": {"features": list(features), "weights": extra, "readings": len(rows)},
    }


def held_out(qid: str) -> bool:
    """The half of a question set the rerank weights were never fitted on (a fixed hash of the id)."""
    return hashlib.sha1(qid.encode()).digest()[0] % 2 == 1


def _judged(a: Any, answers: list[str]) -> tuple[bool, float, float]:
    """(its sentence holds a gold answer, span EM, span F1) of answer ``a`` (None: no answer)."""
    golds = [_norm(g) for g in answers]
    contains = a is not None and any(g and g in _norm(a.text) for g in golds)
    if a is None or not a.span_text:
        return contains, 0.0, 0.0
    em = float(any(_norm(a.span_text) == g for g in golds))
    return contains, em, max(_f1(a.span_text, g) for g in answers)


def _run_mode(engine: Any, ds: Dataset, mode: str, progress: bool) -> dict[str, Any]:
    held_ranks: list[int | None] = []
    held_hits: list[bool] = []
    ranks: list[int | None] = []
    lat: list[float] = []
    has_answers = any(q.answers for q in ds.questions)
    threshold = engine.answers.threshold
    saved = engine.settings
    if has_answers and mode == "hybrid":
        # Ask for an answer whatever its confidence, then apply the real threshold here: one
        # search per question measures both "with abstention" and "always answer".
        engine.settings = saved.model_copy(update={"answer_threshold": 0.0, "reader_threshold": 0.0})
    sent_hit = sent_hit_any = span_em = span_f1 = abstain = 0.0
    span_em_any = span_f1_any = span_right = 0.0
    for q in _progress(ds.questions, f"eval {mode}", progress):
        res = engine.search(q.text, k=engine.settings.max_k, mode=mode, answer=has_answers and mode == "hybrid")
        lat.append(res.took_ms)
        docs: list[str] = []
        for r in res.results:
            if r.doc_id not in docs:
                docs.append(r.doc_id)
        ranks.append(docs.index(q.gold_doc) + 1 if q.gold_doc in docs else None)
        if held_out(q.qid):
            held_ranks.append(ranks[-1])
        if has_answers and mode == "hybrid":
            contains, em, f1 = _judged(res.answer, q.answers)
            sent_hit_any += contains
            if held_out(q.qid):
                held_hits.append(contains)
            span_em_any += em
            span_f1_any += f1
            if res.answer is None or res.answer.confidence < threshold:
                abstain += 1
                continue
            # What a user gets, asked at the real threshold: the gate (answer.AnswerFinder.readings)
            # then leaves windows unread, which asking at 0 never does, and the int8 reader
            # quantises each call's activations over the whole batch, so a window read with fewer
            # others can read differently (test: answered 0.496 against 0.503 asked at 0).
            engine.settings = saved
            shown = engine.search(q.text, k=engine.settings.max_k, mode=mode).answer
            engine.settings = saved.model_copy(update={"answer_threshold": 0.0, "reader_threshold": 0.0})
            if shown is None:
                abstain += 1
                continue
            contains, em, f1 = _judged(shown, q.answers)
            sent_hit += contains
            span_em += em
            span_f1 += f1
            span_right += f1 >= 0.5
    m: dict[str, Any] = metrics_for(ranks, lat)
    # Figures on the questions no constant was fitted on (rerank weights, answer calibration).
    held = metrics_for(held_ranks, lat[: len(held_ranks)])
    m["held_out"] = {"questions": len(held_ranks), **{k: v for k, v in held.items() if "ms" not in k}}
    if held_hits:
        m["held_out"]["answer_sentence_hit_no_abstention"] = sum(held_hits) / len(held_hits)
    if has_answers and mode == "hybrid":
        n = len(ds.questions) or 1
        m.update(
            {
                "answer_sentence_hit": sent_hit / n,
                "answer_sentence_hit_no_abstention": sent_hit_any / n,
                "answer_precision": sent_hit / max(1.0, n - abstain),
                "span_em": span_em / n,
                "span_f1": span_f1 / n,
                "abstention": abstain / n,
                "answered": 1 - abstain / n,
                "span_em_no_abstention": span_em_any / n,
                "span_f1_no_abstention": span_f1_any / n,
                "span_precision": span_right / max(1.0, n - abstain),
                "answer_threshold": threshold,
                "answers_by": "reader" if engine.answers.reader is not None else "sentences",
            }
        )
        engine.settings = saved
    return m


# What salon eval and every benchmark (bench/) do with figures: percentiles, a Markdown table on
# stdout, JSON on disk.
def pct(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``xs`` (NaN for none)."""
    return float(np.percentile(np.asarray(xs), q)) if len(xs) else float("nan")


def p50_95_99(xs: Sequence[float]) -> list[float]:
    return [round(pct(xs, p), 1) for p in (50, 95, 99)]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, as the docs show it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` to ``path`` (folders made; nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def format_table(report: dict[str, Any]) -> str:
    cols = ["R@1", "R@5", "R@20", "MRR@10", "nDCG@10", "p50_ms", "p95_ms"]
    lines = [
        f"{report['dataset']}: {report['documents']} documents → {report['chunks']} chunks, "
        f"{report['questions']} questions; model {report['model']}; store {report.get('store', 'local')}",
        f"build {report['build']['seconds']} s (embedding {report['build']['embed_seconds']} s, "
        f"{report['build']['embed_tokens']} tokens encoded)",
    ]
    if report.get("note"):
        lines.append(report["note"])
    lines.append("")
    lines.append(f"{'mode':<10}" + "".join(f"{c:>9}" for c in cols))
    for mode, m in report["modes"].items():
        lines.append(f"{mode:<10}" + "".join(f"{m[c]:>9.3f}" if "ms" not in c else f"{m[c]:>9.1f}" for c in cols))
    for mode, m in report["modes"].items():
        if "answer_sentence_hit" in m:
            lines.append(
                f"\nanswers ({mode}): top sentence contains gold {m['answer_sentence_hit']:.3f} "
                f"(precision when answering {m['answer_precision']:.3f}; "
                f"{m['answer_sentence_hit_no_abstention']:.3f} if it never abstained), "
                f"short span EM {m['span_em']:.3f} / F1 {m['span_f1']:.3f}, "
                f"abstention {m['abstention']:.3f}"
            )
            lines.append(
                f"answers by {m['answers_by']} at threshold {m['answer_threshold']:.2f}: answered {m['answered']:.3f}, "
                f"span F1 {m['span_f1']:.3f} (never abstaining {m['span_f1_no_abstention']:.3f}, "
                f"EM {m['span_em_no_abstention']:.3f}), span F1 ≥ 0.5 when answering {m['span_precision']:.3f}"
            )
    r = report.get("reader")
    if r:
        lines.append(
            f"reader ({r['runtime']}) alone on the gold article: EM {r['gold_em']:.3f} / F1 {r['gold_f1']:.3f} "
            f"({r['gold_questions']} questions)"
        )
        if "calibration" in r:
            lines.append(f"answer confidence fitted: {r['calibration']}")
    if "absent" in report:
        lines.append(
            f"asked without their article ({report['absent']['documents']} documents indexed): "
            f"abstains {report['absent']['abstains']:.3f}"
        )
    return "\n".join(lines)
