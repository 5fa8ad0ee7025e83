"""PIAF questions asked over small corpora: their gold article plus k others drawn at random,
each corpus indexed on its own as `salon index` would index it. The readings (confidence
features, right, span F1) are cached per split and reader, so that the answer confidence can be
fitted across corpus sizes on calib (training/calibration.py ``--small-corpora``, step 2 of
`salon train-reader`) and reported on test (bench/small_corpus.py, ``make bench-small``).
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from indexer.corpus import CorpusReport
from indexer.settings import Settings
from search.evaluate import Dataset, Readings, load_dataset, question_readings, top_readings, with_size_features

BINS = 10
SIZES = ("1", "10", "100", "all")


def groups(split_ids: list[str], all_ids: list[str], k: int, rng: random.Random) -> list[tuple[list[str], set[str]]]:
    """(the articles indexed, those whose questions are asked) for one draw at size k."""
    ids = split_ids[:]
    rng.shuffle(ids)
    out = []
    for i in range(0, len(ids), k + 1):
        asked = ids[i : i + k + 1]
        if len(asked) < k + 1:
            pool = sorted(set(all_ids) - set(asked))
            asked_set = set(asked)
            out.append((asked + rng.sample(pool, min(len(pool), k + 1 - len(asked))), asked_set))
        else:
            out.append((asked, set(asked)))
    return out


_SENTENCE_END = re.compile(r"[.!?…](?=\s)|\n")


def strip_answers(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without the sentences that hold the answer ``spans``."""
    cut: list[tuple[int, int]] = []
    for st, en in spans:
        a = max((m.end() for m in _SENTENCE_END.finditer(text, 0, st)), default=0)
        b = next((m.end() for m in _SENTENCE_END.finditer(text, en)), len(text))
        cut.append((a, b))
    out, pos = [], 0
    for a, b in sorted(cut):
        if a > pos:
            out.append(text[pos:a])
        pos = max(pos, b)
    return "".join(out) + text[pos:]


def read_group(
    ds: Dataset,
    ids: list[str],
    asked: set[str],
    embedder: Any,
    settings: Settings,
    absent: set[str] | None = None,
    strip: bool = False,
) -> tuple[Readings, Readings]:
    """Index the articles ``ids`` alone; read the questions of the ``asked`` ones (present) and,
    when given, those of the ``absent`` articles (not indexed: whatever answer is shown is wrong).
    ``strip``: the asked articles lose the sentences that hold their questions' answers, and only
    the questions whose answers are then nowhere in their article are read (near-topic questions
    the corpus cannot answer, as a newcomer asks them)."""
    from dataclasses import replace

    from indexer.build import build_index
    from search.answer import is_question
    from search.engine import Engine

    def questions(of: set[str]) -> list[Any]:
        return [q for q in ds.questions if q.gold_doc in of and q.answers and is_question(q.text)]

    present_qs = questions(asked)
    absent_qs = questions((absent or set()) - set(ids))
    arts = [a for a in ds.articles if a.id in set(ids)]
    if strip:
        spans: dict[str, list[tuple[int, int]]] = {}
        for q in present_qs:
            for ans, st in zip(q.answers, q.starts, strict=False):
                if st >= 0:
                    spans.setdefault(q.gold_doc, []).append((st, st + len(ans)))
        arts = [replace(a, text=strip_answers(a.text, spans[a.id])) if a.id in spans else a for a in arts]
        arts = [a for a in arts if len(a.text.split()) >= 5]  # as `salon index` skips an empty article
        texts = {a.id: a.text.casefold() for a in arts}
        gone = [q for q in present_qs if q.gold_doc in texts]
        present_qs = [q for q in gone if not any(g.casefold() in texts[q.gold_doc] for g in q.answers)]
    if not present_qs and not absent_qs:
        return [], []
    with tempfile.TemporaryDirectory(prefix="salon-small-") as tmp:
        built = build_index(CorpusReport(arts), Path(tmp), embedder, settings, progress=False)
        engine = Engine.open(Path(tmp), settings, embedder)
        # the index's size beside each reading's features: a confidence may be fitted on it
        size = {"chunks": float(built.manifest.counts["chunks"])}

        def read(qs: list[Any]) -> Readings:
            return [[({**r.features, **size}, ok, f1) for r, ok, f1 in question_readings(engine, q)] for q in qs]

        return read(present_qs), read(absent_qs)


def ece(top: list[tuple[float, bool, float]], threshold: float) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of the answers shown (confidence ≥ threshold), 10 equal bins
    over [0, 1]: the gap between the shown percentage and how often it is right, weighted by the
    answers in each bin."""
    shown = [(p, ok) for p, ok, _ in top if p >= threshold]
    bins: list[dict[str, float]] = []
    err = 0.0
    for b in range(BINS):
        lo, hi = b / BINS, (b + 1) / BINS
        inside = [(p, ok) for p, ok in shown if lo <= p < hi or (b == BINS - 1 and p == 1.0)]
        if not inside:
            continue
        conf = sum(p for p, _ in inside) / len(inside)
        acc = sum(ok for _, ok in inside) / len(inside)
        err += len(inside) / len(shown) * abs(conf - acc)
        bins.append({"lo": lo, "hi": hi, "n": len(inside), "confidence": round(conf, 4), "right": round(acc, 4)})
    return err, bins


def figures(readings: Readings, cal: dict[str, Any]) -> dict[str, Any]:
    top = top_readings(readings, cal)
    t = float(cal["threshold"])
    shown = [(ok, f1) for p, ok, f1 in top if p >= t]
    e, bins = ece(top, t)
    return {
        "questions": len(top),
        "answered": round(len(shown) / max(1, len(top)), 4),
        "precision": round(sum(ok for ok, _ in shown) / max(1, len(shown)), 4),
        # span F1 over every question, 0 where no answer is shown (as `salon eval` counts it)
        "span_f1": round(sum(f1 for _, f1 in shown) / max(1, len(top)), 4),
        "ece": round(e, 4),
        "reliability": bins,
    }


def cache_path(ds: Dataset, split: str, settings: Settings, folder: Path) -> Path:
    """Where the readings of ``split`` by the settings' reader are cached."""
    from search.reader import ARTIFACT_DIR, read_meta

    sha = str(read_meta(settings.reader_dir or ARTIFACT_DIR)["sha256"])[:12]
    return folder / f"small-corpora-{ds.name}-{split}-{sha}-{len(ds.questions)}q.json"


