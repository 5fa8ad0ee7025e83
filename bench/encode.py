"""Embedding throughput against this machine's own ceiling, and single-query encoding latency.

    .venv/bin/python bench/encode.py ../shared/eval/orangesum --json docs/bench/encoding-throughput.json

1. Ceiling: an fp32 (and bf16) matmul microbenchmark → GFLOP/s, divided by the model's FLOPs
   per token (12 layers × (4·d² + 2·d·ff) multiply-adds + attention at the sample's mean length).
2. Batch throughput (tokens/s, texts/s) on a fixed French sample (the first --texts OrangeSum
   paragraphs, passage prompt), for each way of running the model measured here; the line
   marked ◀ is what `salon index` uses (Embedder.encode, embedding cache off).
3. One short query: p50/p95 of each path (tokenizer alone, SentenceTransformer.encode,
   PyTorch fp32/bf16, ONNX Runtime with 1 and 2 threads); the ◀ line is what the engine uses.

``make bench-encode`` runs it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.model import Embedder, native_bf16
from indexer.settings import Settings
from search.evaluate import pct, write_json


def best_gflops(matmul: Callable[[], object], n: int, reps: int = 10) -> float:
    """GFLOP/s of the fastest of ``reps`` n×n matmuls, after three warm-up calls."""
    for _ in range(3):
        matmul()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def numpy_gflops(n: int = 2048) -> float:
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    return best_gflops(lambda: a @ b, n)


def ort_gflops(n: int = 2048) -> float:
    """fp32 matmul through ONNX Runtime's own kernels (MLAS), via a one-node graph."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "mm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = ort.InferenceSession(model.SerializeToString())
    feed = {"a": np.random.rand(n, n).astype(np.float32), "b": np.random.rand(n, n).astype(np.float32)}
    return best_gflops(lambda: sess.run(None, feed), n)


def matmul_gflops(dtype: str, n: int = 2048) -> float:
    import torch

    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    return best_gflops(lambda: a @ b, n)


def flops_per_token(model, mean_len: float) -> float:  # type: ignore[no-untyped-def]
    cfg = model[0].auto_model.config
    d, ff, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    macs = layers * (4 * d * d + 2 * d * ff + 2 * mean_len * d)
    return float(2 * macs)


