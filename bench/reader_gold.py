"""The reader alone on the gold passage, per runtime: PyTorch bf16, ONNX fp32 and ONNX int8.

    .venv/bin/python bench/reader_gold.py ../shared/eval/piaf-dev [--split calib] [--out docs/bench/reader-gold.json]
        [--runtimes int8] [--windows both]

Same weights, same windows (``Reader.read_passage``), same scoring as the training command's
figures: what each runtime costs in F1 / EM. Calib by default (where runtimes are chosen); the
test split stays for docs/quality.md's goals table. ``--windows cover`` reads a passage in the
fewer windows of rounds 1-7 (``Reader.read_passage(centred=False)``), ``both`` reports the two.
The reader measured is ``SALON_READER_DIR`` or the shipped one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.model import Embedder
from indexer.settings import Settings
from search import reader as R
from training.reader_train import gold_passage_eval, load_piaf, split_of


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="calib", choices=["train", "calib", "test"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--runtimes", default="bf16,fp32,int8", help="comma-separated: bf16 (PyTorch), fp32, int8 (ONNX)")
    ap.add_argument("--windows", default="centred", choices=["centred", "cover", "both"])
    args = ap.parse_args()
    runtimes = set(args.runtimes.split(","))
    if not runtimes or runtimes - {"bf16", "fp32", "int8"}:
        ap.error(f"--runtimes takes bf16, fp32, int8 (comma-separated), not {args.runtimes!r}")
    shapes = ["centred", "cover"] if args.windows == "both" else [args.windows]
    st = Settings()
    emb = Embedder.from_settings(st)
    bert = emb.model[0].auto_model.state_dict()
    passages, qas = load_piaf(args.dataset)
    qs = [q for q in qas if split_of(passages[q.passage].title) == args.split]
    rows = {}
    print(
        f"{args.split}: {len(qs)} questions, gold passage\n\n"
        "| runtime | windows | F1 | EM | seconds |\n|---|---|---|---|---|"
    )
    for key, name, onnx, int8, bf16 in (
        ("bf16", "PyTorch bf16", False, False, True),
        ("fp32", "ONNX fp32", True, False, False),
        ("int8", "ONNX int8 (default)", True, True, False),
    ):
        if key not in runtimes:
            continue
        reader = R.Reader.load(
            bert,
            emb.model.tokenizer,
            emb.info.model_id,
            st.reader_dir or R.ARTIFACT_DIR,
            emb.onnx_dir if onnx else None,
            int8,
        )
        reader.bf16 = bf16
        for shape in shapes:
            t0 = time.perf_counter()
            m = gold_passage_eval(reader, passages, qs, centred=shape == "centred")
            row = f"{name}, {shape}" if len(shapes) > 1 else name
            rows[row] = {
                **m,
                "runtime": reader.runtime,
                "windows": shape,
                "seconds": round(time.perf_counter() - t0, 1),
            }
            print(f"| {name} | {shape} | {m['f1']:.4f} | {m['em']:.4f} | {rows[row]['seconds']} |", flush=True)
    if args.out:
        meta = {"reader_sha256": reader.meta["sha256"], "titles": reader.titles}
        args.out.write_text(json.dumps({"split": args.split, **meta, "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
