"""Whether an answer whose span is not of the kind its question word asks for (no date for
« quand », no number for « combien ») should be shown, measured on calib as search reads it.

    SALON_READER_DIR=var/reader-train .venv/bin/python bench/reader_span_type.py ../shared/eval/piaf-dev \
        [--split calib] [--out docs/bench/reader-span-type.json]

The calib questions are asked of an index of every PIAF article, as ``salon eval`` asks them;
each question's readings (every window search reads, ungated) are scored by the reader's own
confidence and threshold. Rules for a reading whose span lacks its question's kind:

- ``shown`` (before): the most confident reading is the answer, whatever its span;
- ``veto``: such a reading is never the answer; the question's next most confident reading may be.

Read with the reader trained on train articles alone (``SALON_READER_DIR=var/reader-train``):
calib is then held out, as search's articles are, and its confidence is the shipped one
(cross-fitting, docs/quality.md round 10). ``--split test`` reads test once, for a rule chosen
on calib.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.build import build_index
from indexer.corpus import CorpusReport
from indexer.model import Embedder
from indexer.settings import Settings
from search.answer import is_question, question_type, span_kind
from search.engine import Engine
from search.evaluate import load_dataset, operating_point, question_readings

TYPED = ("when", "howmany")


def readings(engine: Engine, qs: list[Any]) -> list[dict[str, Any]]:
    """Per question: its type and, per window read, (confidence, sentence holds gold, span F1, span kind ok)."""
    from tqdm import tqdm

    out = []
    for q in tqdm(qs, desc="reader windows", unit="q", file=sys.stderr, disable=None):
        qtype = question_type(q.text)
        rows = [
            {"conf": r.conf, "right": right, "f1": f1, "kind_ok": span_kind(qtype, r.span.text), "span": r.span.text}
            for r, right, f1 in question_readings(engine, q)
        ]
        out.append({"question": q.text, "type": qtype, "answers": q.answers, "reads": rows})
    return out


def best_read(q: dict[str, Any], veto: bool) -> dict[str, Any] | None:
    """The question's answer under a rule: its most confident reading (``veto``: among those whose
    span is of its question's kind, as search picks)."""
    return max((r for r in q["reads"] if not veto or r["kind_ok"]), key=lambda r: r["conf"], default=None)


def score(qs: list[dict[str, Any]], threshold: float, veto: bool) -> dict[str, float]:
    tops = [(b["conf"], b["right"], b["f1"]) if (b := best_read(q, veto)) else (0.0, False, 0.0) for q in qs]
    answered, precision, _abstains, _right = operating_point(tops, [], threshold)
    return {
        "answered": round(answered, 4),
        "precision": round(precision, 4),
        "span_f1_at_threshold": round(sum(f1 for c, _, f1 in tops if c >= threshold) / max(1, len(qs)), 4),
        "answers": sum(c >= threshold for c, _, _ in tops),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="calib", choices=("calib", "test"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    st = Settings()
    ds = load_dataset(args.dataset, split=args.split)
    emb = Embedder.from_settings(st)
    with tempfile.TemporaryDirectory(prefix="salon-span-type-") as tmp:
        build_index(CorpusReport(ds.articles), Path(tmp), emb, st, progress=True)
        engine = Engine.open(Path(tmp), st, emb)
        reader = engine.answers.reader
        assert reader is not None, "the reader is off or its artifact is refused"
        qs = readings(engine, [q for q in ds.questions if q.answers and is_question(q.text)])
    thr = engine.answers.threshold
    typed = [q for q in qs if q["type"] in TYPED]
    # Among typed questions answered as before: how often the span lacks its kind, and how right those are.
    shown = [(q, b) for q in typed if (b := best_read(q, False)) is not None and b["conf"] >= thr]
    lacking = [(q, b) for q, b in shown if not b["kind_ok"]]
    report: dict[str, Any] = {
        "reader_sha256": reader.meta["sha256"],
        "runtime": reader.runtime,
        "split": args.split,
        "threshold": thr,
        "questions": len(qs),
        "typed_questions": {t: sum(q["type"] == t for q in qs) for t in TYPED},
        "typed_answered": len(shown),
        "typed_answered_span_lacks_kind": {
            "count": len(lacking),
            "sentence_holds_gold": round(sum(b["right"] for _, b in lacking) / max(1, len(lacking)), 4),
            "mean_span_f1": round(sum(b["f1"] for _, b in lacking) / max(1, len(lacking)), 4),
            "examples": [
                {"question": q["question"], "span": b["span"], "gold": q["answers"][:2], "conf": round(b["conf"], 3)}
                for q, b in lacking[:25]
            ],
        },
        "typed_answered_span_has_kind": {
            "count": len(shown) - len(lacking),
            "sentence_holds_gold": round(
                sum(b["right"] for _, b in shown if b["kind_ok"]) / max(1, len(shown) - len(lacking)), 4
            ),
        },
        "all_questions": {"shown": score(qs, thr, False), "veto": score(qs, thr, True)},
        "typed_only": {"shown": score(typed, thr, False), "veto": score(typed, thr, True)},
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
