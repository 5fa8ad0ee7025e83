"""Which reading features the answer confidence should be fitted on, measured: the readings of
the calib questions (with their articles indexed, and without), then, for each feature set, a
logistic fit on half of the calib articles and the threshold rule of ``fit_answer_confidence``,
scored on the other half (and the halves swapped).

    .venv/bin/python bench/reader_calibration.py ../shared/eval/piaf-dev [--out docs/bench/reader-calibration.json]
        [--write] [--questions FILE | --first-wording-only]

``--write`` also stores the confidence fitted on all calib readings with the shipped feature
set in the reader artifact: those of PIAF's French questions and of the 160 calib questions
``bench/data/piaf-en-questions.jsonl`` rewords in English (``salon eval … --split calib
--fit-reader`` fits on one wording only).

The test split is never read: it stays for the figures docs/quality.md reports.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.settings import Settings
from search.evaluate import Readings, evaluate, fit_answer_confidence, operating_point, top_readings
from search.reader import ARTIFACT_DIR, CALIBRATION_FEATURES, FEATURES

REWORDED = Path(__file__).resolve().parent / "data" / "piaf-en-questions.jsonl"
SHIPPED = ("margin", "order", "sim", "cov", "type", "passage_lead")  # the passage lead round's set (French)
SETS: dict[str, tuple[str, ...]] = {
    "margin only": ("margin",),
    "margin, order, sentence logit (first fit)": ("margin", "order", "sentence_logit"),
    "margin, order, sim, cov, type": ("margin", "order", "sim", "cov", "type"),
    "margin, sim, type": ("margin", "sim", "type"),
    "+ passage rank, span prob, agreement": (
        "margin",
        "order",
        "sentence_logit",
        "passage_rank",
        "span_log_prob",
        "agreement",
    ),
    "+ passage score, passage lead": ("margin", "order", "sim", "cov", "type", "passage_score", "passage_lead"),
    "+ passage lead": SHIPPED,
    "+ passage lead, span type": (*SHIPPED, "span_type"),
    "+ passage lead, span echoes question": (*SHIPPED, "span_in_question"),
    "+ passage lead, span words": (*SHIPPED, "span_words"),
    "+ passage lead, span type, echo, words": (*SHIPPED, "span_type", "span_in_question", "span_words"),
    "all": ("margin", "order", "sentence_logit", "sim", "cov", "type", "passage_rank", "span_log_prob", "agreement"),
}


# Fitted on the French readings and on the same calib questions reworded in English
# (--questions): does the confidence need to know that the question is not in the article's
# language, and does that change how much the sentence's cosine and term coverage count?
INTERACTIONS = ("sim", "cov", "margin")
CROSS_SETS: dict[str, tuple[str, ...]] = {
    "shipped, fitted on the first wording only": SHIPPED,
    "shipped, fitted on both": SHIPPED,
    "+ foreign": (*SHIPPED, "foreign"),
    "+ foreign, foreign×cov": (*SHIPPED, "foreign", "foreign×cov"),
    "+ foreign, foreign×sim": (*SHIPPED, "foreign", "foreign×sim"),
    "+ foreign, foreign×margin": (*SHIPPED, "foreign", "foreign×margin"),
    "+ foreign, foreign×sim, foreign×cov, foreign×margin": (
        *SHIPPED,
        "foreign",
        *(f"foreign×{n}" for n in INTERACTIONS),
    ),
}


def with_interactions(readings: Readings) -> None:
    """Adds the products of ``foreign`` with the ``INTERACTIONS`` features to every reading."""
    for q in readings:
        for f, _, _ in q:
            for n in INTERACTIONS:
                f[f"foreign×{n}"] = f["foreign"] * f[n]


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


def load_readings(dataset: Path, st: Settings, questions: Path | None, path: Path | None = None) -> dict[str, Readings]:
    """The calib questions' readings (``questions``: in that file's wording), read as search
    reads them, with their articles indexed (``present``) and without (``absent``); cached in
    ``path`` (default: one file per reader, runtime, windows and wording)."""
    if path is None:  # readings depend on the weights, the runtime and the windows read
        from search.reader import read_meta

        sha = str(read_meta(st.reader_dir or ARTIFACT_DIR)["sha256"])[:12]
        run = "int8s" if st.reader_int8 else "fp32"  # int8s: smoothed feed-forward outputs
        per = "" if st.reader_same_article else "-per-article"  # which windows are read
        asked = f"-{questions.stem}" if questions else ""
        if questions and st.reader_foreign_windows:  # English questions read more windows when unsure
            asked += f"-fw{st.reader_foreign_windows}"
        path = Path(f"var/reader-readings-calib-{sha}-{run}-{st.reader_windows}w{per}{asked}.json")
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
            fit_reader=True,
            keep_readings=True,
            questions=questions,
        )
        r = rep["readings"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r), encoding="utf-8")
    return r


def calib_qids(dataset: Path, questions: Path | None) -> list[str]:
    """The qids of the questions ``load_readings`` read, in its order."""
    from search.answer import is_question
    from search.evaluate import load_dataset

    ds = load_dataset(dataset, split="calib", questions=questions)
    return [q.qid for q in ds.questions if q.answers and is_question(q.text)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--readings", type=Path, help="cache of readings (default: one per reader, runtime and windows)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--write", action="store_true", help="store the full-calib fit in the reader artifact")
    ap.add_argument(
        "--questions",
        type=Path,
        default=REWORDED,
        help="also the calib questions this file rewords (salon eval --questions): the confidence is fitted on "
        "both sets of readings, and its held-out figures are given for each (default: the English rewording "
        "in bench/data, with which the shipped confidence was fitted)",
    )
    ap.add_argument("--first-wording-only", action="store_true", help="fit on the dataset's own questions alone")
    args = ap.parse_args()
    if args.first_wording_only:
        args.questions = None
    st = Settings()
    artifact = st.reader_dir or ARTIFACT_DIR
    r = load_readings(args.dataset, st, None, args.readings)
    present, absent = r["present"], r["absent"]
    # Two folds by question position hash (questions of one article share neighbours in the
    # file, so a hash of the index keeps folds mixed without needing titles here).
    fold = [hashlib.sha1(str(i).encode()).digest()[0] % 2 for i in range(len(present))]
    out: dict[str, Any] = {"questions": len(present), "sets": {}}
    # What no confidence can exceed: the share of questions one of whose windows read holds the answer.
    out["window_holds_answer"] = {
        "any": sum(any(ok for _, ok, _ in q) for q in present) / max(1, len(present)),
        "first": sum(any(ok for f, ok, _ in q if f["order"] == 0) for q in present) / max(1, len(present)),
    }
    print(f"calib readings: {len(present)} questions with their article, {len(absent)} without")
    print(
        f"a window read holds the answer for {out['window_holds_answer']['any']:.3f} of them "
        f"(the first window: {out['window_holds_answer']['first']:.3f})\n"
    )
    print(
        "| features | answered | precision | abstains without the article | threshold (all calib) "
        "| answered at precision 0.85 | precision at 60 % answered |"
    )
    print("|---|---|---|---|---|---|---|")

    def two_fold(feats: tuple[str, ...], rule: str = "expected") -> list[tuple[dict[str, Any], dict[str, float]]]:
        """Fitted on each half of calib, (the fit, its figures on the other half)."""
        out = []
        for k in (0, 1):

            def part(rs: Readings, same: bool, k: int = k) -> Readings:
                return [q for q, f in zip(rs, fold, strict=True) if (f == k) == same]

            cal = fit_answer_confidence(part(present, True), part(absent, True), features=feats, rule=rule)
            out.append((cal, at(cal, part(present, False), part(absent, False))))
        return out

    whole_fits: dict[tuple[str, ...], dict[str, Any]] = {}
    for name, feats in SETS.items():
        folds = two_fold(feats)
        agg = {key: sum(m[key] for _, m in folds) / 2 for key in folds[0][1]}
        whole = whole_fits[feats] = fit_answer_confidence(present, absent, features=feats)
        out["sets"][name] = {"features": feats, "cross_validated": agg, "threshold": whole["threshold"]}
        print(
            f"| {name} | {agg['answered']:.3f} | {agg['precision']:.3f} | {agg['abstains']:.3f} | "
            f"{whole['threshold']:.2f} | {agg['answered_at_p85']:.3f} | {agg['precision_at_60']:.3f} |"
        )
    # The threshold rule, cross-validated the same way on the shipped features: a rule whose
    # threshold jumps from one half of calib to the other is choosing on noise.
    print("\n| threshold rule | threshold per fold | held-out answered | held-out precision |")
    print("|---|---|---|---|")
    out["threshold_rules"] = {}
    for rule in ("counted", "expected"):
        got = [(cal["threshold"], m["answered"], m["precision"]) for cal, m in two_fold(CALIBRATION_FEATURES, rule)]
        out["threshold_rules"][rule] = [{"threshold": t, "answered": a, "precision": p} for t, a, p in got]
        print(
            f"| {rule} | {' / '.join(f'{t:.2f}' for t, _, _ in got)} | {np.mean([a for _, a, _ in got]):.3f} "
            f"| {np.mean([p for _, _, p in got]):.3f} |"
        )
    both: tuple[Readings, Readings] | None = None
    if args.questions:
        other = load_readings(args.dataset, st, args.questions)
        # a reworded question falls in the fold of the question it rewords: same article, same answer
        place = {q: i for i, q in enumerate(calib_qids(args.dataset, None))}
        ofold = [fold[place[q]] for q in calib_qids(args.dataset, args.questions)]
        for rs in (present, absent, other["present"], other["absent"]):
            with_interactions(rs)
        both = present + other["present"], absent + other["absent"]
        print(f"\n{len(other['present'])} of these questions reworded ({args.questions.name}), fitted with the others")
        print(
            "| features | answered | precision | abstains | reworded: answered | precision | abstains "
            "| threshold (all calib) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        out["reworded"] = {"questions": len(other["present"]), "file": args.questions.name, "sets": {}}
        for name, feats in CROSS_SETS.items():
            only_first = name == "shipped, fitted on the first wording only"
            figs = []
            for k in (0, 1):

                def part(rs: Readings, fl: list[int], same: bool, k: int = k) -> Readings:
                    return [q for q, f in zip(rs, fl, strict=True) if (f == k) == same]

                fit_p, fit_a = part(present, fold, True), part(absent, fold, True)
                if not only_first:
                    fit_p, fit_a = (
                        fit_p + part(other["present"], ofold, True),
                        fit_a + part(other["absent"], ofold, True),
                    )
                cal = fit_answer_confidence(fit_p, fit_a, features=feats)
                figs.append(
                    (
                        at(cal, part(present, fold, False), part(absent, fold, False)),
                        at(cal, part(other["present"], ofold, False), part(other["absent"], ofold, False)),
                    )
                )
            whole = fit_answer_confidence(*(((present, absent)) if only_first else both), features=feats)
            fr = {key: sum(f[0][key] for f in figs) / 2 for key in figs[0][0]}
            en = {key: sum(f[1][key] for f in figs) / 2 for key in figs[0][1]}
            out["reworded"]["sets"][name] = {
                "features": feats,
                "first": fr,
                "reworded": en,
                "threshold": whole["threshold"],
            }
            print(
                f"| {name} | {fr['answered']:.3f} | {fr['precision']:.3f} | {fr['abstains']:.3f} | "
                f"{en['answered']:.3f} | {en['precision']:.3f} | {en['abstains']:.3f} | {whole['threshold']:.2f} |"
            )
    if args.out:
        args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")
    if args.write:
        from training.reader_train import write_calibration

        if both is not None:  # the confidence search uses is fitted on every wording measured
            cal = fit_answer_confidence(*both, features=CALIBRATION_FEATURES)
        else:
            cal = whole_fits.get(CALIBRATION_FEATURES) or fit_answer_confidence(
                present, absent, features=CALIBRATION_FEATURES
            )
        where = write_calibration(cal, "calib", artifact)
        print(f"\nwrote the confidence ({', '.join(CALIBRATION_FEATURES)}; threshold {cal['threshold']}) to {where}")


if __name__ == "__main__":
    main()
