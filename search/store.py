"""Where a served index is read from: the store interface and its local implementation.

The engine ranks through a ``StoreView`` (one generation, pinned for one request), so the same
ranking code runs over the local generation files (FAISS + bm25s + SQLite, the default) or over
Milvus (``search.milvus_store``, ``SALON_STORE=milvus``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexer import layout
from indexer.analysis import analyze
from search.types import ArticleFacts, ArticleInfo, EntityCount


@dataclass(frozen=True)
class Where:
    """A normalised filter: event or source (casefolded) and inclusive day bounds ('' = open)."""

    event: str = ""
    lo: str = ""
    hi: str = ""
    # The article rows entity filters admit (None: no entity filter; empty: none matches).
    articles: frozenset[int] | None = None

    def admits(self, event: str, source: str, dmin: str, dmax: str) -> bool:
        if self.event and self.event not in (event.casefold(), source.casefold()):
            return False
        if self.lo or self.hi:
            return bool(dmin) and not (self.lo and dmax < self.lo) and not (self.hi and dmin > self.hi)
        return True


@dataclass(frozen=True)
class ChunkInfo:
    row: int
    article: int  # article row
    start: int  # offsets into the article text
    end: int
    first_sentence: int  # sentence rows, inclusive
    last_sentence: int


@dataclass(frozen=True)
class Sentences:
    """A candidate's sentences, all the answer code needs: text, article offsets, vectors."""

    rows: tuple[int, ...]  # sentence ids in the generation
    article: int
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    texts: tuple[str, ...]
    vectors: np.ndarray  # (len(rows), dim) float32, normalised
    # Each sentence's distinct index terms, as ``set(analyze(text))`` gives them, where the store
    # keeps them (``layout.SENTENCE_TERMS``); None: the caller analyses the texts itself.
    terms: tuple[frozenset[str], ...] | None = None

    def term_set(self, j: int) -> frozenset[str]:
        """Sentence ``j``'s distinct terms: stored where the store has them, else analysed."""
        return self.terms[j] if self.terms is not None else frozenset(analyze(self.texts[j]))


class StoreView(Protocol):
    """One generation of the index, read-only."""

    name: str
    manifest: layout.Manifest
    n_chunks: int

    def dense(self, qv: np.ndarray, n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]: ...
    def lexical(self, terms: list[str], n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]: ...
    def doc_freq(self, terms: Iterable[str]) -> dict[str, int]: ...
    def chunks(self, rows: Sequence[int]) -> dict[int, ChunkInfo]: ...
    def chunk_vectors(self, rows: Sequence[int]) -> np.ndarray: ...
    def sentences(self, chunks: Sequence[ChunkInfo]) -> dict[int, Sentences]: ...
    def article(self, row: int) -> ArticleInfo: ...
    def article_row(self, doc_id: str) -> int | None: ...
    def facets(self) -> list[str]: ...
    def facts(self, rows: Sequence[int]) -> dict[int, ArticleFacts]: ...
    def entity_articles(self, kind: str, key: str) -> frozenset[int]: ...
    def entity_counts(self, kind: str | None, prefix: str, limit: int) -> list[EntityCount]: ...
    def person_keys_ending(self, word: str) -> frozenset[str]: ...
    def mentions(
        self, kind: str, keys: Iterable[str], rows: Iterable[int] | None = None
    ) -> dict[int, list[tuple[int, int]]]: ...
    def article_chunks(self, row: int) -> list[ChunkInfo]: ...


def surname_index(person_keys: Iterable[str]) -> dict[str, frozenset[str]]:
    """The person keys of more than one word, by their last word (« benioff » → « marc benioff »)."""
    out: dict[str, set[str]] = {}
    for key in person_keys:
        words = key.split()
        if len(words) > 1:
            out.setdefault(words[-1], set()).add(key)
    return {w: frozenset(ks) for w, ks in out.items()}


def merge_mentions(rows: Iterable[tuple[int, str]]) -> dict[int, list[tuple[int, int]]]:
    """(article row, mentions JSON) rows as each article's mention offsets, in text order."""
    out: dict[int, list[tuple[int, int]]] = {}
    for art, mentions in rows:
        out.setdefault(int(art), []).extend((int(a), int(b)) for a, b in json.loads(mentions))
    for ms in out.values():
        ms.sort()
    return out


