"""`salon index --ray` on a real two-node Ray cluster, inside a network namespace of its own.

Ray listens on every interface and picks the machine's external address, so the whole cluster
(two `ray start`, the driver, `ray stop`) runs under `unshare -n` with only loopback up: no
cluster traffic can leave the machine. The second node's raylet is killed (-9) during the job;
the build must still complete, with every chunk once and the vectors of a local build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from indexer.settings import Settings
from tests.conftest import ROOT, SHARED

pytest.importorskip("ray", reason="the Ray runner needs the extra: pip install '.[scale]'")
pytestmark = pytest.mark.model

PIAF = SHARED / "eval" / "piaf-dev" / "passages.jsonl"
HEAD_PORT = 26379  # outside Ray's worker port range (10002–19999)
NODE2_PORT = 26400  # node 2's node manager: how the test finds that node's raylet
PASSAGES = 160

SCRIPT = r"""
set -u
ip link set lo up
export PATH="$(dirname "$PY"):$PATH"
mkdir -p "$RAY_TMPDIR"
common="--num-cpus=1 --object-store-memory=150000000 --disable-usage-stats"
ray start --head --port=$HEAD_PORT --include-dashboard=false --temp-dir="$RAY_TMPDIR" $common \
  >"$WORK/head.log" 2>&1 || { echo "head failed"; exit 10; }
ray start --address=127.0.0.1:$HEAD_PORT --node-manager-port=$NODE2_PORT $common \
  >"$WORK/node2.log" 2>&1 || { ray stop --force >/dev/null 2>&1; echo "node 2 failed"; exit 11; }
cd "$ROOT"
"$PY" -m salon.cli index "$CORPUS" --index-dir "$WORK/cluster" --full --ray 127.0.0.1:$HEAD_PORT \
  >"$WORK/build.out" 2>"$WORK/build.err" &
build=$!
# Kill node 2's raylet mid-job, once vectors have come back from both nodes.
for _ in $(seq 1200); do
  [ "$(grep -c 'first vectors from node' "$WORK/build.err" 2>/dev/null)" -ge 2 ] && break
  kill -0 $build 2>/dev/null || break
  sleep 0.2
done
raylet=""
for p in /proc/[0-9]*; do
  c=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
  case "$c" in *raylet/raylet*"--node_manager_port=$NODE2_PORT"*) raylet=${p#/proc/};; esac
done
if kill -0 $build 2>/dev/null && [ -n "$raylet" ]; then
  kill -9 "$raylet" && echo "killed raylet $raylet during the job"
else
  echo "job not running at kill time"
fi
wait $build; rc=$?
echo "build exit $rc"
ray stop --force >/dev/null 2>&1
exit $rc
"""


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) not installed"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace (needs root or user namespaces): {probe.stderr.strip()}"
    return None


def _kill_leftovers(marker: str) -> None:
    """Kill -9 the Ray processes this test started (their command line names its temp folder)."""
    import contextlib
    import signal

    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            with contextlib.suppress(OSError):
                os.kill(int(p.name), signal.SIGKILL)


def _corpus(folder: Path) -> Path:
    folder.mkdir()
    with PIAF.open(encoding="utf-8") as f:
        lines = [json.loads(line) for line in f][:PASSAGES]
    out = folder / "piaf.jsonl"
    out.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.skipif(not PIAF.is_file(), reason="needs ../shared/eval/piaf-dev")
def test_index_on_two_node_ray_cluster_survives_a_dead_node(
    tmp_path: Path,
    settings: Settings,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    problem = _namespace_problem()
    if problem:
        pytest.skip(f"no network namespace, so no Ray cluster may start here: {problem}")
    from indexer import layout
    from indexer.build import build_index
    from search.engine import Engine

    corpus = _corpus(tmp_path / "corpus")
    s = settings.model_copy(update={"batch_size": 4})
    local = build_index(corpus, tmp_path / "local", embedder, s, progress=False)

    # Ray's socket paths must stay under 108 bytes: a short folder of the test's own, removed after.
    ray_tmp = tempfile.mkdtemp(prefix="sray-")
    env = {
        **os.environ,
        "RAY_TMPDIR": ray_tmp,
        "WORK": str(tmp_path),
        "ROOT": str(ROOT),
        "PY": sys.executable,
        "CORPUS": str(corpus),
        "HEAD_PORT": str(HEAD_PORT),
        "NODE2_PORT": str(NODE2_PORT),
        "SALON_BATCH_SIZE": "4",
        "SALON_CACHE_DIR": str(s.cache_dir),
        "PYTHONPATH": str(ROOT),
    }
    try:
        run = subprocess.run(
            ["unshare", "-n", "bash", "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=420
        )
    finally:
        _kill_leftovers(ray_tmp)  # only if the script died before its `ray stop`
        shutil.rmtree(ray_tmp, ignore_errors=True)
    out = (tmp_path / "build.out").read_text(encoding="utf-8") if (tmp_path / "build.out").is_file() else ""
    err = (tmp_path / "build.err").read_text(encoding="utf-8")[-3000:] if (tmp_path / "build.err").is_file() else ""
    assert run.returncode == 0, (run.stdout, run.stderr[-2000:], out, err)
    assert "killed raylet" in run.stdout, run.stdout  # the fault really happened mid-job
    assert "encoded on Ray: 2 node(s)" in out, out  # both nodes did part of the work

    cluster_gen = layout.current_generation(tmp_path / "cluster")
    m_local, m_cluster = local.manifest, layout.Manifest.read(cluster_gen)
    assert (
        m_cluster.counts["chunks"] == m_local.counts["chunks"]
        and m_cluster.counts["encoded_texts"] == m_local.counts["chunks"]
    )
    import faiss

    def vectors(gen: Path) -> tuple[np.ndarray, np.ndarray]:
        idx = faiss.read_index(str(gen / layout.DENSE))
        return idx.reconstruct_n(0, idx.ntotal), np.load(gen / layout.SENTENCES).astype(np.float32)

    (lc, ls), (cc, cs) = vectors(local.generation), vectors(cluster_gen)
    assert lc.shape == cc.shape and ls.shape == cs.shape
    assert float((lc * cc).sum(axis=1).min()) >= 0.9999
    assert float((ls * cs).sum(axis=1).min()) >= 0.999  # stored as fp16

    a, b = Engine.open(tmp_path / "local", s, embedder), Engine.open(tmp_path / "cluster", s, embedder)
    for q in ("Quelles sont les dépenses des ménages ?", "sport", "qui a fondé la ville ?", "En quelle année ?"):
        ra, rb = a.search(q, k=10), b.search(q, k=10)
        assert [(r.doc_id, r.start) for r in ra.results] == [(r.doc_id, r.start) for r in rb.results], q
