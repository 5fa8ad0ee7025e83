"""What this CPU gives a matrix product, per runtime: is there a faster path for the reader?
And how fast are the two networks a question search runs, to compare machines?

    .venv/bin/python bench/cpu_products.py [--no-networks]

Prints the throughput of one product of (M × 1024) by (1024 × 4096), for M = 148 (a reader
window's tokens) and 1024: ONNX Runtime int8 (``MatMulInteger``, u8 × s8, the kernels the int8
reader's products run on), PyTorch fp32 and PyTorch bf16 (oneDNN, which takes AMX where the CPU
has it). The reader's int8 window costs what it does because of these figures
(docs/quality.md, round 11).

Then the time of the networks themselves, as search calls them (engine settings, both cores):
the query encoder on one question, and the shipped int8 reader on one and on two windows of the
seed corpus (~160 tokens each, the window size search reads). Latency figures measured on
different machines (docs/quality.md) compare through these: the code path is the same, the
machine is not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

K, N = 1024, 4096


def rate(run: Callable[[], object], m: int, reps: int = 30) -> float:
    """Operations per second (2 · M · K · N per product), in G."""
    for _ in range(3):
        run()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    return 2 * m * K * N / ((time.perf_counter() - t0) / reps) / 1e9


def ort_int8(m: int) -> float:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-64, 64, (K, N)).astype(np.int8), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "W"], ["Y"])],
        "product",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, K])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, N])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    a = rng.integers(0, 255, (m, K)).astype(np.uint8)
    return rate(lambda: session.run(None, {"A": a}), m)


def torch_product(m: int, dtype: str) -> float:
    import torch

    t = getattr(torch, dtype)
    a, b = torch.randn(m, K).to(t), torch.randn(K, N).to(t)
    with torch.inference_mode():
        return rate(lambda: a @ b, m)


def networks() -> None:
    """The query encoder and the int8 reader as the engine loads them (``--no-networks`` skips)."""
    from pathlib import Path

    from encode import timed  # bench/ is on sys.path when a bench script runs

    from indexer.model import Embedder
    from indexer.settings import Settings
    from search.reader import ARTIFACT_DIR, Reader, Window

    def median_ms(run: Callable[[], object]) -> float:
        return float(np.median(timed(run, 30)))

    settings = Settings()
    emb = Embedder.from_settings(settings)
    question = "qui a critiqué Salesforce ?"
    encode = median_ms(lambda: emb.encode_query(question))
    reader = Reader.load(
        emb.model[0].auto_model.state_dict(),
        emb.model.tokenizer,
        emb.info.model_id,
        settings.reader_dir or ARTIFACT_DIR,
        emb.onnx_dir,
        True,
    )
    text = (Path(__file__).resolve().parents[1] / "corpus" / "dreamforce-2019.md").read_text(encoding="utf-8")
    body = text[text.index("\n\n", text.index("---", 3)) :].strip()  # past the metadata block
    # 600 characters: the longest window search builds (reader.py: a sentence and its neighbours)
    windows = [Window(body[i : i + 600], i) for i in (0, 600)]
    tokens = [len(reader.tokenizer(w.text)["input_ids"]) for w in windows]
    one = median_ms(lambda: reader.read(question, windows[:1]))
    two = median_ms(lambda: reader.read(question, windows))
    print(
        f"\nnetworks as search runs them ({reader.runtime}), median of 30 calls:\n\n"
        f"| query encoder, « {question} » | reader, 1 window (~{tokens[0]} tokens) | reader, 2 windows |\n"
        f"|---|---|---|\n| {encode:.1f} ms | {one:.1f} ms | {two:.1f} ms |"
    )


def main() -> None:
    print(f"(M × {K}) by ({K} × {N})\n\n| M | ONNX Runtime int8 GOPS | PyTorch fp32 GFLOPS | PyTorch bf16 GFLOPS |")
    print("|---|---|---|---|")
    for m in (148, 1024):
        row = (ort_int8(m), torch_product(m, "float32"), torch_product(m, "bfloat16"))
        print(f"| {m} | " + " | ".join(f"{x:.0f}" for x in row) + " |")
    if "--no-networks" not in sys.argv:
        networks()


if __name__ == "__main__":
    main()
