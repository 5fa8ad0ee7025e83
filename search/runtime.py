"""The networks a server runs, from the files ``salon model`` prepared (indexer/serving.py):
the tokenizer, one memory-mapped word-embedding table, and ONNX Runtime sessions. No PyTorch,
no transformers, no sentence-transformers.

Opening checks every file's sha256 and the query graph's vectors on the probe texts against
those PyTorch gave when the files were made; a missing or damaged file is a ModelError that says
to run ``salon model``: nothing is exported or converted here.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.export import cosine_gap, open_session
from indexer.model import ModelError, resolve_model
from indexer.serving import QUERY, QUERY_TOLERANCE, TABLE, TABLE_DTYPE, TOKENIZER, read_manifest, serving_dir, verify
from indexer.settings import Settings

if TYPE_CHECKING:
    from indexer.model import Embedder
    from search.reader import Reader


class Tokenizer:
    """The model's tokenizer (``tokenizers`` alone), called like the transformers tokenizer for
    the few uses Salon has: ids of one text, with or without the special tokens, with offsets."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as Fast

        self.fast = Fast.from_file(str(path))
        self.fast.no_padding()
        self.fast.no_truncation()
        bos, eos = self.fast.token_to_id("<s>"), self.fast.token_to_id("</s>")
        if bos is None or eos is None:
            raise ModelError(f"{path}: no <s> / </s> tokens: not the XLM-R tokenizer e5 uses")
        self.bos_token_id, self.eos_token_id = int(bos), int(eos)
        pad = self.fast.token_to_id("<pad>")
        self.pad_token_id = int(pad) if pad is not None else 1

    def __call__(
        self, text: str, add_special_tokens: bool = True, return_offsets_mapping: bool = False
    ) -> dict[str, Any]:
        enc = self.fast.encode(text, add_special_tokens=add_special_tokens)
        out: dict[str, Any] = {"input_ids": list(enc.ids)}
        if return_offsets_mapping:
            out["offset_mapping"] = list(enc.offsets)
        return out

    def ids(self, text: str, max_length: int) -> list[int]:
        """Token ids with ``<s> … </s>``, cut to ``max_length`` as the model's own call cuts them."""
        ids = list(self.fast.encode(text, add_special_tokens=True).ids)
        if len(ids) > max_length:
            ids = [*ids[: max_length - 1], self.eos_token_id]
        return ids


class WordEmbeddings:
    """The word-embedding table both networks read, memory-mapped: only the rows looked up
    become resident."""

    def __init__(self, path: Path, shape: tuple[int, int]) -> None:
        self.table = np.load(path, mmap_mode="r")
        if tuple(self.table.shape) != tuple(shape) or self.table.dtype != TABLE_DTYPE:
            raise ModelError(
                f"{path}: table {self.table.shape} {self.table.dtype}, expected {shape} {TABLE_DTYPE.__name__}"
            )

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(self.table[ids], dtype=np.float32)


@dataclass(frozen=True)
class RuntimeInfo:
    model_id: str
    folder: Path


class Runtime:
    """Loaded once per process and shared by every engine (a reload keeps it): the query
    encoder, and what the reader needs to run beside it (tokenizer, table, folder)."""

    def __init__(self, folder: Path) -> None:
        manifest = read_manifest(folder)
        verify(folder, manifest)
        self.info = RuntimeInfo(manifest.model_id, folder)
        self.folder = folder
        self.dim = manifest.dim
        self.max_length = manifest.max_length
        self.query_prompt = manifest.query_prompt
        self.passage_prompt = manifest.passage_prompt
        self.tokenizer = Tokenizer(folder / TOKENIZER)
        self.embeddings = WordEmbeddings(folder / TABLE, manifest.table_shape)
        self.session = open_session(folder / QUERY)
        self._readers: dict[tuple[str, bool], Reader] = {}
        self._lock = threading.Lock()
        got = np.vstack([self.encode([p.text]) for p in manifest.probes])
        want = np.asarray([p.vector for p in manifest.probes], dtype=np.float32)
        gap = cosine_gap(got, want)
        if gap > QUERY_TOLERANCE:
            raise ModelError(
                f"the query graph in {folder} disagrees with PyTorch (1 - cosine {gap:.2e}); run `salon model`"
            )

    @classmethod
    def load(cls, settings: Settings) -> Runtime:
        """The runtime of ``settings.model``; ModelError when its files are not prepared."""
        info = resolve_model(settings, prepare=False)
        return cls(serving_dir(settings, info.model_id))

    @classmethod
    def prepared(cls, embedder: Embedder, settings: Settings) -> Runtime:
        """The runtime of ``embedder``'s model, its files made from that model first when missing
        (the caller has PyTorch loaded anyway: a build, an evaluation, a test), and the reader's
        ONNX graph for ``settings``. Kept on the embedder, so the engines opened with it share it."""
        from indexer.serving import prepare

        runtime = embedder.serving
        if runtime is None:
            runtime = embedder.serving = cls(prepare(embedder, settings))
        if settings.reader:
            from search.reader import ARTIFACT_DIR, ReaderError, prepare_reader

            # a reader that cannot be used: the engine says why when it opens it, and answers with sentences
            with contextlib.suppress(ReaderError):
                prepare_reader(embedder, settings.reader_dir or ARTIFACT_DIR, runtime.folder, settings.reader_int8)
        assert isinstance(runtime, Runtime)
        return runtime

    def reader(self, artifact_dir: Path, int8: bool) -> Reader:
        """The reader of ``artifact_dir`` (its weights sha256-checked) over this runtime's table;
        its ONNX session is opened once per weights and shared, its calibration is the artifact's
        own. ReaderError when it cannot be used."""
        from search.reader import Reader, ReaderError, read_meta

        meta = read_meta(artifact_dir)
        if meta.get("base_model_id") != self.info.model_id:
            raise ReaderError(
                f"the reader was trained over {meta.get('base_model_id')!r}, the engine runs {self.info.model_id!r}"
            )
        key = (str(meta["sha256"]), int8)
        with self._lock:
            if key not in self._readers:
                self._readers[key] = Reader.open(self.folder, meta, self.tokenizer, self.embeddings, int8)
        reader = copy.copy(self._readers[key])  # the session shared; what a caller may refit, its own
        reader.with_meta(meta)
        return reader

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors of already-prompted texts, one batch."""
        rows = [self.tokenizer.ids(t, self.max_length) for t in texts]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        out = self.session.run(None, {"embeds": self.embeddings(ids), "attention_mask": mask})
        return np.asarray(out[0], dtype=np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        vec: np.ndarray = self.encode([self.query_prompt + text])[0]
        return vec
