"""What this CPU gives a matrix product, per runtime: is there a faster path for the reader?

    .venv/bin/python bench/cpu_products.py

Prints the throughput of one product of (M × 1024) by (1024 × 4096), for M = 148 (a reader
window's tokens) and 1024: ONNX Runtime int8 (``MatMulInteger``, u8 × s8, the kernels the int8
reader's products run on), PyTorch fp32 and PyTorch bf16 (oneDNN, which takes AMX where the CPU
has it). The reader's int8 window costs what it does because of these figures
(docs/quality.md, round 11).
"""

from __future__ import annotations

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


def main() -> None:
    print(f"(M × {K}) by ({K} × {N})\n\n| M | ONNX Runtime int8 GOPS | PyTorch fp32 GFLOPS | PyTorch bf16 GFLOPS |")
    print("|---|---|---|---|")
    for m in (148, 1024):
        row = (ort_int8(m), torch_product(m, "float32"), torch_product(m, "bfloat16"))
        print(f"| {m} | " + " | ".join(f"{x:.0f}" for x in row) + " |")


if __name__ == "__main__":
    main()
