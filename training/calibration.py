"""The reader's answer confidence, fitted on the calib articles' readings and stored in its artifact.

    python -m training.calibration ../shared/eval/piaf-dev --reader-dir DIR --write

The calib questions are read as search reads them (the top windows of a hybrid search), with
their articles indexed (``present``) and left out (``absent``), by a reader that never trained
on them; a logistic regression over ``CALIBRATION_FEATURES`` is fitted on those readings and its
threshold chosen by ``search.evaluate.fit_answer_confidence``. The readings of the same calib
questions reworded in English (``REWORDED``) are fitted with them, so that a question asked in
another language than its article's is answered too. Before writing, the fit is scored two-fold
(fitted on one half of calib, read on the other) and printed. The test split is never read.
``--small-corpora`` then fits a correction for small indexes on the calib readings
training/small_corpora.py cached for the same reader (its questions over their article plus k
others, and asked where their article or answer is missing), with the confidence fitted above
held fixed (``search.evaluate.fit_size_correction``: nothing changes on an index of 1,000
passages or more); ``--base-from`` takes that confidence from another artifact instead of
fitting it; ``--features`` names what the confidence reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from indexer.settings import Settings
from search.evaluate import (
    Readings,
    evaluate,
    fit_answer_confidence,
    fit_size_correction,
    operating_point,
    top_readings,
    with_size_features,
)
from search.reader import ARTIFACT_DIR, CALIBRATION_FEATURES, FEATURES

# PIAF calib questions reworded in English (bench/data/README.md says how they were made).
REWORDED = Path(__file__).resolve().parent.parent / "bench" / "data" / "piaf-en-questions.jsonl"


def at(cal: dict[str, Any], present: Readings, absent: Readings) -> dict[str, float]:
    """Answered, precision when answering, and abstention without the article at ``cal``'s
    threshold; and, whatever threshold is picked, the ranking's worth for the issue's two goals:
    answered at precision ≥ 0.85, precision when answering 60 %."""
    tp = top_readings(present, cal)
    answered, precision, abstains, _ = operating_point(tp, top_readings(absent, cal), cal["threshold"])
    ranked = [ok for _p, ok, _ in sorted(tp, key=lambda x: -x[0])]
    hits, best, prec60 = 0, 0, 0.0
    for i, ok in enumerate(ranked, 1):
        hits += ok
        if hits / i >= 0.85:
            best = i
        if i == round(0.6 * len(ranked)):
            prec60 = hits / i
    return {
        "answered": answered,
        "precision": precision,
        "abstains": abstains,
        "answered_at_p85": best / max(1, len(ranked)),
        "precision_at_60": prec60,
    }


def load_readings(
    dataset: Path, st: Settings, questions: Path | None, path: Path | None = None, limit: int | None = None
) -> dict[str, Readings]:
    """The calib questions' readings (``questions``: in that file's wording), read as search
    reads them, with their articles indexed (``present``) and without (``absent``); cached in
    ``path`` (default: one file per reader, runtime, windows and wording); ``limit``: the first
    calib questions only (a quick check)."""
    if path is None:  # readings depend on the weights, the runtime and the windows read
        from search.reader import read_meta

        sha = str(read_meta(st.reader_dir or ARTIFACT_DIR)["sha256"])[:12]
        run = "int8s" if st.reader_int8 else "fp32"  # int8s: smoothed feed-forward outputs
        per = "" if st.reader_same_article else "-per-article"  # which windows are read
        asked = f"-{questions.stem}" if questions else ""
        if questions and st.reader_foreign_windows:  # English questions read more windows when unsure
            asked += f"-fw{st.reader_foreign_windows}"
        first = f"-first{limit}" if limit else ""
        path = Path(f"var/reader-readings-calib-{sha}-{run}-{st.reader_windows}w{per}{asked}{first}.json")
    r = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if r is not None and any(set(FEATURES) - set(f) for q in r["present"] for f, _, _ in q):
        print(f"{path} predates features now read: reading again", file=sys.stderr)
        r = None
    if r is None:
        rep = evaluate(
            dataset,
            st,
            ["hybrid"],
            progress=True,
            split="calib",
            limit=limit,
            fit_reader=True,
            keep_readings=True,
            questions=questions,
        )
        r = rep["readings"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r), encoding="utf-8")
    return r


def calib_qids(dataset: Path, questions: Path | None, limit: int | None = None) -> list[str]:
    """The qids of the questions ``load_readings`` read, in its order."""
    from search.answer import is_question
    from search.evaluate import load_dataset

    ds = load_dataset(dataset, split="calib", questions=questions, limit=limit)
    return [q.qid for q in ds.questions if q.answers and is_question(q.text)]


def two_fold(
    pairs: list[tuple[Readings, Readings, list[int]]], features: tuple[str, ...] = CALIBRATION_FEATURES
) -> dict[str, float]:
    """The confidence fitted on one half of calib and read on the other, both ways, averaged;
    ``pairs``: (present, absent, fold of each question) per wording, all fitted together."""
    figures = []
    for k in (0, 1):

        def part(rs: Readings, fl: list[int], same: bool, k: int = k) -> Readings:
            return [q for q, f in zip(rs, fl, strict=True) if (f == k) == same]

        fit_p = [q for p, _, fl in pairs for q in part(p, fl, True)]
        fit_a = [q for _, a, fl in pairs for q in part(a, fl, True)]  # one absent reading per question
        cal = fit_answer_confidence(fit_p, fit_a, features=features)
        p, a, fl = pairs[0]  # read on the dataset's own wording
        figures.append(at(cal, part(p, fl, False), part(a, fl, False)))
    return {key: sum(f[key] for f in figures) / 2 for key in figures[0]}


def small_corpora(paths: list[Path]) -> tuple[Readings, Readings]:
    """The readings training/small_corpora.py cached (calib questions over their article plus k
    others, of the same reader): (present at every size, absent and answer-removed at every size)."""
    present: Readings = []
    absent: Readings = []
    for path in paths:
        got = json.loads(path.read_text(encoding="utf-8"))
        for key, reads in got.items():
            (present if len(key.split("/")) == 2 else absent).extend(with_size_features(reads))
    return present, absent


def fit(
    dataset: Path,
    st: Settings,
    questions: Path | None = REWORDED,
    limit: int | None = None,
    features: tuple[str, ...] = CALIBRATION_FEATURES,
    sizes: list[Path] | None = None,
    base: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The confidence fitted on all calib readings over the full index (and those of
    ``questions``' wording), or ``base`` when given, with its correction for small indexes fitted
    on the small corpora's readings of ``sizes``; its two-fold figures on the dataset's own
    wording (``base``: its figures on them); ``limit``: the first calib questions only."""
    r = load_readings(dataset, st, None, limit=limit)
    present, absent = r["present"], r["absent"]
    # Two folds by question position hash (questions of one article share neighbours in the
    # file, so a hash of the index keeps folds mixed without needing titles here).
    fold = [hashlib.sha1(str(i).encode()).digest()[0] % 2 for i in range(len(present))]
    pairs = [(present, absent, fold)]
    if questions and not limit:  # the first N reworded questions need not reword the first N
        other = load_readings(dataset, st, questions, limit=limit)
        # a reworded question falls in the fold of the question it rewords: same article, same answer
        place = {q: i for i, q in enumerate(calib_qids(dataset, None, limit))}
        reworded = calib_qids(dataset, questions, limit)
        pairs.append((other["present"], other["absent"], [fold[place[q]] for q in reworded]))
    if base is None:
        cal = fit_answer_confidence(
            [q for p, _, _ in pairs for q in p], [q for _, a, _ in pairs for q in a], features=features
        )
    else:
        cal = {k: v for k, v in base.items() if k != "fitted_on"}  # a correction it holds is refitted below
    report: dict[str, Any] = {
        "questions": {("reworded" if i else "first"): len(p) for i, (p, _, _) in enumerate(pairs)},
        "features": list(cal["features"]),
        "threshold": cal["threshold"],
        "held_out": two_fold(pairs, features) if base is None else at(cal, present, absent),
    }
    if sizes:
        more_p, more_a = small_corpora(sizes)
        cal = fit_size_correction(cal, more_p, more_a)
        report["questions"] |= {"small corpora": len(more_p), "small corpora, no answer": len(more_a)}
        report["size_correction"] = cal["size_correction"]
    return cal, report


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fit the reader's answer confidence on PIAF's calib articles.")
    ap.add_argument("dataset", type=Path, help="PIAF-like folder, e.g. ../shared/eval/piaf-dev")
    ap.add_argument("--reader-dir", type=Path, help="the reader artifact to fit (default: SALON_READER_DIR or shipped)")
    ap.add_argument("--write", action="store_true", help="store the fitted confidence in the reader artifact")
    ap.add_argument("--out", type=Path, help="also write the figures as JSON here")
    ap.add_argument(
        "--questions",
        type=Path,
        default=REWORDED,
        help="the calib questions this JSON-lines file rewords are fitted with the others (default: the English "
        "rewording with which the shipped confidence was fitted)",
    )
    ap.add_argument("--first-wording-only", action="store_true", help="fit on the dataset's own questions alone")
    ap.add_argument("--limit", type=int, help="the first N calib questions only (a quick check, not the recipe)")
    ap.add_argument(
        "--small-corpora",
        type=Path,
        action="append",
        default=[],
        help="also fit on the calib readings bench/small_corpus.py cached for this reader (corpora of k + 1 "
        "articles, absent and answer-removed questions); repeatable",
    )
    ap.add_argument("--features", help="comma-separated reading features (default: CALIBRATION_FEATURES)")
    ap.add_argument(
        "--base-from",
        type=Path,
        help="take the confidence fitted over the full index from this reader artifact (its correction for "
        "small indexes is fitted anew on --small-corpora) instead of fitting it",
    )
    args = ap.parse_args(argv)
    st = Settings()
    if args.reader_dir:
        st = st.model_copy(update={"reader_dir": args.reader_dir})
    artifact = st.reader_dir or ARTIFACT_DIR
    features = tuple(args.features.split(",")) if args.features else CALIBRATION_FEATURES
    unknown = set(features) - set(FEATURES)
    if unknown:
        ap.error(f"unknown features {sorted(unknown)}; known: {', '.join(FEATURES)}")
    questions = None if args.first_wording_only else args.questions
    base = None
    if args.base_from:
        from search.reader import ReaderError, read_meta

        try:
            base = read_meta(args.base_from)["calibration"]
        except (ReaderError, KeyError) as exc:
            sys.exit(f"salon: no fitted confidence in {args.base_from}: {exc}")
    cal, report = fit(args.dataset, st, questions, args.limit, features, args.small_corpora, base)
    held = report["held_out"]
    print("| questions | features | threshold | held-out answered | precision | abstains without the article |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {', '.join(f'{k} {v}' for k, v in report['questions'].items())} | {', '.join(report['features'])} "
        f"| {report['threshold']:.2f} | {held['answered']:.3f} | {held['precision']:.3f} | {held['abstains']:.3f} |"
    )
    if args.out:
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.write:
        from training.reader_train import write_calibration

        fitted_on = "calib"
        if base is not None:
            from search.reader import read_meta

            sha = str(read_meta(artifact)["sha256"])[:16]
            fitted_on = (
                f"{base.get('fitted_on', 'calib')}; its correction for small indexes: calib small-corpora "
                f"readings of reader {sha}… (trained on train)"
            )
        where = write_calibration(cal, fitted_on, artifact)
        print(f"wrote the confidence (threshold {cal['threshold']}) to {where}", file=sys.stderr)


if __name__ == "__main__":
    main()