def timed(fn: Callable[[], object], reps: int) -> list[float]:
    for _ in range(min(5, reps)):
        fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="../shared/eval/orangesum (paragraphs.jsonl.gz, headlines)")
    ap.add_argument("--texts", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    import torch

    settings = Settings()
    emb = Embedder.from_settings(settings, use_cache=False)
    model = emb.model
    with gzip.open(args.dataset / "paragraphs.jsonl.gz", "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.texts), f, strict=False)]
    prompted = [emb.passage_prompt + t for t in texts]
    lens = [len(x) for x in model.tokenizer(prompted, truncation=True, max_length=512)["input_ids"]]
    tokens, mean_len = sum(lens), float(np.mean(lens))
    fpt = flops_per_token(model, mean_len)

    print(
        f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"native bf16: {native_bf16()}"
    )
    # The fp32 ceiling is the best of three matmul libraries (PyTorch's, NumPy's, ORT's): a kernel can
    # only be compared with the best matmul this machine was seen to do.
    t32, n32, o32, g16 = matmul_gflops("fp32"), numpy_gflops(), ort_gflops(), matmul_gflops("bf16")
    g32 = max(t32, n32, o32)
    print(f"fp32 matmul 2048²: PyTorch {t32:.0f}, NumPy {n32:.0f}, ONNX Runtime {o32:.0f} GFLOP/s (ceiling: best)")
    ceil32, ceil16 = g32 * 1e9 / fpt, g16 * 1e9 / fpt
    print(f"model: {fpt / 1e6:.1f} MFLOP per token at the sample's mean length {mean_len:.0f} tokens")
    print(
        f"matmul ceiling: fp32 {g32:.0f} GFLOP/s → {ceil32:,.0f} tokens/s; "
        f"bf16 {g16:.0f} GFLOP/s → {ceil16:,.0f} tokens/s"
    )

    # -- batches -----------------------------------------------------------------------------
    order = sorted(range(len(prompted)), key=lambda i: -len(prompted[i]))
    srt = [prompted[i] for i in order]

    def batched(run: Callable[[list[str]], object], bs: int) -> Callable[[], None]:
        def go() -> None:
            for s in range(0, len(srt), bs):
                run(srt[s : s + bs])

        return go

    from search.runtime import Runtime

    serving = Runtime.prepared(emb, settings)  # the ONNX graph search runs, from the shared fp16 table
    rows: list[tuple[str, float]] = []

    def measure(name: str, fn: Callable[[], object], threads: int | None = None) -> None:
        old = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            fn()  # warm (first batch shapes, lazy inits)
            t = time.perf_counter()
            fn()
            rows.append((name, time.perf_counter() - t))
        finally:
            torch.set_num_threads(old)

    measure(
        "SentenceTransformer.encode (fp32, bs 32, its defaults)",
        lambda: model.encode(texts, prompt=emb.passage_prompt, batch_size=32, show_progress_bar=False),
    )
    for bs in (16, 32):
        measure(f"PyTorch fp32, bs {bs}, length-sorted", batched(lambda b: emb._forward_torch(b, "fp32"), bs))
    for bs in (8, 16, 32, 64):
        measure(f"PyTorch bf16, bs {bs}, length-sorted", batched(lambda b: emb._forward_torch(b, "bf16"), bs))
    measure("PyTorch bf16, bs 16, 1 thread", batched(lambda b: emb._forward_torch(b, "bf16"), 16), threads=1)
    measure("ONNX Runtime fp32 (serving graph), bs 16, length-sorted", batched(serving.encode, 16))
    mine = f"Embedder.encode ({emb.precision}, bs {settings.batch_size}) ◀ salon index"
    measure(mine, lambda: emb.encode(texts, emb.passage_prompt, None, settings.batch_size))

    print(f"\nbatch throughput on {len(texts)} OrangeSum paragraphs ({tokens:,} tokens with prompt and specials)")
    print("| how | tokens/s | texts/s | % of fp32 ceiling | % of bf16 ceiling |")
    print("|---|---|---|---|---|")
    for name, sec in rows:
        tps = tokens / sec
        print(
            f"| {name} | {tps:,.0f} | {len(texts) / sec:.1f} | {100 * tps / ceil32:.0f}% | {100 * tps / ceil16:.0f}% |"
        )

    # -- one query ---------------------------------------------------------------------------
    heads = [json.loads(x)["query"] for x in (args.dataset / "headlines-valid.jsonl").read_text().splitlines() if x]
    qs = [emb.query_prompt + h for h in heads[: args.queries]]
    it = iter(range(10**9))

    def one(f: Callable[[list[str]], object]) -> Callable[[], object]:
        return lambda: f([qs[next(it) % len(qs)]])

    qrows: list[tuple[str, list[float]]] = [
        ("tokenizer only", timed(one(lambda b: model.tokenizer(b, return_tensors="np")), len(qs))),
        (
            "SentenceTransformer.encode (fp32)",
            timed(one(lambda b: model.encode(b, show_progress_bar=False)), len(qs)),
        ),
        ("PyTorch fp32 forward", timed(one(lambda b: emb._forward_torch(b, "fp32")), len(qs))),
        ("PyTorch bf16 forward", timed(one(lambda b: emb._forward_torch(b, "bf16")), len(qs))),
    ]
    qrows.append(("ONNX Runtime (serving graph)", timed(one(serving.encode), len(qs))))
    qrows.append(
        ("Runtime.encode_query ◀ engine", timed(lambda: serving.encode_query(heads[next(it) % len(heads)]), len(qs)))
    )
    qlen = np.mean([len(x) for x in model.tokenizer(qs)["input_ids"]])
    print(
        f"\none query (OrangeSum headlines, mean {qlen:.0f} tokens; arithmetic alone at the fp32 ceiling: "
        f"{qlen * flops_per_token(model, qlen) / (g32 * 1e9) * 1000:.1f} ms)"
    )
    print("| path | p50 ms | p95 ms |")
    print("|---|---|---|")
    for name, lat in qrows:
        print(f"| {name} | {pct(lat, 50):.2f} | {pct(lat, 95):.2f} |")
    write_json(
        args.json,
        {
            "cores": os.cpu_count(),
            "native_bf16": native_bf16(),
            "matmul_gflops": {"torch_fp32": t32, "numpy_fp32": n32, "onnxruntime_fp32": o32, "torch_bf16": g16},
            "ceiling_tokens_per_s": {"fp32": ceil32, "bf16": ceil16},
            "batch": {
                "texts": len(texts),
                "tokens": tokens,
                "rows": [
                    {"how": name, "tokens_per_s": tokens / sec, "texts_per_s": len(texts) / sec} for name, sec in rows
                ],
            },
            "query": {
                "queries": len(qs),
                "mean_tokens": float(qlen),
                "rows": [{"path": name, "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)} for name, lat in qrows],
            },
        },
    )


if __name__ == "__main__":
    main()
