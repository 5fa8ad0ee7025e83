"""The reader's cost and worth per configuration, on one PIAF index, test-split questions only:
question-search latency (p50 / p95, the whole ``Engine.search``), answered rate, precision when
answering, and span F1, for sentence answers (reader off) and reader runtimes × windows read.

    .venv/bin/python bench/reader.py ../shared/eval/piaf-dev --limit 400 --out docs/bench/reader-configurations.json

Each configuration opens its own engine over the same index files and the same model, then asks
every question once after two warm-up searches (``make bench-reader``). ``--only TEXT`` runs the
configurations whose name holds TEXT; ``--questions bench/data/piaf-en-questions.jsonl`` asks the
questions in that file's wording.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from indexer.build import build_index
from indexer.corpus import CorpusReport
from indexer.model import Embedder
from indexer.settings import Settings
from search.engine import Engine
from search.evaluate import load_dataset, pct, write_json
from search.reader import answer_f1, normalize_answer

CONFIGS: dict[str, dict[str, Any]] = {
    "sentences (reader off)": {"reader": False},
    "reader int8, 1 window": {"reader_int8": True, "reader_windows": 1},
    "reader int8, 2 windows, one per article (default)": {"reader_int8": True, "reader_windows": 2},
    "reader int8, default, no second pass for questions in another language": {"reader_foreign_windows": 0},
    "reader int8, 2 windows, one per article, no gate (every window read)": {
        "reader_int8": True,
        "reader_windows": 2,
        "reader_gate": False,
    },
    "reader int8, 2 windows, same article too": {"reader_int8": True, "reader_windows": 2, "reader_same_article": True},
    "reader fp32, 2 windows, one per article": {"reader_int8": False, "reader_windows": 2},
    "reader fp32, 2 windows, one per article, no gate": {
        "reader_int8": False,
        "reader_windows": 2,
        "reader_gate": False,
    },
}
# (gated, ungated) pairs whose answers shown are compared: the gate is meant to change none. In
# int8 a few do change: activations are quantised with one scale per call, so a window's margin
# depends on the window batched with it, and the gate changes what is batched.
GATE_PAIRS = (
    (
        "reader int8, 2 windows, one per article (default)",
        "reader int8, 2 windows, one per article, no gate (every window read)",
    ),
    ("reader fp32, 2 windows, one per article", "reader fp32, 2 windows, one per article, no gate"),
)


def run(engine: Engine, qs: list[Any]) -> dict[str, Any]:
    threshold = engine.answers.threshold
    for q in qs[:2]:
        engine.search(q.text, k=10)
    reader, read = engine.answers.reader, None
    windows: list[int] = []  # per question, the windows read (over one or two reader calls)
    shown: list[list[Any]] = []  # the answers shown, to compare configurations
    if reader is not None:  # count the windows read per question (the gate skips some)
        read = reader.read

        def counted(question: str, ws: list[Any]) -> Any:
            windows[-1] += len(ws)
            assert read is not None
            return read(question, ws)

        reader.read = counted  # type: ignore[method-assign]
    lat, answered, right, f1, f1_any = [], 0, 0, 0.0, 0.0
    for q in qs:
        windows.append(0)
        res = engine.search(q.text, k=10)
        lat.append(res.took_ms)
        shown.append([(x.doc_id, x.span) for x in res.answers if x.confidence >= threshold])
        a = res.answer
        golds = [normalize_answer(g) for g in q.answers]
        if a is None:
            continue
        f = max(answer_f1(a.span_text, g) for g in q.answers) if a.span_text else 0.0
        f1_any += f
        if a.confidence >= threshold:
            answered += 1
            right += any(g and g in normalize_answer(a.text) for g in golds)
            f1 += f
    n = len(qs)
    if reader is not None:
        del reader.read  # the instance attribute set above: the class's method again
    return {
        "windows_per_question": sum(windows) / n,
        "questions_reading_2": sum(w >= 2 for w in windows) / n,
        "shown": shown,
        "p50_ms": pct(lat, 50),
        "p95_ms": pct(lat, 95),
        "answered": answered / n,
        "precision": right / max(1, answered),
        "span_f1": f1 / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", help="run only the configurations whose name contains this text")
    ap.add_argument("--questions", type=Path, help="ask the questions in this file's wording (salon eval --questions)")
    args = ap.parse_args()
    ds = load_dataset(args.dataset, split=args.split, limit=args.limit, questions=args.questions)
    base = Settings()
    embedder = Embedder.from_settings(base)
    out: dict[str, Any] = {"questions": len(ds.questions), "documents": len(ds.articles), "configs": {}}
    with tempfile.TemporaryDirectory(prefix="salon-bench-reader-") as tmp:
        build_index(CorpusReport(ds.articles), Path(tmp), embedder, base, progress=False)
        for name, update in CONFIGS.items():
            if args.only and args.only not in name:
                continue
            engine = Engine.open(Path(tmp), base.model_copy(update=update), embedder)
            # thresholded figures come from the engine's own answers (threshold applied in search)
            out["configs"][name] = run(engine, ds.questions)
            print(name, {k: v for k, v in out["configs"][name].items() if k != "shown"}, file=sys.stderr)
    shown = {name: m.pop("shown") for name, m in out["configs"].items()}
    out["gate_changed_answers"] = {
        gated: sum(a != b for a, b in zip(shown[gated], shown[ungated], strict=True))
        for gated, ungated in GATE_PAIRS
        if gated in shown and ungated in shown
    }
    print(f"{ds.name}, {args.split} split: {out['questions']} questions, {out['documents']} documents indexed\n")
    print(
        "| configuration | p50 ms | p95 ms | answered | precision | span F1 (abstentions 0) | windows read "
        "per question | questions reading 2 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, m in out["configs"].items():
        print(
            f"| {name} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m['answered']:.3f} | {m['precision']:.3f} | "
            f"{m['span_f1']:.3f} | {m['windows_per_question']:.2f} | {m['questions_reading_2']:.3f} |"
        )
    for name, n in out["gate_changed_answers"].items():
        print(f"\n{name}: answers shown differ with the gate off for {n} of {out['questions']} questions")
    write_json(args.out, out)


if __name__ == "__main__":
    main()
