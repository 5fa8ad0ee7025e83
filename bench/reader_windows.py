"""Which windows the reader should read, measured on calib: every question's first W windows
(in the order search scores their sentences, any article) are read once, with the calib
articles indexed and without them; each reading policy then keeps a subset of those readings,
the answer confidence is fitted on one half of calib's policy readings and scored on the other
half (and the halves swapped), as bench/reader_calibration.py does for feature sets.

    .venv/bin/python bench/reader_windows.py ../shared/eval/piaf-dev [--windows 5] [--out FILE.json]

A reading does not depend on which other windows were read (its ``order`` is its place among
the W windows, as search numbers them), so one pass of readings serves every policy. The test
split is never read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reader_calibration import at

from indexer.settings import Settings
from search.evaluate import Readings, fit_answer_confidence, top_readings
from search.reader import ARTIFACT_DIR, CALIBRATION_FEATURES, confidence, margin_bound

Reads = list[tuple[dict[str, float], bool, float]]
Policy = Callable[[Reads, dict[str, Any]], Reads]


def collect(dataset: Path, st: Settings, windows: int, questions: Path | None = None) -> dict[str, Readings]:
    """The calib questions' first ``windows`` windows, read ungated, with and without their articles."""
    from indexer.build import build_index
    from indexer.corpus import CorpusReport
    from indexer.model import Embedder
    from search.engine import Engine
    from search.evaluate import _readings, load_dataset

    st = st.model_copy(update={"reader_windows": windows, "reader_same_article": True})
    ds = load_dataset(dataset, split="calib", questions=questions)
    emb = Embedder.from_settings(st)
    gold = {q.gold_doc for q in ds.questions}
    titles = {a.title or a.id for a in ds.articles if a.id in gold}
    rest = [a for a in ds.articles if (a.title or a.id) not in titles]
    out = {}
    for name, arts in (("present", ds.articles), ("absent", rest)):
        with tempfile.TemporaryDirectory(prefix="salon-windows-") as tmp:
            build_index(CorpusReport(arts), Path(tmp), emb, st, progress=True)
            out[name] = _readings(Engine.open(Path(tmp), st, emb), ds, True, article=True)
    return out


def shipped(q: Reads, cal: dict[str, Any]) -> Reads:
    """Search's default: the first window, and the second when it is of another article."""
    first = [r for r in q if r[0]["order"] == 0]
    if not first:
        return []
    second = [r for r in q if r[0]["order"] == 1 and r[0]["article"] != first[0][0]["article"]]
    return first + second


def first_k(k: int) -> Policy:
    return lambda q, cal: [r for r in q if r[0]["order"] < k]


def more_when_unsure(n: int, same_article_only: bool = False) -> Policy:
    """The default windows, then (when none of their readings passes the threshold) the rest of
    the first ``n`` windows; ``same_article_only``: only those of the first window's article."""

    def pick(q: Reads, cal: dict[str, Any]) -> Reads:
        base = shipped(q, cal)
        if not base or any(confidence(f, cal) >= cal["threshold"] for f, _, _ in base):
            return base
        art = base[0][0]["article"]
        more = [
            r for r in q if r[0]["order"] < n and r not in base and (not same_article_only or r[0]["article"] == art)
        ]
        return base + more

    return pick


POLICIES: dict[str, Policy] = {
    "first window": first_k(1),
    "shipped: first window, second if another article": shipped,
    "first 2, any article": first_k(2),
    "first 3, any article": first_k(3),
    "shipped, then first 3 when none passes": more_when_unsure(3),
    "shipped, then first 4 when none passes": more_when_unsure(4),
    "shipped, then first 5 when none passes": more_when_unsure(5),
    "shipped, then the first article's windows among the first 4 when none passes": more_when_unsure(4, True),
}


def foreign_only(policy: Policy) -> Policy:
    """``policy`` for questions in another language than their article's, the shipped one otherwise."""
    return lambda q, cal: policy(q, cal) if q and q[0][0].get("foreign") else shipped(q, cal)


FOREIGN_POLICIES: dict[str, Policy] = {
    "shipped": shipped,
    **{f"{name} (questions in another language only)": foreign_only(POLICIES[name]) for name in list(POLICIES)[2:]},
}


def fit(policy: Policy, present: Readings, absent: Readings) -> dict[str, Any]:
    """The confidence fitted on the readings ``policy`` keeps. Which readings it keeps depends on
    the threshold, so the fit starts from the shipped policy's and is redone twice."""
    cal = fit_answer_confidence([shipped(q, {}) for q in present], [shipped(q, {}) for q in absent])
    for _ in range(2):
        cal = fit_answer_confidence([policy(q, cal) for q in present], [policy(q, cal) for q in absent])
    return cal


