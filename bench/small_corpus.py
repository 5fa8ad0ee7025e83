"""Does the answer confidence keep its promise on a small archive? PIAF questions asked over
corpora of their gold article plus k others drawn at random (``make bench-small``).

    .venv/bin/python bench/small_corpus.py ../shared/eval/piaf-dev --split test --json out.json

For each size k (default 1, 10, 100, and the full index of all PIAF dev articles) and each draw,
the split's articles are shuffled and cut into groups of k + 1; each group (filled up with other
articles at random when it is the last, short one) is indexed on its own, exactly as `salon
index` would index it, and the questions of its split articles are asked. Per k: answered,
precision when answering (the answer's sentence holds a gold answer), span F1 at the threshold,
and the expected calibration error (ECE) of the shown percentage over 10 bins, with the
reliability curve. The readings (confidence features, right, F1) are cached in var/
(training/small_corpora.py reads them; on calib they fit the confidence's correction for small
indexes, training/calibration.py ``--small-corpora``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from indexer.settings import Settings
from search.evaluate import load_dataset, table, write_json
from training.small_corpora import collect, report

ROOT = Path(__file__).resolve().parent.parent


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
    if "threshold" not in cal:
        # a reader trained on train alone, read to fit its confidence (training/calibration.py)
        sys.exit("the reader has no fitted confidence: its readings are cached in var/ for --small-corpora")
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
