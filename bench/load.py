"""Load test of `salon serve` from a second process, loopback only, bounded in count and time.

    .venv/bin/python bench/load.py --requests 10000 --concurrency 1,4,16 --reload-mid --json docs/bench/http-load.json

Starts `salon serve` on 127.0.0.1 over a fresh index of corpus/, sends mixed queries (questions,
keywords, English, filters, and some invalid ones that must get a 4xx), and prints requests/s,
p50/p95/p99, the count of failures (5xx or connection errors) and the server's memory per
concurrency level. With --reload-mid, a rebuild + POST /admin/reload happens in the middle of
the last level; the run checks that results switched to the new generation (``make bench-load``).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from search.evaluate import pct, table, write_json

ROOT = Path(__file__).resolve().parent.parent
QUERIES: list[dict[str, str]] = [
    {"q": "qui a critiqué Salesforce ?"},
    {"q": "combien de participants à Dreamforce ?"},
    {"q": "digital native mythe"},
    {"q": "Who spoke at Dreamforce?"},
    {"q": "transparence relation client", "k": "5"},
    {"q": "Barack Obama", "event": "Dreamforce 2019"},
    {"q": "salon", "date_from": "2012-01", "date_to": "2012-12"},
    {"q": "où s'est tenu le Salon du e-Marketing ?"},
    {"q": "community manager", "offset": "5"},
    {"q": "   "},  # must be a 422, never a 5xx
    {"q": "salon", "k": "500"},  # 422
    {"q": "salon", "date_from": "demain"},  # 422
]


@dataclass
class Level:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    seconds: float = 0.0
    rss_mib: float = 0.0


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, index_dir: Path, token: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SALON_ADMIN_TOKEN": token}
        self.proc = subprocess.Popen(
            # loopback pinned: a SALON_HOST in the environment must not widen where the bench listens
            [
                sys.executable,
                "-m",
                "salon.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--index-dir",
                str(index_dir),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError("salon serve did not come up in 120 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def salon_index(corpus: Path, index_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "salon.cli", "index", str(corpus), "--index-dir", str(index_dir), "-q"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=600,
    )


def run(requests: int, levels: list[int], reload_mid: bool, max_seconds: float = 1200) -> tuple[list[Level], dict]:
    token = "load-test-token"
    with tempfile.TemporaryDirectory(prefix="salon-load-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for p in (ROOT / "corpus").glob("*.md"):
            if p.name != "README.md":
                (corpus / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
        index_dir = Path(tmp) / "index"
        salon_index(corpus, index_dir)
        server = Server(index_dir, token)
        out: list[Level] = []
        reload_info: dict = {}
        start_all = time.time()
        try:
            per_level = max(1, requests // len(levels))
            for li, c in enumerate(levels):
                lvl = Level(c)
                lock = threading.Lock()
                local = threading.local()
                mid = per_level // 2 if (reload_mid and li == len(levels) - 1) else -1

                def one(
                    i: int,
                    lvl: Level = lvl,
                    lock: threading.Lock = lock,
                    local: threading.local = local,
                    mid: int = mid,
                ) -> None:
                    if time.time() - start_all > max_seconds:
                        return
                    if i == mid:
                        threading.Thread(target=do_reload, args=(corpus, index_dir, server, token, reload_info)).start()
                    if not hasattr(local, "client"):
                        local.client = httpx.Client(base_url=server.base, timeout=30)
                    params = QUERIES[i % len(QUERIES)]
                    t = time.perf_counter()
                    try:
                        r = local.client.get("/search", params=params)
                        status = r.status_code
                        ok = status < 500 and (status == 200 or r.json().get("error", {}).get("code"))
                    except (httpx.HTTPError, ValueError):
                        status, ok = 0, False
                    dt = (time.perf_counter() - t) * 1000
                    with lock:
                        lvl.latencies.append(dt)
                        lvl.statuses[status] = lvl.statuses.get(status, 0) + 1
                        lvl.failures += 0 if ok else 1

                t0 = time.perf_counter()
                with ThreadPoolExecutor(c) as pool:
                    list(pool.map(one, range(per_level)))
                lvl.seconds = time.perf_counter() - t0
                lvl.rss_mib = rss_mib(server.proc.pid)
                out.append(lvl)
            if reload_mid:
                deadline = time.time() + 300
                while "generation" not in reload_info and "error" not in reload_info and time.time() < deadline:
                    time.sleep(0.5)
                health = httpx.get(server.base + "/health").json()
                hit = httpx.get(server.base + "/search", params={"q": "salon nautique de Brest", "k": 1}).json()
                reload_info["served_after"] = health["generation"]
                reload_info["new_article_found"] = hit["results"][0]["doc_id"] == "brest-nautique"
        finally:
            server.stop()
        return out, reload_info


def do_reload(corpus: Path, index_dir: Path, server: Server, token: str, info: dict) -> None:
    try:
        info["before"] = httpx.get(server.base + "/health").json()["generation"]
        (corpus / "brest.md").write_text(
            "---\nid: brest-nautique\ntitle: Salon nautique de Brest\nevent: Nautic\n---\n"
            "Le salon nautique de Brest a réuni 400 exposants de voile.",
            encoding="utf-8",
        )
        salon_index(corpus, index_dir)
        r = httpx.post(server.base + "/admin/reload", headers={"Authorization": f"Bearer {token}"}, timeout=120)
        info["generation"] = r.json().get("generation")
    except Exception as exc:  # reported, never raised from a worker thread
        info["error"] = repr(exc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--reload-mid", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=1200)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    levels, info = run(args.requests, [int(x) for x in args.concurrency.split(",")], args.reload_mid, args.max_seconds)
    rows = [
        {
            "clients": lv.concurrency,
            "requests": len(lv.latencies),
            "req_per_s": round(len(lv.latencies) / lv.seconds, 1),
            **{f"p{p}_ms": round(pct(lv.latencies, p), 1) for p in (50, 95, 99)},
            "failures": lv.failures,
            "statuses": dict(sorted(lv.statuses.items())),
            "server_rss_mib": round(lv.rss_mib),
        }
        for lv in levels
    ]
    print(
        table(
            ["clients", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "failures", "statuses", "server RSS MiB"],
            [list(r.values()) for r in rows],
        )
    )
    if info:
        print(f"\nreload in the middle of the last level: {info}")
    write_json(args.json, {"levels": rows, "reload": info})


if __name__ == "__main__":
    main()
