"""Ray embedding throughput against the local build, on the same texts.

    .venv/bin/python bench/ray_build.py ../shared/eval/piaf-dev --passages 400 --json docs/bench/ray-build-piaf-400.json

Builds the first N PIAF passages twice with ``--full`` (every chunk encoded, no cache): once in
process (``salon index``, torch on all cores), once on a two-node Ray cluster started on this
machine (1 CPU each, so the same two cores) with ``salon index --ray``. The cluster runs inside a
network namespace made for it (``unshare -n``, loopback only; root needed), as in tests/test_ray.py.
On one box expect overhead, not speed-up: the figure says how much the distribution costs
(``make bench-ray``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from indexer import layout
from search.evaluate import table, write_json

ROOT = Path(__file__).resolve().parent.parent

CLUSTER = r"""
set -u
ip link set lo up
export PATH="$(dirname "$PY"):$PATH"
common="--num-cpus=1 --object-store-memory=200000000 --disable-usage-stats"
t0=$(date +%s.%N)
ray start --head --port=26379 --include-dashboard=false --temp-dir="$RAY_TMPDIR" $common >/dev/null 2>&1 || exit 10
ray start --address=127.0.0.1:26379 $common >/dev/null 2>&1 || { ray stop --force >/dev/null 2>&1; exit 11; }
echo "cluster_start_s $(echo "$(date +%s.%N) - $t0" | bc)"
t1=$(date +%s.%N)
"$PY" -m salon.cli index "$CORPUS" --index-dir "$OUT" --full -q --ray 127.0.0.1:26379 2>"$ERR"; rc=$?
echo "build_wall_s $(echo "$(date +%s.%N) - $t1" | bc)"
ray stop --force >/dev/null 2>&1
exit $rc
"""


def build_figures(index_dir: Path) -> dict[str, Any]:
    m = layout.Manifest.read(layout.current_generation(index_dir))
    return {
        "chunks": m.counts["chunks"],
        "encoded": m.counts["encoded_texts"],
        "tokens": m.counts.get("encoded_tokens", 0),
        "build_s": m.build_seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="../shared/eval/piaf-dev")
    ap.add_argument("--passages", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sray-"))  # short: Ray's socket paths must fit in 108 bytes
    corpus = work / "corpus"
    corpus.mkdir()
    with (args.dataset / "passages.jsonl").open(encoding="utf-8") as f:
        lines = [line for line in f if line.strip()][: args.passages]
    (corpus / "passages.jsonl").write_text("".join(lines), encoding="utf-8")
    env = {**os.environ, "SALON_BATCH_SIZE": str(args.batch_size)}
    py = sys.executable

    t0 = time.perf_counter()
    subprocess.run(
        [py, "-m", "salon.cli", "index", str(corpus), "--index-dir", str(work / "local"), "--full", "-q"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    local = {**build_figures(work / "local"), "wall_s": round(time.perf_counter() - t0, 1)}

    cenv = {
        **env,
        "PY": py,
        "CORPUS": str(corpus),
        "OUT": str(work / "ray"),
        "ERR": str(work / "ray.err"),
        "RAY_TMPDIR": str(work / "t"),
    }
    run = subprocess.run(["unshare", "-n", "bash", "-c", CLUSTER], cwd=ROOT, env=cenv, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"cluster build failed ({run.returncode}): {run.stdout}{run.stderr}")
    marks = dict(line.split() for line in run.stdout.splitlines() if line.count(" ") == 1)
    ray = {
        **build_figures(work / "ray"),
        "wall_s": round(float(marks["build_wall_s"]), 1),
        "cluster_start_s": round(float(marks["cluster_start_s"]), 1),
    }
    row = {"passages": args.passages, "batch_size": args.batch_size, "local": local, "ray_2x1cpu": ray}
    for r in (local, ray):
        r["tokens_per_s"] = round(r["tokens"] / r["build_s"], 1) if r["build_s"] else None
        r["chunks_per_s"] = round(r["chunks"] / r["build_s"], 2) if r["build_s"] else None
    row["ray_over_local"] = round(ray["build_s"] / local["build_s"], 2) if local["build_s"] else None
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nfirst {args.passages} PIAF passages, --full (every chunk encoded), batch size {args.batch_size}")
    print(
        table(
            ["build", "chunks", "tokens", "build s", "tokens/s", "wall s"],
            [
                [name, r["chunks"], r["tokens"], r["build_s"], r["tokens_per_s"], r["wall_s"]]
                for name, r in (("in process", local), ("Ray, 2 nodes × 1 CPU", ray))
            ],
        )
    )
    print(f"Ray / in process: {row['ray_over_local']}; cluster start {ray['cluster_start_s']} s")
    write_json(args.json, row)


if __name__ == "__main__":
    main()
