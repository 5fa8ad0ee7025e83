"""PNG plots for docs/performance.md from the JSON the benchmarks write.

    .venv/bin/python bench/plots.py            # make plots

- docs/latency-vs-size.png: search p50/p95 (in process and over HTTP) against corpus size,
  from docs/bench/search-latency-vs-size.json (make bench-scale)
- docs/ann-recall-latency.png: recall@10 against single-query latency for each index type,
  one panel per docs/bench/ann-283k.json and docs/bench/ann-1m.json (make bench-ann)
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LATENCY = DOCS / "bench" / "search-latency-vs-size.json"
ANN = [DOCS / "bench" / "ann-283k.json", DOCS / "bench" / "ann-1m.json"]


def latency_vs_size(data: dict) -> None:  # type: ignore[type-arg]
    rows = data["rows"]
    x = [r["paragraphs"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(x, [r["total"][0] for r in rows], "o-", label="in process, p50")
    ax.plot(x, [r["total"][1] for r in rows], "o--", label="in process, p95")
    if all("http" in r for r in rows):
        ax.plot(x, [r["http"][0] for r in rows], "s-", label="HTTP /search, p50")
        ax.plot(x, [r["http"][1] for r in rows], "s--", label="HTTP /search, p95")
    ax.plot(x, [r["encode"][0] for r in rows], "^:", label="query encoding alone, p50")
    for r in rows:
        ax.annotate(r["ann"], (r["paragraphs"], r["total"][0]), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.axhline(30, color="grey", lw=0.8, ls=":")
    ax.axhline(60, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("OrangeSum paragraphs indexed")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Salon full pipeline latency ({data['queries']} queries, 2 cores)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(DOCS / "latency-vs-size.png", dpi=110)
    plt.close(fig)


def ann_panels(files: list[Path]) -> None:
    fig, axes = plt.subplots(1, len(files), figsize=(6.5 * len(files), 4.2), squeeze=False)
    for ax, f in zip(axes[0], files, strict=True):
        data = json.loads(f.read_text(encoding="utf-8"))
        kinds: dict[str, list[dict]] = {}  # type: ignore[type-arg]
        for r in data["rows"]:
            kinds.setdefault(r["index"], []).append(r)
        for name, rs in kinds.items():
            ax.plot([r["p50_ms"] for r in rs], [r["recall10"] for r in rs], "o-", label=name, ms=4)
        ax.axhline(0.95, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("single-query p50, ms (log)")
        ax.set_ylabel("recall@10 vs exact")
        ax.set_title(textwrap.fill(data["label"], 80), fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(DOCS / "ann-recall-latency.png", dpi=110)
    plt.close(fig)


def main() -> None:
    if LATENCY.is_file():
        latency_vs_size(json.loads(LATENCY.read_text(encoding="utf-8")))
        print("wrote docs/latency-vs-size.png")
    anns = [f for f in ANN if f.is_file()]
    if anns:
        ann_panels(anns)
        print("wrote docs/ann-recall-latency.png")


if __name__ == "__main__":
    main()