def figures(policy: Policy, cal: dict[str, Any], present: Readings, absent: Readings) -> dict[str, float]:
    sel_p, sel_a = [policy(q, cal) for q in present], [policy(q, cal) for q in absent]
    out = at(cal, sel_p, sel_a)
    tp = top_readings(sel_p, cal)
    out["span_f1_at_threshold"] = sum(f1 for p, _, f1 in tp if p >= cal["threshold"]) / max(1, len(tp))
    out["span_f1_never_abstaining"] = sum(f1 for _, _, f1 in tp) / max(1, len(tp))
    out["holds_answer"] = sum(any(ok for _, ok, _ in q) for q in sel_p) / max(1, len(sel_p))
    # windows search would read: the gate skips one whose reading could not pass the threshold
    bound = margin_bound(cal)
    for name, sel in (("read_present", sel_p), ("read_absent", sel_a)):
        n = sum(
            1
            for q in sel
            for f, _, _ in q
            if bound is None or confidence({**f, "margin": bound}, cal) >= cal["threshold"]
        )
        out[name] = n / max(1, len(sel))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--windows", type=int, default=5, help="windows read per question (the most any policy keeps)")
    ap.add_argument("--readings", type=Path, help="cache of readings (default: one per reader, runtime and windows)")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--questions",
        type=Path,
        help="also these reworded calib questions (salon eval --questions), fitted with the others; "
        "the policies then change how only questions in another language than their article's are read",
    )
    args = ap.parse_args()
    st = Settings()
    if args.readings is None:
        from search.reader import read_meta

        sha = str(read_meta(st.reader_dir or ARTIFACT_DIR)["sha256"])[:12]
        run = "int8s" if st.reader_int8 else "fp32"
        args.readings = Path(f"var/reader-readings-calib-{sha}-{run}-{args.windows}w-any-article.json")
    if args.readings.is_file():
        r = json.loads(args.readings.read_text(encoding="utf-8"))
    else:
        r = collect(args.dataset, st, args.windows)
        args.readings.parent.mkdir(parents=True, exist_ok=True)
        args.readings.write_text(json.dumps(r), encoding="utf-8")
    present, absent = r["present"], r["absent"]
    fold = [hashlib.sha1(str(i).encode()).digest()[0] % 2 for i in range(len(present))]
    policies = POLICIES
    n_first = len(present)
    if args.questions:  # both wordings, fitted together; figures for each
        from reader_calibration import calib_qids

        path = args.readings.with_name(args.readings.stem + f"-{args.questions.stem}.json")
        if path.is_file():
            o = json.loads(path.read_text(encoding="utf-8"))
        else:
            o = collect(args.dataset, st, args.windows, args.questions)
            path.write_text(json.dumps(o), encoding="utf-8")
        place = {q: i for i, q in enumerate(calib_qids(args.dataset, None))}
        fold += [fold[place[q]] for q in calib_qids(args.dataset, args.questions)]
        present, absent = present + o["present"], absent + o["absent"]
        policies = FOREIGN_POLICIES
    print(f"calib: {len(present)} questions with their article, {len(absent)} without; {args.windows} windows each")
    groups = {"": list(range(len(present)))}
    if args.questions:
        groups = {"": list(range(n_first)), "reworded ": list(range(n_first, len(present)))}
    keys = (
        "answered",
        "precision",
        "abstains",
        "span_f1_at_threshold",
        "span_f1_never_abstaining",
        "holds_answer",
        "read_present",
        "read_absent",
    )
    cols = [g + k for g in groups for k in keys]
    print("| policy | " + " | ".join(cols) + " | threshold (all calib) |")
    print("|---|" + "---|" * (len(cols) + 1))
    out: dict[str, Any] = {"questions": len(present), "windows": args.windows, "features": CALIBRATION_FEATURES}
    out["policies"] = {}
    for name, policy in policies.items():
        held: dict[str, list[dict[str, float]]] = {g: [] for g in groups}
        for k in (0, 1):

            def part(rs: Readings, same: bool, k: int = k, among: list[int] | None = None) -> Readings:
                keep = set(range(len(rs)) if among is None else among)
                return [q for i, (q, f) in enumerate(zip(rs, fold, strict=True)) if (f == k) == same and i in keep]

            cal = fit(policy, part(present, True), part(absent, True))
            for g, idx in groups.items():
                held[g].append(figures(policy, cal, part(present, False, among=idx), part(absent, False, among=idx)))
        agg = {g + key: float(np.mean([h[key] for h in held[g]])) for g in groups for key in keys}
        whole = fit(policy, present, absent)
        out["policies"][name] = {"cross_validated": agg, "threshold": whole["threshold"]}
        print(f"| {name} | " + " | ".join(f"{agg[c]:.3f}" for c in cols) + f" | {whole['threshold']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