def read_calib(dataset: Path, reader_dir: Path, folder: Path = Path("var"), limit: int | None = None) -> Path:
    """The calib questions over small corpora (k = 1, 10, 100; three draws; answers removed at
    k = 1 and over the full index) read by ``reader_dir``'s reader, as the confidence's correction
    for small indexes is fitted on them; the path of the cached readings."""
    settings = Settings().model_copy(update={"reader_dir": reader_dir})
    ds = load_dataset(dataset, split="calib", limit=limit)
    collect(ds, "calib", ["1", "10", "100"], 3, 13, settings, folder, removed=("1", "all"))
    return cache_path(ds, "calib", settings, folder)


def collect(
    ds: Dataset,
    split: str,
    sizes: list[str],
    draws: int,
    seed: int,
    settings: Settings,
    folder: Path,
    with_absent: bool = True,
    removed: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Readings per size and draw, cached per split and reader in var/ (resumable: a size and draw
    read once is not read again)."""
    from indexer.model import Embedder
    from search.evaluate import split_of

    cache = cache_path(ds, split, settings, folder)
    got: dict[str, Any] = json.loads(cache.read_text()) if cache.is_file() else {}
    got = {k: with_size_features(v) for k, v in got.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    embedder = Embedder.from_settings(settings)
    split_ids = [a.id for a in ds.articles if split_of(a.title) == split]
    all_ids = [a.id for a in ds.articles]

    def corpora(size: str, d: int) -> list[tuple[list[str], set[str]]]:
        """The corpora of one draw: the full index, or the split cut into groups of size + 1."""
        if size == "all":
            return [(all_ids, set(split_ids))]
        return groups(split_ids, all_ids, int(size), random.Random(f"{seed}-{size}-{d}"))

    for size in sizes:
        for d in range(1 if size == "all" else draws):
            key = f"{size}/{d}"
            # absent: each corpus is also asked the questions of the next group's articles, which
            # it does not hold (the full index's absent readings come from training/calibration.py)
            want_absent = with_absent and size != "all"
            if key in got and (f"{key}/absent" in got or not want_absent):
                continue
            t0 = time.perf_counter()
            parts = corpora(size, d)
            reads: Readings = []
            absent: Readings = []
            for i, (ids, asked) in enumerate(parts, 1):
                others = parts[i % len(parts)][1] if want_absent and len(parts) > 1 else None
                p, a = read_group(ds, ids, asked if key not in got else set(), embedder, settings, others)
                reads += p
                absent += a
                if i % 10 == 0 or i == len(parts):
                    print(f"{split} k={size} draw {d}: {i}/{len(parts)} corpora", file=sys.stderr)
            print(f"{split} k={size} draw {d}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            got.setdefault(key, reads)
            if want_absent:
                got[f"{key}/absent"] = absent
            cache.write_text(json.dumps(got))
    for size in removed:
        key = f"{size}/0/removed"
        if key in got:
            continue
        t0 = time.perf_counter()
        parts = corpora(size, 0)
        reads = []
        for i, (ids, asked) in enumerate(parts, 1):
            reads += read_group(ds, ids, asked, embedder, settings, strip=True)[0]
            if i % 10 == 0 or i == len(parts):
                print(f"{split} k={size} answers removed: {i}/{len(parts)} corpora", file=sys.stderr)
        print(f"{split} k={size} answers removed: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        got[key] = reads
        cache.write_text(json.dumps(got))
    return got


def report(got: dict[str, Any], sizes: list[str], cal: dict[str, Any]) -> dict[str, Any]:
    """Per size, the figures of every draw pooled, the precision of each draw, and how often a
    question whose article is not in the corpus gets no answer."""
    out = {}
    t = float(cal["threshold"])
    for size in sizes:
        draws = [v for k, v in got.items() if k.split("/")[0] == size and len(k.split("/")) == 2]
        absent = [q for k, v in got.items() if k.split("/")[0] == size and k.endswith("/absent") for q in v]
        pooled = figures([q for v in draws for q in v], cal)
        pooled["draws"] = len(draws)
        pooled["precision_by_draw"] = [figures(v, cal)["precision"] for v in draws]
        if absent:
            top = top_readings(absent, cal)
            pooled["absent_questions"] = len(top)
            pooled["abstains_without_article"] = round(sum(p < t for p, _, _ in top) / len(top), 4)
        if got.get(f"{size}/0/removed"):
            top = top_readings(got[f"{size}/0/removed"], cal)
            pooled["removed_questions"] = len(top)
            pooled["abstains_without_answer"] = round(sum(p < t for p, _, _ in top) / len(top), 4)
        out[size] = pooled
    return out
