"""Does the answer confidence keep its promise on a small archive? PIAF questions asked over
corpora of their gold article plus k others drawn at random (``make bench-small``).

    .venv/bin/python bench/small_corpus.py ../shared/eval/piaf-dev --split test --json out.json

For each size k (default 1, 10, 100, and the full index of all PIAF dev articles) and each draw,
the split's articles are shuffled and cut into groups of k + 1; each group (filled up with other
articles at random when it is the last, short one) is indexed on its own, exactly as `salon
index` would index it, and the questions of its split articles are asked. Per k: answered,
precision when answering (the answer's sentence holds a gold answer), span F1 at the threshold,
and the expected calibration error (ECE) of the shown percentage over 10 bins, with the
reliability curve. The readings (confidence features, right, F1) are cached in var/ so that a
confidence can be refitted on calib without reading again (``--fit``: pooled over every size).
"""

from __future__ import annotations

import argparse
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
from search.evaluate import Dataset, Readings, load_dataset, question_readings, table, top_readings, write_json

ROOT = Path(__file__).resolve().parent.parent
BINS = 10


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
    from search.reader import ARTIFACT_DIR, read_meta

    sha = str(read_meta(settings.reader_dir or ARTIFACT_DIR)["sha256"])[:12]
    cache = folder / f"small-corpora-{ds.name}-{split}-{sha}-{len(ds.questions)}q.json"
    got: dict[str, Any] = json.loads(cache.read_text()) if cache.is_file() else {}
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", choices=["calib", "test"], default="test")
    ap.add_argument("--sizes", default="1,10,100,all", help="others per gold article; 'all': the full index")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--limit", type=int, help="quick check: the first N questions of the split")
    ap.add_argument("--plot", type=Path, help="write the reliability picture (PNG) here")
    ap.add_argument(
        "--removed",
        default="1,all",
        help="sizes (one draw) at which the articles also lose the sentences holding their answers ('' for none)",
    )
    ap.add_argument("--cache", type=Path, default=ROOT / "var", help="where the readings are kept (resumable)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = Settings()
    from search.reader import ARTIFACT_DIR, read_meta

    cal = read_meta(settings.reader_dir or ARTIFACT_DIR)["calibration"]
    if settings.reader_threshold is not None:
        cal = {**cal, "threshold": settings.reader_threshold}
    ds = load_dataset(args.dataset, split=args.split, limit=args.limit)
    sizes = [x for x in args.sizes.split(",") if x]
    removed = tuple(x for x in args.removed.split(",") if x)
    got = collect(ds, args.split, sizes, args.draws, args.seed, settings, args.cache, removed=removed)
    out = {"split": args.split, "threshold": cal["threshold"], "sizes": report(got, sizes, cal)}
    rows = []
    for s, r in out["sizes"].items():
        name = f"k = {s}" if s != "all" else f"full index ({len(ds.articles)} articles)"
        figs = [r["answered"], r["precision"], r["span_f1"], r["ece"]]
        figs += [r.get("abstains_without_article", "—"), r.get("abstains_without_answer", "—")]
        rows.append([name, r["draws"], r["questions"], *figs])
    head = ["corpus", "draws", "questions", "answered", "precision", "span F1", "ECE"]
    print(table([*head, "abstains: article absent", "abstains: answer removed"], rows))
    if args.plot:
        plot(out, args.plot)
    write_json(args.json, out)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="perfect")
    for size, r in out["sizes"].items():
        xs = [b["confidence"] for b in r["reliability"]]
        ys = [b["right"] for b in r["reliability"]]
        ax.plot(xs, ys, "o-", label=("full index" if size == "all" else f"k = {size}") + f" (ECE {r['ece']:.3f})")
    ax.set_xlabel("confidence shown")
    ax.set_ylabel("share of those answers right")
    ax.set_xlim(out["threshold"] - 0.05, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"PIAF {out['split']} questions, gold article + k others")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