def prefix_match(key: str, prefix: str) -> bool:
    """Whether the entity ``key`` or one of its words starts with the (folded) ``prefix``."""
    return not prefix or key.startswith(prefix) or f" {prefix}" in f" {key}"


def count_entities(
    rows: Iterable[tuple[str, str, str]], kind: str | None, prefix: str, limit: int
) -> list[EntityCount]:
    """Entities by the number of articles naming them, from one (kind, key, name) row per article."""
    n: dict[tuple[str, str], int] = {}
    names: dict[tuple[str, str], dict[str, int]] = {}
    for k, key, name in rows:
        if (kind is None or k == kind) and prefix_match(key, prefix):
            n[(k, key)] = n.get((k, key), 0) + 1
            forms = names.setdefault((k, key), {})
            forms[name] = forms.get(name, 0) + 1
    best = sorted(n, key=lambda e: (-n[e], e[1], e[0]))[:limit]
    return [EntityCount(k, max(names[(k, key)], key=lambda f: names[(k, key)][f]), key, n[(k, key)]) for k, key in best]


class Store(Protocol):
    def view(self) -> StoreView:
        """The generation served now; a request keeps the view it started with."""
        ...


_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))


class LocalStore:
    """Today's generation folder, loaded into memory once; it is its own (only) view."""

    def __init__(self, generation: Path, manifest: layout.Manifest, ef_search: int = 128) -> None:
        import bm25s
        import faiss

        self.generation = generation
        self.name = generation.name
        self.manifest = manifest
        self.ef_search = ef_search
        self.dense_index = faiss.read_index(str(generation / layout.DENSE))
        # Kept in fp16 as stored (half the memory: 440 MB less at 283k paragraphs); the few
        # rows a query compares are widened to fp32 on the fly.
        self.sent_vecs = np.load(generation / layout.SENTENCES)
        self.bm25 = bm25s.BM25.load(str(generation / layout.LEXICAL), show_progress=False)
        self.vocab: dict[str, int] = dict(self.bm25.vocab_dict)
        indptr = np.asarray(self.bm25.scores["indptr"])
        counts = np.diff(indptr)
        self._doc_freq = {t: int(counts[i]) for t, i in self.vocab.items() if i < len(counts)}
        db = sqlite3.connect(f"file:{generation / layout.STORE}?mode=ro", uri=True)
        try:
            arts = db.execute(
                "SELECT row, id, title, date, date_min, date_max, event, place, source, "
                "language, url, text FROM articles ORDER BY row"
            ).fetchall()
            chunks = np.array(
                db.execute(
                    "SELECT article, start, end, first_sentence, last_sentence FROM chunks ORDER BY row"
                ).fetchall(),
                dtype=np.int64,
            ).reshape(-1, 5)
            sents = np.array(
                db.execute("SELECT article, start, end FROM sentences ORDER BY row").fetchall(), dtype=np.int64
            ).reshape(-1, 3)
        finally:
            db.close()
        self.articles = [
            ArticleInfo(
                a[1], a[2] or "", a[3] or "", a[6] or "", a[7] or "", a[8] or "", a[9] or "", a[10] or "", a[11]
            )
            for a in arts
        ]
        self.article_dates = [(a[4] or "", a[5] or "") for a in arts]
        self.by_id = {a.doc_id: i for i, a in enumerate(self.articles)}
        self.chunk_article, self.chunk_start, self.chunk_end = chunks[:, 0], chunks[:, 1], chunks[:, 2]
        self.chunk_first, self.chunk_last = chunks[:, 3], chunks[:, 4]
        self.sent_article, self.sent_start, self.sent_end = sents[:, 0], sents[:, 1], sents[:, 2]
        self.n_chunks = int(self.dense_index.ntotal)
        if self.n_chunks != len(chunks) or len(self.sent_vecs) != len(sents):
            raise layout.IndexCorrupt(f"index {generation.name}: vector and store counts differ; rebuild")
        self._entities: list[tuple[str, str, str]] = []  # (kind, key, name) per entity row
        self.surnames: dict[str, frozenset[str]] = {}
        self.article_entities: dict[int, tuple[tuple[str, str, str], ...]] = {}
        self.entity_index: dict[tuple[str, str], frozenset[int]] = {}
        self._load_entities(generation)
        self.sent_terms: np.ndarray | None = None  # the UTF-8 bytes, memory-mapped
        self.sent_terms_end = np.zeros(0, np.int64)
        terms_file = generation / layout.SENTENCE_TERMS
        if terms_file.is_file():  # generations built before it analyse sentences per search
            self.sent_terms = np.load(terms_file, mmap_mode="r")
            self.sent_terms_end = np.flatnonzero(self.sent_terms == ord(layout.SENTENCE_END))
            if len(self.sent_terms_end) != len(sents):
                raise layout.IndexCorrupt(f"index {generation.name}: sentence terms and store differ; rebuild")

    @classmethod
    def open(cls, index_dir: Path, ef_search: int = 128, verify: bool = True) -> LocalStore:
        gen = layout.current_generation(Path(index_dir))
        manifest = layout.Manifest.read(gen)
        if verify:
            layout.verify(gen, manifest)
        return cls(gen, manifest, ef_search)

    def view(self) -> LocalStore:
        return self

    def _load_entities(self, generation: Path) -> None:
        db = sqlite3.connect(f"file:{generation / layout.STORE}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT article, kind, key, name FROM entities ORDER BY row").fetchall()
        except sqlite3.OperationalError:  # built before entities: no facets, entity filters match nothing
            rows = []
        finally:
            db.close()
        per: dict[int, list[tuple[str, str, str]]] = {}
        index: dict[tuple[str, str], set[int]] = {}
        for art, kind, key, name in rows:
            self._entities.append((kind, key, name))
            per.setdefault(art, []).append((kind, key, name))
            index.setdefault((kind, key), set()).add(art)
        self.article_entities = {a: tuple(es) for a, es in per.items()}
        self.entity_index = {k: frozenset(v) for k, v in index.items()}
        self.surnames = surname_index(key for kind, key in self.entity_index if kind == "person")

    def _mask(self, where: Where | None) -> np.ndarray | None:
        if where is None:
            return None
        ok = np.array(
            [where.admits(a.event, a.source, *self.article_dates[i]) for i, a in enumerate(self.articles)],
            dtype=bool,
        ).reshape(-1)
        if where.articles is not None:
            allowed = np.zeros(len(self.articles), dtype=bool)
            allowed[list(where.articles)] = True
            ok &= allowed
        mask: np.ndarray = ok[self.chunk_article]
        return mask

    def dense(self, qv: np.ndarray, n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        mask = self._mask(where)
        n = min(n, self.n_chunks)
        if n == 0:
            return _EMPTY
        hnsw = isinstance(self.dense_index, faiss.IndexHNSW)
        ef = max(self.ef_search, n)
        params: Any = faiss.SearchParametersHNSW(efSearch=ef) if hnsw else None  # type: ignore[attr-defined,call-arg]
        if mask is not None:
            ids = np.flatnonzero(mask).astype(np.int64)
            if len(ids) == 0:
                return _EMPTY
            n = min(n, len(ids))
            if hnsw and len(ids) <= 20_000:
                # A narrow filter starves the graph walk of admissible neighbours (recall falls);
                # scoring the admitted vectors exactly is both exact and fast at this size.
                sims = self.dense_index.reconstruct_batch(ids) @ qv
                top = np.argsort(-sims, kind="stable")[:n]
                return ids[top], sims[top].astype(np.float32)
            sel = faiss.IDSelectorBatch(ids)
            params = (
                faiss.SearchParametersHNSW(sel=sel, efSearch=ef)  # type: ignore[attr-defined,call-arg]
                if hnsw
                else faiss.SearchParameters(sel=sel)  # type: ignore[attr-defined,call-arg]
            )
        scores, rows = self.dense_index.search(qv.reshape(1, -1), n, params=params)
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]

    def lexical(self, terms: list[str], n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]:
        known = [t for t in terms if t in self.vocab]
        if not known:
            return _EMPTY
        scores = np.asarray(self.bm25.get_scores(known), dtype=np.float32)
        mask = self._mask(where)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        n = min(n, int((scores > 0).sum()))
        if n == 0:
            return _EMPTY
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.lexsort((top, -scores[top]))]  # ties by row: the same order in every store
        return top.astype(np.int64), scores[top]

    def doc_freq(self, terms: Iterable[str]) -> dict[str, int]:
        return {t: self._doc_freq.get(t, 0) for t in terms}

    def chunks(self, rows: Sequence[int]) -> dict[int, ChunkInfo]:
        return {
            r: ChunkInfo(
                r,
                int(self.chunk_article[r]),
                int(self.chunk_start[r]),
                int(self.chunk_end[r]),
                int(self.chunk_first[r]),
                int(self.chunk_last[r]),
            )
            for r in rows
        }

    def chunk_vectors(self, rows: Sequence[int]) -> np.ndarray:
        vecs: np.ndarray = self.dense_index.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        return vecs

    def sentences(self, chunks: Sequence[ChunkInfo]) -> dict[int, Sentences]:
        out = {}
        for c in chunks:
            lo, hi = c.first_sentence, c.last_sentence + 1
            text = self.articles[c.article].text
            starts, ends = self.sent_start[lo:hi].tolist(), self.sent_end[lo:hi].tolist()
            out[c.row] = Sentences(
                tuple(range(lo, hi)),
                c.article,
                tuple(starts),
                tuple(ends),
                tuple(text[s:e] for s, e in zip(starts, ends, strict=True)),
                self.sent_vecs[lo:hi].astype(np.float32),
                self._terms(lo, hi),
            )
        return out

    def _terms(self, lo: int, hi: int) -> tuple[frozenset[str], ...] | None:
        if self.sent_terms is None:
            return None
        if hi <= lo:
            return ()
        a = int(self.sent_terms_end[lo - 1]) + 1 if lo > 0 else 0
        raw = self.sent_terms[a : int(self.sent_terms_end[hi - 1])].tobytes().decode()
        return tuple(frozenset(t.split(layout.TERM_SEP)) if t else frozenset() for t in raw.split(layout.SENTENCE_END))

    def article(self, row: int) -> ArticleInfo:
        return self.articles[row]

    def article_row(self, doc_id: str) -> int | None:
        return self.by_id.get(doc_id)

    def facets(self) -> list[str]:
        return sorted({a.event or a.source for a in self.articles if a.event or a.source})

    def facts(self, rows: Sequence[int]) -> dict[int, ArticleFacts]:
        return {
            r: ArticleFacts(self.articles[r].event, self.articles[r].date, self.article_entities.get(r, ()))
            for r in rows
        }

    def entity_articles(self, kind: str, key: str) -> frozenset[int]:
        return self.entity_index.get((kind, key), frozenset())

    def entity_counts(self, kind: str | None, prefix: str, limit: int) -> list[EntityCount]:
        return count_entities(self._entities, kind, prefix, limit)

    def person_keys_ending(self, word: str) -> frozenset[str]:
        return self.surnames.get(word, frozenset())

    def mentions(
        self, kind: str, keys: Iterable[str], rows: Iterable[int] | None = None
    ) -> dict[int, list[tuple[int, int]]]:
        # Read from SQLite when asked, not held in memory: a page needs a few articles' mentions,
        # and all of them would cost tens of MB at 283k paragraphs.
        keys = sorted(set(keys))
        want = None if rows is None else set(rows)
        if not keys or want == set():
            return {}
        db = sqlite3.connect(f"file:{self.generation / layout.STORE}?mode=ro", uri=True)
        try:
            # by (kind, key) (indexed), then the rows asked for: an entity's rows are few
            got = db.execute(
                f"SELECT article, mentions FROM entities WHERE kind = ? AND key IN ({','.join('?' * len(keys))})",
                [kind, *keys],
            ).fetchall()
        except sqlite3.OperationalError:  # a generation built before entities
            got = []
        finally:
            db.close()
        return merge_mentions(r for r in got if want is None or r[0] in want)

    def article_chunks(self, row: int) -> list[ChunkInfo]:
        rows = np.flatnonzero(self.chunk_article == row).tolist()
        return sorted(self.chunks(rows).values(), key=lambda c: (c.start, c.row))
