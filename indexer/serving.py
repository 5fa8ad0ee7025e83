"""What serving runs, prepared once from the PyTorch model (``salon model``, ``salon index``).

Serving runs no PyTorch: the query encoder is an ONNX graph that starts after the word
embeddings, and the reader's graph (search/reader.py) does the same, so both read one shared
word-embedding table, memory-mapped from disk in fp32. Of e5-small's 118 M parameters, 96 M are
that table (250,037 rows); a query touches a few dozen rows, so the pages a server keeps resident
are those few, not a copy per network. The tokenizer is the model's own ``tokenizer.json``, read
by the ``tokenizers`` library alone.

The folder holds a manifest (``serving.json``) with each file's sha256 and, for probe texts, the
vectors PyTorch gives: the graph is checked against PyTorch when it is made, and against those
recorded vectors whenever a server opens it (search/runtime.py), without PyTorch.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from indexer.export import cosine_gap, export
from indexer.files import sha256_file, staged_folder, write_atomic
from indexer.model import Embedder, ModelError, mean_pooled
from indexer.settings import Settings

FORMAT = "salon-serving-2"
MANIFEST = "serving.json"
# fp32: the table as trained. fp16 halves the file (384 → 192 MB) but not the resident memory (only
# the rows looked up are resident), and shifts the int8 reader's logits by up to 2.5 (its per-call
# activation scales amplify the rounding): see docs/performance.md, "tried and not kept".
TABLE_DTYPE = np.float32
TABLE = "word_embeddings.npy"
QUERY = "query.onnx"
TOKENIZER = "tokenizer.json"
# Query vectors of the ONNX graph against PyTorch's: 1 - cosine at most this.
QUERY_TOLERANCE = 1e-4
PROBES = (
    "query: qui a critiqué Salesforce ?",
    "query: Who spoke at Dreamforce 2019 in San Francisco?",
    "passage: Le Salon du e-Marketing s'est tenu à Paris du 24 au 26 janvier 2012, avec 150 exposants.",
)


class Probe(BaseModel):
    text: str
    vector: list[float]


class ServingManifest(BaseModel):
    format: str
    model_id: str
    dim: int
    max_length: int
    query_prompt: str
    passage_prompt: str
    table_shape: tuple[int, int]
    files: dict[str, str]  # name → sha256
    probes: list[Probe]


def serving_dir(settings: Settings, model_id: str) -> Path:
    """Where the serving files of ``model_id`` live (under the model cache)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
    return Path(settings.cache_dir) / "models" / "serving" / safe


def read_manifest(folder: Path) -> ServingManifest:
    from indexer.files import parse_json

    path = folder / MANIFEST
    if not path.is_file():
        raise ModelError(f"serving files missing in {folder}; run `salon model` to prepare them")
    return parse_json(
        ServingManifest, path.read_bytes(), lambda why: ModelError(f"{path} is damaged ({why}); run `salon model`")
    )


def prepare(embedder: Embedder, settings: Settings, force: bool = False) -> Path:
    """The serving folder of ``embedder``'s model, made (and checked against PyTorch) when
    missing or damaged; returns it."""
    dest = serving_dir(settings, embedder.info.model_id)
    if not force:
        try:
            verify(dest, read_manifest(dest))
            return dest
        except ModelError:
            pass
    print(f"salon: preparing the serving files of the model in {dest} (once, ~20 s)…", file=sys.stderr)
    with staged_folder(dest, copy=False) as stage:
        _write(embedder, stage)
    return dest


def verify(folder: Path, manifest: ServingManifest) -> None:
    """Every file there and with its recorded sha256; ModelError saying what to run otherwise."""
    if manifest.format != FORMAT:
        raise ModelError(f"serving files in {folder} are of format {manifest.format!r}; run `salon model`")
    for name, sha in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ModelError(f"serving file {path} is missing; run `salon model`")
        if sha256_file(path) != sha:
            raise ModelError(f"serving file {path} is damaged (sha256 differs); run `salon model`")


def bert_of(embedder: Embedder) -> Any:
    """The transformers BertModel inside the sentence-transformers model."""
    from indexer.model import mean_pooling_model

    if not mean_pooling_model(embedder.model):
        raise ModelError("the model's pooling is not mean pooling; serving covers only that")
    bert: Any = embedder.model[0].auto_model
    return bert.eval()


def word_table(embedder: Embedder) -> np.ndarray:
    """The model's word-embedding table, as serving reads it."""
    weight = bert_of(embedder).embeddings.word_embeddings.weight
    return np.ascontiguousarray(weight.detach().float().numpy().astype(TABLE_DTYPE))


def _write(embedder: Embedder, folder: Path) -> None:
    import torch

    bert = bert_of(embedder)
    table = word_table(embedder)
    np.save(folder / TABLE, table)
    tokenizer_file = Path(embedder.info.path) / "0_Transformer" / TOKENIZER
    if not tokenizer_file.is_file():
        embedder.model.tokenizer.save_pretrained(str(folder / "hf-tokenizer"))
        tokenizer_file = folder / "hf-tokenizer" / TOKENIZER
    shutil.copyfile(tokenizer_file, folder / TOKENIZER)
    shutil.rmtree(folder / "hf-tokenizer", ignore_errors=True)

    enc = embedder.model.tokenizer(list(PROBES[:2]), padding=True, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    sample = {"embeds": table[ids].astype(np.float32), "attention_mask": mask}
    with torch.inference_mode():
        export(
            mean_pooled(bert, from_embeddings=True),
            sample,
            folder / QUERY,
            ["embedding"],
            {"embeds": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}},
        )
    # Checked against PyTorch now; the vectors PyTorch gives are recorded for the checks at open.
    want = embedder._forward_torch(list(PROBES), "fp32")
    from indexer.export import open_session

    session = open_session(folder / QUERY)
    got = np.vstack([_run_one(session, embedder.model.tokenizer, table, t) for t in PROBES])
    gap = cosine_gap(got, want)
    if gap > QUERY_TOLERANCE:
        raise ModelError(f"the serving query graph disagrees with PyTorch (1 - cosine {gap:.2e})")
    prompts = getattr(embedder.model, "prompts", {}) or {}
    manifest = ServingManifest(
        format=FORMAT,
        model_id=embedder.info.model_id,
        dim=int(table.shape[1]),
        max_length=int(embedder.model.max_seq_length or 512),
        query_prompt=prompts.get("query", ""),
        passage_prompt=prompts.get("document", prompts.get("passage", "")),
        table_shape=(int(table.shape[0]), int(table.shape[1])),
        files={name: sha256_file(folder / name) for name in (TABLE, QUERY, TOKENIZER)},
        probes=[Probe(text=t, vector=[float(x) for x in v]) for t, v in zip(PROBES, want, strict=True)],
    )
    write_atomic(folder / MANIFEST, manifest.model_dump_json(indent=1))


def _run_one(session: Any, tokenizer: Any, table: np.ndarray, text: str) -> np.ndarray:
    enc = tokenizer([text], return_tensors="np")
    ids = enc["input_ids"].astype(np.int64)
    out = session.run(None, {"embeds": table[ids].astype(np.float32), "attention_mask": np.ones_like(ids)})
    return np.asarray(out[0], dtype=np.float32)
